"""The protocol choices that must match the references' (issue 24): class order per seed
(PyCIL utils/data_manager.py `_setup_data`), the normalisation a run records, iCaRL's two
accuracies (PyCIL models/base.py `eval_task`), joint from scratch.

Expected values come from the references' rules written out here (numpy's global-seed
permutation, torchvision-style normalisation by hand, argmax of hand-built scores), never from
the code under test."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clbudget.experiment.run import RunSpec, load, run_experiment
from tests.helpers import TINY_GLYPHS, tiny_spec


def pycil_order(shuffle: bool, seed: int, K: int) -> list[int]:
    """PyCIL utils/data_manager.py `_setup_data`, its lines verbatim (idata.class_order of
    iCIFAR10/100 is np.arange(K).tolist(), utils/data.py)."""
    order = [i for i in range(K)]
    if shuffle:
        np.random.seed(seed)
        order = np.random.permutation(len(order)).tolist()
    else:
        order = np.arange(K).tolist()
    return order


# ------------------------------------------------------------------------- class order

@pytest.mark.parametrize("seed", [0, 1, 5, 1993])
def test_class_order_protocols_follow_pycils_setup_data(seed):
    K = 6     # the tiny glyphs data set has 6 classes
    fixed = load(tiny_spec("finetune", seed=seed))
    per_seed = load(tiny_spec("finetune", seed=seed, class_order="per-seed"))
    unshuffled = load(tiny_spec("finetune", seed=seed, class_order="unshuffled"))
    assert list(fixed.class_order) == pycil_order(True, 1993, K)
    assert list(per_seed.class_order) == pycil_order(True, seed, K)
    assert list(unshuffled.class_order) == pycil_order(False, seed, K) == list(range(K))
    # labels are remapped to positions in the order: task 0 holds the order's first classes
    names = load(tiny_spec("finetune", seed=seed, class_order="unshuffled")).class_names
    assert per_seed.class_names == tuple(names[c] for c in pycil_order(True, seed, K))


def test_class_order_protocol_errors_name_the_nearest_choice():
    with pytest.raises(ValueError, match="nearest: per-seed"):
        tiny_spec("finetune", class_order="perseed").order_seed
    assert tiny_spec("finetune").key != tiny_spec("finetune", class_order="per-seed").key


def test_sweep_with_per_seed_orders_records_a_different_order_per_seed(tmp_path):
    from clbudget.experiment.store import ResultStore
    from clbudget.experiment.sweep import run_cells
    from clbudget.analysis.audit_pairing import run_flags
    from clbudget.analysis.compute import provenance
    cells = [tiny_spec(m, seed=s, class_order="per-seed", epochs=1, num_classes=4)
             for m in ("finetune", "replay") for s in (0, 1)]
    store = ResultStore(tmp_path)
    assert run_cells(cells, store)["finished"] == 4
    rows = store.rows("finished")
    for r in rows:
        assert r["spec"]["class_order"] == "per-seed" == r["class_order_protocol"]
        assert r["class_order"] == pycil_order(True, r["seed"], 6)[:4]
    orders = {r["seed"]: tuple(r["class_order"]) for r in rows}
    assert orders[0] != orders[1]
    prov = provenance(rows)["class_orders"]
    assert len(prov) == 2 and all(p.startswith("per-seed (seed ") for p in prov)
    # pairing: two methods on the same seeds' per-seed orders are paired, not flagged
    ft = [r for r in rows if r["method"] == "finetune"]
    rp = [r for r in rows if r["method"] == "replay"]
    assert [f for f in run_flags(ft, rp, "finetune", "replay") if f["kind"] == "class_order"] == []
    # ... but the same seed on another order is
    swapped = [dict(r, class_order=orders[1 - r["seed"]]) for r in rp]
    kinds = [f["kind"] for f in run_flags(ft, swapped, "finetune", "replay")]
    assert "class_order" in kinds
    # and a per-seed run is not paired with a fixed-order run
    fixed = [dict(r, spec={**r["spec"], "class_order": "fixed"}) for r in rp]
    assert "class_order" in [f["kind"] for f in run_flags(ft, fixed, "finetune", "replay")]


# ------------------------------------------------------------------------- normalisation

# the references' published constants, copied from their files
PYCIL_CIFAR10 = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))     # PyCIL utils/data.py
MAMMOTH_CIFAR100 = ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761))  # Mammoth seq_cifar100.py


def train_set_stats(spec):
    """Per-channel mean and (ddof 1) std of every training image of the spec's stream, numpy."""
    stream = load(spec)
    v = np.concatenate([t.train.x for t in stream.tasks]).astype(np.float64) / 255
    return v.mean((0, 2, 3)), v.transpose(1, 0, 2, 3).reshape(v.shape[1], -1).std(1, ddof=1)


