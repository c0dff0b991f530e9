"""The lockstep bench's own logic (bench/lockstep.py), without PyCIL: which weights it copies
into PyCIL's networks and when, how it maps resnet32's tensors, how it measures the gaps and
compares the memories, and the run it asks clbudget for.

PyCIL's networks are stood in for by modules with the attributes the bench touches
(IncrementalNet: `convnet`, `fc`; DERNet: `convnets`, `fc`, `aux_fc`); a PyCIL resnet32 by
clbudget's with an extra, unused `fc` (as PyCIL's convnet holds one).
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from bench import lockstep, lockstep_draws
from clbudget.methods.expanding import ExpandingNet
from clbudget.nets.backbones import create_backbone
from clbudget.nets.classifier import Classifier

D = 64          # resnet32's feature width


def pycil_convnet(seed: int) -> nn.Module:
    """A resnet32 laid out as PyCIL's: the same tensors, then an `fc` IncrementalNet never
    calls."""
    torch.manual_seed(seed)
    net = create_backbone("resnet32", (3, 32, 32))
    net.fc = nn.Linear(D, 10)
    return net


class IncrementalNet(nn.Module):
    def __init__(self, seed: int, classes: int):
        super().__init__()
        self.convnet = pycil_convnet(seed)
        self.fc = nn.Linear(D, classes)

    def forward(self, x):
        return {"logits": self.fc(self.convnet(x))}


class DERNet(nn.Module):
    def __init__(self, seed: int, branches: int, classes: int, new: int):
        super().__init__()
        self.convnets = nn.ModuleList(pycil_convnet(seed + i) for i in range(branches))
        self.fc = nn.Linear(branches * D, classes)
        self.aux_fc = nn.Linear(D, new + 1)


def clbudget_net(seed: int) -> Classifier:
    torch.manual_seed(seed)
    return Classifier.create("resnet32", (3, 32, 32), 10)


def test_resnet32_tensors_pair_by_position_without_pycils_fc():
    """resnet32 = a 3x3 conv + BN, then 15 blocks of two convs and two BNs; a BN holds 5
    tensors (weight, bias, running mean and variance, batches tracked): 1 + 5 + 15 * 12 = 186
    pairs, PyCIL's `fc` left out; a net of another shape is refused."""
    c = create_backbone("resnet32", (3, 32, 32))
    p = pycil_convnet(1)
    pairs = lockstep.backbone_pairs(c, p)
    assert len(pairs) == 1 + 5 + 15 * 12
    assert all(a.shape == b.shape for a, b in pairs)
    assert pairs[0][0].shape == (16, 3, 3, 3) and pairs[-1][0].shape == ()
    named = lockstep.backbone_pairs(c, p, names=True)
    assert not any(name.startswith("fc.") for name, _, _ in named)
    with pytest.raises(RuntimeError, match="do not list the same tensors"):
        lockstep.backbone_pairs(c, create_backbone("resnet20", (3, 32, 32)))


def same(a, b) -> bool:
    return torch.equal(a.detach(), b.detach())


def test_fresh_copy_gives_task_0_everything_and_later_tasks_only_the_arriving_rows():
    """Task 0: the whole backbone and the head rows [0, 2); task 1 (classes 2, 3): rows [2, 4)
    only; the old rows and the trained backbone stay PyCIL's own."""
    c = clbudget_net(0)
    p = IncrementalNet(seed=1, classes=2)
    lockstep.copy_fresh("replay", 0, 0, 2, {"net": c}, p)
    assert all(same(a, b) for a, b in lockstep.backbone_pairs(c.backbone, p.convnet))
    assert same(p.fc.weight, c.head.weight[:2]) and same(p.fc.bias, c.head.bias[:2])

    c1 = clbudget_net(2)           # every value differs from what PyCIL now holds
    p1 = IncrementalNet(seed=3, classes=4)
    before = copy.deepcopy(p1)
    lockstep.copy_fresh("icarl", 1, 2, 4, {"net": c1}, p1)
    assert same(p1.fc.weight[2:4], c1.head.weight[2:4]) and same(p1.fc.bias[2:4], c1.head.bias[2:4])
    assert same(p1.fc.weight[:2], before.fc.weight[:2]) and same(p1.fc.bias[:2], before.fc.bias[:2])
    assert all(same(a, b) for a, b in zip(p1.convnet.state_dict().values(),
                                           before.convnet.state_dict().values()))