@pytest.mark.parametrize("method, choice, kind", [
    ("finetune", "recipe", "train-set"),        # pycil-finetune on glyphs: PyCIL has no constants
    ("finetune", "pycil:cifar10", "constants"),
    ("derpp", "mammoth:cifar100", "constants"),
    ("derpp", "train-set", "train-set"),
])
def test_rows_record_the_normalisation_the_pipeline_applied(monkeypatch, method, choice, kind):
    from clbudget.train.loop import Pipeline
    applied = set()
    call = Pipeline.__call__

    def spy(self, x, *a, **kw):
        applied.add((tuple(self.mean), tuple(self.std)))
        return call(self, x, *a, **kw)
    monkeypatch.setattr(Pipeline, "__call__", spy)
    spec = tiny_spec(method, normalization=choice, num_classes=4)
    row = run_experiment(spec)
    n = row["normalization"]
    # the row's values are the ones every training and evaluation batch was normalised with
    assert applied == {(tuple(n["mean"]), tuple(n["std"]))}
    assert n["kind"] == kind
    if kind == "constants":
        expected = {"pycil:cifar10": PYCIL_CIFAR10, "mammoth:cifar100": MAMMOTH_CIFAR100}[choice]
        assert (tuple(n["mean"]), tuple(n["std"])) == expected
        assert f"{n['source']}:{n['dataset']}" == choice
        assert row["recipe"]["applied_normalization"] == f"constants:{choice}"
    else:
        mean, std = train_set_stats(spec)
        np.testing.assert_allclose(n["mean"], mean, atol=1e-9)
        np.testing.assert_allclose(n["std"], std, atol=1e-9)
        assert n["source"] is None and row["recipe"]["applied_normalization"] == "train-set"
    if choice == "recipe":   # the recipe asked for PyCIL's constants: the row says why not
        assert row["recipe"]["normalization"] == "pycil"
        assert "publishes for no 'glyphs'" in n["why"]


def test_normalization_choice_errors_name_the_nearest_valid_value():
    from clbudget.train.recipes import declared_dataset, parse_normalization
    for bad, nearest in (("pycil:cifar1", "pycil:cifar10"), ("mamoth:cifar100", "mammoth:cifar100"),
                         ("trainset", "train-set"), ("pycil:glyphs", "pycil:")):
        with pytest.raises(ValueError, match=f"nearest: {nearest}"):
            parse_normalization(bad)
    assert parse_normalization("PyCIL:CIFAR10") == ("constants", "pycil:cifar10")
    assert declared_dataset("imagefolder", "pycil:cifar10") == "cifar10"
    assert declared_dataset("imagefolder", "train-set") == "imagefolder"
    with pytest.raises(ValueError, match="nearest: per-seed"):
        tiny_spec("finetune", class_order="perseed", normalization="x").order_seed