def test_resync_copies_the_whole_state_and_the_teacher():
    """--resync at task 1: backbone (BN statistics too), head rows [0, 4), and the teacher's
    backbone and its 2 old rows."""
    c, teacher = clbudget_net(0), clbudget_net(5)
    c.backbone.generalized[1].running_mean.fill_(0.25)          # a BN statistic, copied too
    p, old = IncrementalNet(seed=1, classes=4), IncrementalNet(seed=2, classes=2)
    lockstep.copy_fresh("wa", 1, 2, 4, {"net": c, "teacher": teacher}, p, resync=True,
                        old_network=old)
    assert all(same(a, b) for a, b in lockstep.backbone_pairs(c.backbone, p.convnet))
    assert float(p.convnet.generalized[1].running_mean[0]) == 0.25
    assert same(p.fc.weight, c.head.weight[:4]) and same(p.fc.bias, c.head.bias[:4])
    assert all(same(a, b) for a, b in lockstep.backbone_pairs(teacher.backbone, old.convnet))
    assert same(old.fc.weight, teacher.head.weight[:2]) and same(old.fc.bias, teacher.head.bias[:2])


def test_der_fresh_copy_takes_the_new_rows_the_new_columns_and_the_aux_head():
    """DER at task 1 (old 2, seen 4, two branches): head rows [2, 4) over all 2D columns, the
    old rows' new columns [D, 2D), the auxiliary head (3 outputs); the old rows' first D
    columns and both backbones stay PyCIL's."""
    torch.manual_seed(0)
    c = ExpandingNet(nn.Identity(), create_backbone("resnet32", (3, 32, 32)), D, 10)
    c.grow(2)
    aux = nn.Linear(D, 3)
    p = DERNet(seed=7, branches=2, classes=4, new=2)
    before = copy.deepcopy(p)
    lockstep.copy_fresh("der", 1, 2, 4, {"net": c, "aux": aux}, p)
    assert same(p.fc.weight[2:4], c.head.weight[2:4]) and same(p.fc.bias[2:4], c.head.bias[2:4])
    assert same(p.fc.weight[:2, D:], c.head.weight[:2, D:])
    assert same(p.fc.weight[:2, :D], before.fc.weight[:2, :D])
    assert same(p.fc.bias[:2], before.fc.bias[:2])
    assert same(p.aux_fc.weight, aux.weight) and same(p.aux_fc.bias, aux.bias)
    for mine, theirs in zip(p.convnets, before.convnets):
        assert all(same(a, b) for a, b in zip(mine.state_dict().values(),
                                               theirs.state_dict().values()))


def test_weight_gap_is_relative_to_the_tensor_and_names_it():
    """Equal weights: gap 0.  One BN bias raised by 0.5 where clbudget's largest |value| in
    that tensor is 2: gap 0.5 / 2 = 0.25, named by PyCIL's key; a head weight raised by 0.3
    where the head's rows hold at most 1.5 (set by hand): 0.3 / 1.5 = 0.2."""
    c = clbudget_net(0)
    p = IncrementalNet(seed=1, classes=4)
    lockstep.copy_fresh("replay", 1, 0, 4, {"net": c}, p, resync=True)
    gaps = lockstep.weight_gaps("replay", 4, c, p)
    assert gaps["backbone"] == 0 and gaps["head"] == 0
    with torch.no_grad():
        c.backbone.generalized[1].bias.zero_()[3] = 2.0
        p.convnet.generalized[1].bias.zero_()[3] = 2.0
        p.convnet.generalized[1].bias[5] = 0.5
        c.head.weight[:4] = torch.linspace(-1.5, 1.0, 4 * D).view(4, D)
        p.fc.weight.copy_(c.head.weight[:4])
        p.fc.weight[1, 2] += 0.3
    gaps = lockstep.weight_gaps("replay", 4, c, p)
    assert gaps["backbone"] == pytest.approx(0.25)
    assert gaps["where"] == "generalized.1.bias"
    assert gaps["head"] == pytest.approx(0.2, rel=1e-6)


def test_memory_agreement_counts_same_images_and_same_order():
    """Three classes: 0 the same images in the same order, 1 the same images reordered, 2 one
    image different: 3 classes, 2 with the same images, 1 in the same order, class 1 differing
    from its first exemplar (shortest common prefix 0).  Then class 1 in order: prefix 1
    (class 2's second image).  PyCIL holds
    (N, H, W, C) images, clbudget (N, C, H, W)."""
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (7, 3, 4, 4), dtype=np.uint8)
    c_images, c_labels = imgs[:6], np.array([0, 0, 1, 1, 2, 2])
    p_images = imgs[[0, 1, 3, 2, 4, 6]].transpose(0, 2, 3, 1)
    p_labels = np.array([0, 0, 1, 1, 2, 2])
    assert lockstep.memory_agreement(c_images, c_labels, p_images, p_labels) == \
        {"classes": 3, "same_images": 2, "same_order": 1, "shortest_prefix": 0}
    # class 2's first exemplar agrees, its second does not; class 1 is reordered from its first
    p_images = imgs[[0, 1, 2, 3, 4, 6]].transpose(0, 2, 3, 1)
    assert lockstep.memory_agreement(c_images, c_labels, p_images, p_labels) == \
        {"classes": 3, "same_images": 2, "same_order": 2, "shortest_prefix": 1}


def test_the_run_has_no_augmentation_and_one_batch_an_epoch():
    """Both task phases: augment off, batch size FULL_BATCH (above any training set here:
    10 classes x 500 images + 2000 exemplars); everything else as the parity bench's spec."""
    from bench import parity
    args = lockstep.parse_args(["--pycil", "/x", "--method", "icarl", "--seeds", "0..1"])
    assert (args.epochs, args.per_class, args.seeds) == (3, 250, [0, 1])
    assert lockstep.FULL_BATCH > 10 * 500 + 2000
    spec = lockstep.lockstep_spec(args, 1)
    recipe = spec.resolved_recipe()
    for phase in ("first", "later"):
        assert recipe.phase(phase).augment is False
        assert recipe.phase(phase).batch_size == lockstep.FULL_BATCH
    plain = parity.clbudget_spec(args, 1)
    assert (spec.class_order, spec.max_per_class, spec.seed, spec.method) == \
        (plain.class_order, plain.max_per_class, plain.seed, plain.method) == \
        ("per-seed", 250, 1, "icarl")


def test_augment_and_mini_batches_reach_both_phases_and_turn_the_replay_on():
    args = lockstep.parse_args(["--pycil", "/x", "--method", "wa", "--augment",
                                "--batch-size", "128"])
    recipe = lockstep.lockstep_spec(args, 0).resolved_recipe()
    for phase in ("first", "later"):
        assert recipe.phase(phase).augment is True and recipe.phase(phase).batch_size == 128
    assert lockstep.replays(args)
    assert not lockstep.replays(lockstep.parse_args(["--pycil", "/x", "--method", "wa"]))
    assert lockstep.replays(lockstep.parse_args(["--pycil", "/x", "--method", "wa",
                                                 "--batch-size", "128"]))


@pytest.mark.parametrize("argv,says", [(["--epochs", "0"], "--epochs must be >= 1"),
                                       (["--per-class", "0"], "--per-class must be >= 1"),
                                       (["--batch-size", "0"], "--batch-size must be >= 1")])
def test_bad_arguments_exit(argv, says, capsys):
    with pytest.raises(SystemExit):
        lockstep.parse_args(["--pycil", "/x", "--method", "wa"] + argv)
    assert says in capsys.readouterr().err


def test_patched_restores_own_and_inherited_methods():
    class Base:
        def f(self):
            return "base"

    class Child(Base):
        def g(self):
            return "child"
    with lockstep.patched(Child, "f", lambda orig: lambda self: "new " + orig(self)), \
            lockstep.patched(Child, "g", lambda orig: lambda self: "new " + orig(self)):
        assert (Child().f(), Child().g()) == ("new base", "new child")
    assert (Child().f(), Child().g()) == ("base", "child")
    assert "f" not in Child.__dict__