def test_report_provenance_names_the_normalisation_and_class_order():
    from clbudget.analysis.compute import provenance
    row = {"status": "finished", "method": "icarl", "spec": {"class_order": "fixed"},
           "seed": 0, "class_order_seed": 1993, "class_order": [3, 1, 0, 2],
           "class_order_protocol": "fixed",
           "normalization": {"kind": "constants", "source": "pycil", "dataset": "cifar10",
                             "mean": list(PYCIL_CIFAR10[0]), "std": list(PYCIL_CIFAR10[1])},
           "accuracy": {"headline": "nme", "also": ["cnn"]}}
    prov = provenance([row])
    assert prov["normalization"] == ["constants of pycil for cifar10: mean (0.4914, 0.4822, "
                                     "0.4465), std (0.2023, 0.1994, 0.2010)"]
    assert prov["class_orders"] == ["fixed (seed 1993): 3 1 0 2"]
    assert prov["accuracy_headlines"] == ["icarl: nme (also cnn)"]


# ------------------------------------------------------------------------- iCaRL's two accuracies

def test_icarl_rows_carry_nme_and_cnn_accuracies_by_value(monkeypatch):
    """Both classifiers' matrices, each from its own scores.  NME is made to always answer
    class 0, the linear head class 2 (else 3, else 1): on 3 tasks of 2 classes with equal test
    images per class the matrices follow by hand (masking unseen classes as PyCIL's
    `_eval_cnn` slices seen logits)."""
    from clbudget.methods.icarl import ICaRL

    def constant(order):
        def scores(self, x):
            s = torch.zeros(len(x), 6, device=x.device)
            s[:] = torch.tensor(order, dtype=torch.float32)
            return s
        return scores
    monkeypatch.setattr(ICaRL, "scores", constant([3, 0, 1, 2, 0, 0]))       # NME: class 0
    monkeypatch.setattr(ICaRL, "cnn_scores", constant([0, 1, 3, 2, 0, 0]))   # CNN: 2, 3, 1
    row = run_experiment(tiny_spec("icarl"))
    acc = row["accuracy"]
    assert acc["headline"] == "nme" and acc["also"] == ["cnn"]
    # NME: class 0 everywhere -> half of task 0's images, none of the others
    nme = [[0.5, None, None], [0.5, 0.0, None], [0.5, 0.0, 0.0]]
    # CNN: task 0 sees classes 0,1 -> 1 (half of task 0); later: class 2 (half of task 1)
    cnn = [[0.5, None, None], [0.0, 0.5, None], [0.0, 0.5, 0.0]]
    assert acc["matrix"] == acc["nme"]["matrix"] == nme
    assert acc["cnn"]["matrix"] == cnn
    # seen-class accuracy per step: 12 right of 24, 48, 72 test images, for both
    assert acc["cnn"]["per_step"] == pytest.approx([0.5, 0.25, 1 / 6])
    assert acc["last"] == acc["nme"]["last"] == pytest.approx(1 / 6)
    # task-aware: within task j, NME's 0 > 0 tie -> first class; CNN prefers 1, 2, then 5>4 tie
    assert acc["nme"]["task_aware"]["matrix"][2] == [0.5, 0.5, 0.5]
    assert acc["cnn"]["task_aware"]["matrix"][2] == [0.5, 0.5, 0.5]
    assert acc["cnn"]["task_aware"]["matrix"][1] == [0.5, 0.5, None]
    # a method with one classifier has no such fields
    assert "headline" not in run_experiment(tiny_spec("finetune", num_classes=4))["accuracy"]


# ------------------------------------------------------------------------- joint from scratch

def bn_untouched(net) -> bool:
    """Every BatchNorm as constructed: running mean 0, variance 1, no batch tracked."""
    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    return bool(bns) and all(int(m.num_batches_tracked) == 0 and not m.running_mean.any()
                             and bool((m.running_var == 1).all()) for m in bns)


@pytest.mark.parametrize("start_from", ["scratch", "continue"])
def test_joint_trains_a_fresh_network_at_every_task(start_from):
    """Mammoth models/joint.py trains a never-trained network on all tasks' data; joint's
    default does so at every task ("continue": the previous network goes on)."""
    from tests.test_parity import captured, run_task, start
    options = () if start_from == "scratch" else (("start", start_from),)   # scratch: default
    method, tasks = start("joint", method_options=options)
    run_task(method, tasks[0])
    trained = method.net
    assert not bn_untouched(trained)
    for t in (1, 2):
        method.begin_task(tasks[t])
        box = captured(method, tasks[t])
        fresh = method.net is not trained
        assert fresh == (start_from == "scratch")
        assert bn_untouched(method.net) == fresh
        # the step trains this network's parameters, on every seen task's images
        held = [p.data_ptr() for p in method.net.parameters()]
        assert [p.data_ptr() for p in box["params"]] == held
        assert torch.equal(box["x"], torch.cat([tk.x for tk in tasks[:t + 1]]))
        # a fresh network trains with the from-scratch phase (PyCIL's first-task schedule)
        recipe = method.ctx.recipe
        assert box["cfg"] == recipe.phase("first" if fresh else "later")
        method.end_task(tasks[t])
        trained = method.net
        trained.train()
        with torch.no_grad():     # stands in for training: the next task must not start here
            trained(method.trainer.inputs(tasks[t].x[:8]))
    assert recipe.phase("first") != recipe.phase("later")
    with pytest.raises(ValueError, match="scratch or continue"):
        start("joint", method_options=(("start", "fresh"),))


# ------------------------------------------------------------------------- EWC's Fisher

def test_ewc_fisher_is_mammoths_train_mode_augmented_per_image_pass():
    """Mammoth models/ewc_on.py end_task, written out again: the shuffled, augmented loader
    (batch 4 over 6 images: 2 batches), train mode, one image at a time, p(y|x) * grad^2 of
    log p(y|x), divided by batches x batch size = 8 (not 6); BN statistics move per image."""
    import copy
    from tests.test_parity import run_task, start
    method, tasks = start("ewc", batch_size=4)
    run_task(method, tasks[0])
    task = tasks[0]
    sub = type(task)(task.index, task.classes, task.x[:6], task.y[:6], task.x_test, task.y_test)
    assert method.phase().augment and method.phase().batch_size == 4
    net = copy.deepcopy(method.net)
    before = [b.clone() for b in net.buffers()]
    g = torch.Generator()
    g.set_state(method.trainer.generator.get_state())
    got = method.task_fisher(sub)
    # the reference pass, on a copy, with the same random draws
    net.train()
    ref = [torch.zeros_like(p, dtype=torch.float64) for p in net.parameters()]
    order = torch.randperm(6, generator=g)
    for b in (0, 4):
        idx = order[b:b + 4]
        xb = method.trainer.pipeline(sub.x[idx], True, g)              # the train transform
        for ex, lab in zip(xb, sub.y[idx]):
            out = net(ex.unsqueeze(0))
            loss = -F.nll_loss(F.log_softmax(out, 1), lab.view(1), reduction="none")
            exp_cond_prob = float(torch.exp(loss.detach()).mean())
            grads = torch.autograd.grad(loss.mean(), list(net.parameters()))
            for r, gr in zip(ref, grads):
                r += exp_cond_prob * gr.double() ** 2
    for gt, r in zip(got, ref):
        torch.testing.assert_close(gt.double(), r / 8, atol=1e-7, rtol=1e-4)
    # Mammoth's pass runs BN in train mode: running statistics moved, as on the copy
    for a, b in zip(method.net.buffers(), net.buffers()):
        torch.testing.assert_close(a.double(), b.double())
    assert any(not torch.equal(a, b) for a, b in zip(net.buffers(), before))
    with pytest.raises(ValueError, match="mammoth or eval"):
        start("ewc", method_options=(("fisher", "train"),))