def test_clbudget_side_records_each_tasks_memory_and_network_as_they_were(monkeypatch):
    """A replay run of 3 tasks of 2 classes with 8 exemplars (a tiny glyph stream): the memory
    recorded after task t holds 8 // seen exemplars of each seen class (4, 2, 1), each old
    class's the first ones it held before (PyCIL's `_reduce_exemplar` keeps a prefix), so the
    records are copies taken then, not views of the memory's later contents; the networks are
    recorded at each task's start with (old, seen) = (0, 2), (2, 4), (4, 6)."""
    from bench import parity
    from clbudget.experiment.run import load, prepare
    from tests.helpers import tiny_spec
    spec = tiny_spec("replay", budget="1xconv2+12ex")
    stream = load(spec)
    assert prepare(spec, stream)[1].allocation.n_exemplars == 8
    monkeypatch.setattr(parity, "MEMORY_SIZE", 8)
    clb = lockstep.run_clbudget(spec, stream)
    counts = [np.bincount(y, minlength=6).tolist() for _, y in clb["memories"]]
    assert counts == [[4, 4, 0, 0, 0, 0], [2, 2, 2, 2, 0, 0], [1] * 6]
    for before, after in zip(clb["memories"], clb["memories"][1:]):
        for k in np.unique(after[1]):
            if k in before[1]:
                kept = after[0][after[1] == k]
                assert np.array_equal(kept, before[0][before[1] == k][:len(kept)])
    assert [(s["old"], s["seen"]) for s in clb["starts"]] == [(0, 2), (2, 4), (4, 6)]
    assert len(clb["ends"]) == 3 and clb["starts"][0]["teacher"] is None


def test_the_task_0_logit_check_passes_a_right_copy_and_stops_a_wrong_one():
    """After a whole copy both networks give the same logits up to float rounding (the same
    weights; a 10-row head sliced to 2 rows against a 2-row head: different matmul kernels,
    about 1e-5 here); a conv weight left off by 0.5 moves them by far more than 1e-4 of the largest logit and the
    bench stops, naming the mapping."""
    from types import SimpleNamespace
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 3, 32, 32), dtype=np.uint8)
    stream = SimpleNamespace(tasks=[SimpleNamespace(test=SimpleNamespace(x=images))])
    c, p = clbudget_net(0), IncrementalNet(seed=1, classes=2)
    lockstep.copy_fresh("replay", 0, 0, 2, {"net": c}, p)
    assert lockstep.same_logits(c, p, stream, 2) < 1e-4
    assert p.training                               # put back in the mode it was in
    with torch.no_grad():
        p.convnet.generalized[0].weight[0] += 0.5
    with pytest.raises(RuntimeError, match="mapped wrongly"):
        lockstep.same_logits(c, p, stream, 2)