# ------------------------------------------------------------------------- DER++ replays augmented

def test_derpp_replays_buffer_samples_through_the_train_transform():
    """Mammoth models/derpp.py: `self.buffer.get_data(minibatch_size, transform=self.transform)`
    for both replay terms: buffer images are augmented like the stream's.  The step's loss is
    rebuilt with the same draws (sample, then crop/flip of the sample, twice)."""
    from tests.test_parity import batch, captured, ce, run_task, start, step_loss
    method, tasks = start("derpp")
    assert method.phase("later").augment
    run_task(method, tasks[0])
    memory, n = method.memory, len(method.memory)
    images, labels, z = (memory.images[:n].clone(), memory.labels[:n].long().clone(),
                         memory.logits[:n].clone())
    method.begin_task(tasks[1])
    box = captured(method, tasks[1])
    xb, yb, idx = batch(method, tasks[1], n=8)
    g = method.trainer.generator
    state = g.get_state()
    got = step_loss(method, box, xb, yb, idx)
    mb, pipe, net = method.config.minibatch_size, method.trainer.pipeline, method.net

    def reference(augment: bool) -> float:
        g.set_state(state)
        i1 = torch.randperm(n, generator=g)[:mb]
        x1 = pipe(images[i1], augment, g)
        i2 = torch.randperm(n, generator=g)[:mb]
        x2 = pipe(images[i2], augment, g)
        with torch.no_grad():
            mse = ((net(x1).double() - z[i1].double()) ** 2).mean()
            return float(ce(net(xb), yb) + 0.2 * mse + 0.5 * ce(net(x2), labels[i2]))
    assert got == pytest.approx(reference(True), abs=1e-5)
    assert abs(reference(True) - reference(False)) > 1e-3     # the test can tell them apart


# ------------------------------------------------------------------------- Mammoth per data set

@pytest.mark.parametrize("method, mammoth", [("derpp", "derpp"), ("ewc", "ewc_on")])
def test_mammoth_methods_pick_their_data_sets_recipe(method, mammoth):
    """seq-cifar100: 50 epochs, batch 32, decays at 35/45 (datasets/seq_cifar100.py); derpp's
    models/config/derpp.yaml: lr 0.03 -> xder.yaml gamma 0.2; ewc_on (none listed): gamma 0.1,
    seq-cifar10's lr 0.1 (models/config/ewc_on.yaml); seq-cifar10: constant lr.  A tree
    declared cifar100 by --normalization picks cifar100's; other data sets seq-cifar10's."""
    def recipe(dataset, normalization="recipe"):
        return RunSpec(method=method, dataset=dataset, normalization=normalization,
                       epochs=None).resolved_recipe()
    c100 = recipe("cifar100")
    assert c100.name == f"mammoth-seq-cifar100-{mammoth}"
    later = c100.phase("later")
    assert (later.epochs, later.batch_size, later.lr, later.momentum, later.weight_decay,
            later.milestones, later.gamma) == (50, 32, 0.03 if method == "derpp" else 0.1,
                                               0.0, 0.0, (35, 45),
                                               0.2 if method == "derpp" else 0.1)
    assert recipe("imagefolder", "mammoth:cifar100").name == c100.name
    for other in (recipe("cifar10"), recipe("imagefolder", "pycil:cifar10"), recipe("glyphs")):
        assert other.name == f"mammoth-seq-cifar10-{mammoth}"
        assert other.phase("later").schedule == "constant"
    assert RunSpec(method="icarl", dataset="cifar100").resolved_recipe().name == "pycil-icarl"