def test_state_gap_is_relative_per_tensor_and_skips_integer_buffers():
    """{w: [1, -4], b: [0.5]} against {w: [1, -3], b: [0.25]}: w 1/4, b 0.25/0.5 = 0.5 (the
    largest, named); an integer counter differing is not a weight."""
    a = {"w": torch.tensor([1.0, -4.0]), "b": torch.tensor([0.5]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([1.0, -3.0]), "b": torch.tensor([0.25]), "n": torch.tensor(9)}
    assert lockstep.state_gap(a, b) == (0.5, "b")
    assert lockstep.state_gap(a, a)[0] == 0.0


def test_control_compares_clbudget_with_itself(monkeypatch):
    """The tiny 3-task replay run twice: per task both losses, a gap, both accuracies and the
    memories' agreement over the classes seen (2, 4, 6); each batch of 32 summed in reverse
    order moves the weights by rounding (the losses stay within 1e-3), and the tables render
    (replay keeps no teacher or class means)."""
    from bench import parity
    from clbudget.experiment.run import load
    from tests.helpers import tiny_spec
    spec = tiny_spec("replay", budget="1xconv2+12ex")
    monkeypatch.setattr(parity, "MEMORY_SIZE", 8)
    rows = lockstep.control(spec, load(spec))
    assert [r["task"] for r in rows] == [0, 1, 2]
    assert [r["memory"]["classes"] for r in rows] == [2, 4, 6]
    assert all(len(r["loss"]) == len(r["accuracy"]) == 2 for r in rows)
    assert rows[0]["gap"] > 0                  # the sums' order moved the weights: rounding
    assert rows[0]["loss"][1] == pytest.approx(rows[0]["loss"][0], rel=1e-3)
    assert lockstep.format_control("replay", 0, rows).count("\n| ") == 4
    assert all(r["teacher_gap"] is None and r["class_means_gap"] is None for r in rows)


def test_pycil_is_needed_unless_control(capsys):
    assert lockstep.parse_args(["--control", "--method", "wa"]).pycil is None
    with pytest.raises(SystemExit):
        lockstep.parse_args(["--method", "wa"])
    assert "--pycil PATH" in capsys.readouterr().err


def test_control_beside_pycil_reuses_the_compared_run(monkeypatch):
    """--pycil with --control: the yardstick's first run is the one compared with PyCIL, so
    only the reversed run is made (one clbudget run fewer)."""
    net = nn.Linear(2, 2)
    images, labels = np.zeros((2, 3, 4, 4), np.uint8), np.array([0, 1])
    run = {"ends": [net], "starts": [{"teacher": None, "net": net}],
           "memories": [(images, labels)], "fits": [lockstep_draws.FitRecord([], labels, 1, False)],
           "summary": {"loss": [1.0], "curve": [50.0]}, "class_means": []}
    calls = []
    monkeypatch.setattr(lockstep, "run_clbudget",
                        lambda spec, stream, reverse=False, resync_from=None, follow=None:
                        calls.append(reverse) or run)
    rows = lockstep.control(None, None, run)
    assert calls == [True] and rows[0]["gap"] == 0 and rows[0]["loss"] == [1.0, 1.0]


def test_compare_reports_teacher_class_means_and_batches():
    """One task of two classes: the class means' gap is max|c - p| / max|c| over the seen
    rows ([[1, 0], [0, 2]] against [[1, 0], [0, 1.5]], and a third, unseen PyCIL row left
    out: 0.5 / 2 = 0.25); the teacher's gap is the larger of its backbone's and head's; the
    replayed batches' counts pass through, and the table shows them."""
    c, p = clbudget_net(0), IncrementalNet(seed=1, classes=2)
    lockstep.copy_fresh("icarl", 0, 0, 2, {"net": c}, p, resync=True)
    summary = {"loss": [1.0], "curve": [50.0], "cnn_curve": [40.0], "nme_curve": [50.0]}
    clb = {"summary": summary, "ends": [c], "starts": [{"seen": 2}], "memories": [],
           "class_means": [torch.tensor([[1.0, 0.0], [0.0, 2.0]])]}
    batches = {"batches_equal": 7, "batches": 8, "images_differing": 3,
               "first_batch_equal": True}
    pyc = {"summary": summary, "ends": [p], "memories": [],
           "start_gaps": [{"backbone": 0.0, "head": 0.0}],
           "teacher_gaps": [{"backbone": 0.125, "head": 0.5, "where": "x"}],
           "class_means": [np.array([[1.0, 0.0], [0.0, 1.5], [9.0, 9.0]])],
           "batches": [batches]}
    row, = lockstep.compare("icarl", clb, pyc)
    assert row["class_means_gap"] == pytest.approx(0.25) and row["teacher_gap"] == 0.5
    assert row["batches"] == batches and row["weight_gap_head"] == 0
    table = lockstep.format_rows("icarl", 0, [row], 0.0)
    assert "| 2.50e-01 |" in table and "| 7/8 (3) |" in table and "| 5.00e-01 |" in table


@pytest.mark.parametrize("resync", [False, True])
def test_control_with_resync_starts_every_task_from_the_first_runs_state(monkeypatch, resync):
    """The tiny 3-task WA run and its reversed twin: without resync only task 0 starts from one
    state (the networks and the teacher at tasks 1 and 2 carry the rounding of the reversed
    sums); with it, every task of the reversed run starts from the first run's network and
    teacher, bit for bit, and still ends elsewhere (its own sums)."""
    from bench import parity
    from clbudget.experiment.run import load, prepare
    from tests.helpers import tiny_spec
    spec = tiny_spec("wa", budget="2xconv2+20ex")
    stream = load(spec)
    monkeypatch.setattr(parity, "MEMORY_SIZE", prepare(spec, stream)[1].allocation.n_exemplars)
    rows = lockstep.control(spec, stream, resync=resync)
    assert rows[0]["start_gap"] == 0 and rows[0]["teacher_gap"] is None
    later = [(r["start_gap"], r["teacher_gap"]) for r in rows[1:]]
    if resync:
        assert later == [(0.0, 0.0), (0.0, 0.0)]
    else:
        assert all(g > 0 and t > 0 for g, t in later)
    assert all(r["gap"] > 0 for r in rows)
    assert "started from the first run's state" in lockstep.format_control(
        "wa", 0, rows, resync) or not resync