def test_mammoth_resnet18_has_the_parameters_counted_by_hand(capsys):
    """Mammoth backbone/ResNetBlock.py resnet18, nf 64, by hand:
    conv1 3*64*9 = 1,728 + bn 128; layer1 2 x (2 x 36,864 + 2 x 128) = 147,968;
    layer2 (73,728 + 147,456 + 8,192 shortcut + 3 x 256) + (2 x 147,456 + 2 x 256) = 525,568;
    layer3 (294,912 + 589,824 + 32,768 + 3 x 512) + (2 x 589,824 + 2 x 512) = 2,099,712;
    layer4 (1,179,648 + 2,359,296 + 131,072 + 3 x 1,024) + (2 x 2,359,296 + 2 x 1,024)
    = 8,393,728; backbone 11,168,832; head 512 x 10 + 10 = 5,130: 11,173,962."""
    import json
    from clbudget.nets.backbones import create_backbone
    from tests.helpers import cli
    net = create_backbone("mammoth-resnet18", (3, 32, 32))
    assert sum(p.numel() for p in net.parameters()) == 11_168_832
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 512)
    # the CIFAR stem at every size (Mammoth's), unlike resnet18's ImageNet stem above 64 px
    assert create_backbone("mammoth-resnet18", (3, 96, 96))(torch.zeros(1, 3, 96, 96)).shape \
        == (1, 512)
    first = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    assert (first.kernel_size, first.stride) == ((3, 3), (1, 1))
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in net.modules())
    code, out, _ = cli(capsys, "budget", "model", "mammoth-resnet18", "--num-classes", "10",
                       "--convention", "strict", "--json")
    assert code in (0, None)
    priced = json.loads(out)
    # strict: every parameter at 4 bytes + BN buffers (4,800 channels x 2 x 4 B + 20 x 8 B
    # num_batches_tracked = 38,560 B)
    assert priced["params"] == 11_173_962
    assert priced["bytes"] == 11_173_962 * 4 + 38_560


def test_icarl_task_aware_curves_of_both_classifiers_weigh_tasks_by_test_images(monkeypatch):
    """B4Inc2 on 6 glyph classes with one test image per class: task 0 has 4 test images
    (classes 0-3), task 1 has 2 (classes 4, 5).  Each classifier answers a constant ranking,
    so within a task it always picks the same class: 1 of task 0's 4 images right, 1 of task
    1's 2.  Task-aware matrix rows, by hand: [1/4], [1/4, 1/2].  The curve of the task-aware
    accuracy is the accuracy over every seen test image, as the task-agnostic one and PyCIL's
    accuracy() "total" (utils/toolkit.py: correct / len(y_true)): after task 1, (1 + 1) / 6 =
    1/3, not the mean of the task accuracies (1/4 + 1/2) / 2 = 3/8.  Both classifiers, NME
    (the headline) and the linear head (accuracy.cnn), follow that one rule."""
    from clbudget.methods.icarl import ICaRL

    def constant(order):
        def scores(self, x):
            return torch.tensor(order, dtype=torch.float32, device=x.device).expand(len(x), 6)
        return scores
    monkeypatch.setattr(ICaRL, "scores", constant([3, 0, 1, 2, 0, 1]))       # task 0 -> 0, 1 -> 5
    monkeypatch.setattr(ICaRL, "cnn_scores", constant([0, 1, 3, 2, 1, 0]))   # task 0 -> 2, 1 -> 4
    glyphs = tuple(kv for kv in TINY_GLYPHS if kv[0] != "test_per_class") + (
        ("test_per_class", 1),)
    row = run_experiment(tiny_spec("icarl", init=4, inc=2, glyphs_options=glyphs))
    acc = row["accuracy"]
    for name in ("nme", "cnn"):
        aware = acc[name]["task_aware"]
        assert aware["matrix"] == [[0.25, None], [0.25, 0.5]], name
        assert aware["per_step"] == pytest.approx([1 / 4, 1 / 3]), name
        assert aware["last"] == pytest.approx(1 / 3), name
        assert aware["average_incremental"] == pytest.approx((1 / 4 + 1 / 3) / 2), name
    assert acc["task_aware"]["per_step"] == acc["nme"]["task_aware"]["per_step"]
