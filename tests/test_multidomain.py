"""Multi-domain and domain-incremental streams (streams/multidomain.py).

Expected values come from outside the code under test: class orders from numpy's
`RandomState(1993).permutation` (PyCIL's rule, written out here), Fashion-MNIST images and
labels read back from Debian's IDX files by a second reader in this file (gzip + the IDX
header by hand), byte counts written from the shapes (3*32*32 = 3,072 bytes a stored image),
accuracies by hand.  Mutants: bench/mutant_catalog/multidomain.py.
"""
from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clbudget.experiment.metrics import domain_accuracy
from clbudget.experiment.run import prepare, to_device
from clbudget.streams.multidomain import (DEFAULT_ROOTS, Component, data_roots,
                                          load_multidomain, parse_stream, split_sizes, unify)
from tests.helpers import cli, held_bytes, real_fashion_mnist, tiny_spec

FASHION = Path(DEFAULT_ROOTS["fashion-mnist"])
TINY_GLYPHS = (("num_classes", 4), ("train_per_class", 12), ("test_per_class", 4),
               ("image_size", 32), ("seed", 0), ("style", "plain"))


@pytest.fixture(scope="module")
def fashion():
    """Fashion-MNIST's raw test images and labels, read here without clbudget's reader."""
    files = [real_fashion_mnist() / f"t10k-{k}-idx{n}-ubyte.gz"
             for k, n in (("images", 3), ("labels", 1))]
    with gzip.open(files[0]) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(files[1]) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    return x, y


def glyphs_kw():
    from clbudget.streams import GlyphsOptions
    return dict(glyphs_options=GlyphsOptions(**dict(TINY_GLYPHS)))


# ---------------------------------------------------------------------------- spec

def test_parse_stream_components_and_unequal_splits():
    spec = parse_stream("cifar10:2+Fashion-MNIST/3+glyphs/10:3")
    assert spec.components == (Component("cifar10", None, 2), Component("fashion-mnist", 3, 1),
                               Component("glyphs", 10, 3))
    assert not spec.domain_incremental
    assert split_sizes(10, 3) == (4, 3, 3)      # the first tasks take the extra class
    assert split_sizes(7, 2) == (4, 3)
    assert split_sizes(3, 1) == (3,)
    di = parse_stream("glyphs/5@identity,invert,rot90")
    assert di.components == (Component("glyphs", 5, 1),)
    assert di.domains == ("identity", "invert", "rot90")


@pytest.mark.parametrize("text, words", [
    ("cifar10+fashon-mnist", ["fashon-mnist", "nearest: fashion-mnist"]),
    ("glyphs/200", ["1..100", "200"]),
    ("glyphs/4:5", ["T must be 1..4"]),
    ("cifar10++glyphs", ["empty component"]),
    ("glyphs/4@identity,invrt", ["invrt", "nearest: invert"]),
    ("glyphs/4@identity", ["at least 2 domains"]),
    ("glyphs+cifar10@identity,invert", ["one data set"]),
    ("glyphs/4:2@identity,invert", ["NAME[/K]"]),
])
def test_bad_stream_specs_say_what_is_valid(text, words):
    with pytest.raises(ValueError) as e:
        parse_stream(text)
    for w in words:
        assert w in str(e.value)


def test_data_roots_by_name_bare_and_default():
    assert data_roots("cifar10=/a,fashion-mnist=/b", ["cifar10", "fashion-mnist", "glyphs"]) \
        == {"cifar10": "/a", "fashion-mnist": "/b"}
    assert data_roots("/a", ["cifar10", "glyphs"]) == {"cifar10": "/a"}
    assert data_roots(None, ["fashion-mnist"]) == {"fashion-mnist": str(FASHION)}
    with pytest.raises(ValueError, match="NAME=PATH for each"):
        data_roots("/a", ["cifar10", "fashion-mnist"])
    with pytest.raises(ValueError, match="cifar10"):
        data_roots("mnist=/a", ["cifar10", "glyphs"])


# ---------------------------------------------------------------------------- images

def test_unify_pads_grey_28_to_rgb_32_centred():
    x = np.arange(2 * 28 * 28, dtype=np.int64).reshape(2, 1, 28, 28).astype(np.uint8)
    out = unify(x)
    assert out.shape == (2, 3, 32, 32) and out.dtype == np.uint8
    for c in range(3):          # the original, replicated, 2 pixels in from every side
        assert np.array_equal(out[:, c, 2:30, 2:30], x[:, 0])
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert not out[:, :, border].any()
    odd = unify(np.full((1, 1, 5, 3), 9, np.uint8), (3, 8, 8))   # (8-5)//2 = 1, (8-3)//2 = 2
    assert odd[0, 0, 1:6, 2:5].tolist() == [[9] * 3] * 5 and odd.sum() == 9 * 15 * 3


def test_unify_scales_larger_images_and_refuses_two_channels():
    big = np.zeros((1, 3, 64, 64), np.uint8)
    big[:, 0] = 200               # a red square stays red at 32x32
    out = unify(big)
    assert out.shape == (1, 3, 32, 32) and (out[0, 0] == 200).all() and not out[0, 1:].any()
    with pytest.raises(ValueError, match="grey"):
        unify(np.zeros((1, 2, 8, 8), np.uint8))


# ---------------------------------------------------------------------------- streams

def test_multidomain_stream_global_labels_from_the_idx_files(fashion, tmp_path):
    raw_x, raw_y = fashion
    s = load_multidomain("glyphs/4:2+fashion-mnist/3:1", None, max_per_class=5,
                         max_test_per_class=6, cache_dir=tmp_path, **glyphs_kw())
    assert s.increments == (2, 2, 3) and s.num_classes == 7 and s.num_tasks == 3
    assert s.task_offsets == (0, 2, 4) and s.image_shape == (3, 32, 32)
    assert s.task_domains == ("glyphs", "glyphs", "fashion-mnist")
    assert [t.classes for t in s.tasks] == [(0, 1), (2, 3), (4, 5, 6)]
    order = np.random.RandomState(1993).permutation(10)[:3].tolist()   # PyCIL's class order
    assert list(s.class_order[4:]) == order
    names = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
             "Sneaker", "Bag", "Ankle boot")
    assert s.class_names[4:] == tuple(f"fashion-mnist/{names[c]}" for c in order)
    for t in s.tasks:   # the caps; the tiny glyphs make 4 test images a class
        test_cap = 6 if t.index == 2 else 4
        for split, per_class in ((t.train, 5), (t.test, test_cap)):
            assert split.x.shape[1:] == (3, 32, 32) and split.x.dtype == np.uint8
            assert sorted(np.unique(split.y).tolist()) == list(t.classes)
            assert np.bincount(split.y)[list(t.classes)].tolist() == [per_class] * len(t.classes)
    test = s.tasks[2].test                # every image is a raw test image of its class, padded
    flat = raw_x.reshape(len(raw_x), -1)
    for img, label in zip(test.x, test.y):
        assert np.array_equal(img[0], img[2]) and not img[:, :2].any()
        (hits,) = np.nonzero((flat == img[0, 2:30, 2:30].reshape(-1)).all(1))
        assert len(hits) >= 1 and raw_y[hits[0]] == order[label - 4]


def test_imagefolder_component_and_unequal_tasks(tmp_path):
    """An ImageFolder tree (the CIFAR-10 JPEG layout) as the first component; 40x40 images
    are scaled to 32x32; its labels 0..K-1 come first, glyphs' after."""
    root = tmp_path / "c10"
    for split, n in (("train", 3), ("test", 2)):
        for k in range(10):
            (root / split / f"class{k}").mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((40, 40, 3), 20 * k + i, np.uint8)).save(
                    root / split / f"class{k}" / f"{i}.png")
    s = load_multidomain("cifar10/5:2+glyphs/3:2", f"cifar10={root}", cache_dir=tmp_path / "c",
                         **glyphs_kw())
    assert s.increments == (3, 2, 2, 1) and s.task_offsets == (0, 3, 5, 7)
    order = np.random.RandomState(1993).permutation(10)[:5].tolist()
    assert list(s.class_order[:5]) == order
    first = s.tasks[0].train
    assert first.x.shape == (9, 3, 32, 32)
    for img, label in zip(first.x, first.y):   # a solid image keeps its value per class
        assert set(np.unique(img).tolist()) <= {20 * order[label] + i for i in range(3)}
    assert sorted(np.unique(s.tasks[3].test.y).tolist()) == [7]


def test_domain_incremental_stream_keeps_the_labels_and_splits_the_images(tmp_path):
    s = load_multidomain("glyphs/3@identity,invert,rot90", None, max_per_class=9,
                         max_test_per_class=4, cache_dir=tmp_path, **glyphs_kw())
    assert s.domain_incremental and s.num_classes == 3 and s.increments == (3, 3, 3)
    assert s.task_offsets == (0, 0, 0) and [t.classes for t in s.tasks] == [(0, 1, 2)] * 3
    assert s.task_domains == ("glyphs@identity", "glyphs@invert", "glyphs@rot90")
    for t in s.tasks:                 # 9 images a class cut into 3 disjoint parts of 3
        assert np.bincount(t.train.y).tolist() == [3, 3, 3]
    train = np.concatenate([s.tasks[0].train.x, 255 - s.tasks[1].train.x,
                            np.rot90(s.tasks[2].train.x, k=-1, axes=(2, 3))])
    assert len({img.tobytes() for img in train}) == 27     # no image in two domains
    t0, t1, t2 = (t.test for t in s.tasks)
    assert np.array_equal(t1.x, 255 - t0.x) and np.array_equal(t1.y, t0.y)
    a = t0.x[0, 0]
    assert np.array_equal(t2.x[0, 0], np.array([[a[r][31 - c] for r in range(32)]
                                                 for c in range(32)]))   # 90 deg anticlockwise


def test_domain_accuracy_by_hand():
    labels = [np.array([0, 1, 2, 0]), np.array([1, 1])]     # domain 1 has 2 test images
    predictions = [[np.array([0, 1, 2, 2])],                # after task 0: 3/4 on domain 0
                   [np.array([0, 1, 0, 2]), np.array([1, 1])]]   # 2/4 and 2/2
    got = domain_accuracy(predictions, labels)
    assert got["matrix"] == [[0.75, None], [0.5, 1.0]]
    assert got["seen"] == [0.75, 4 / 6]     # (2 + 2) / (4 + 2): per image, not 0.75 a domain
    assert got["last"] == 4 / 6 and got["average_incremental"] == (0.75 + 4 / 6) / 2
    assert got["forgetting"] == 0.25        # domain 0: 0.75 -> 0.5


# ---------------------------------------------------------------------------- ledgers and runs

MIXED = "glyphs/4:2+fashion-mnist/2:1"


def mixed_spec(method: str, **kw) -> dict:
    spec = tiny_spec(method, dataset=MIXED, num_classes=None, max_per_class=12,
                     max_test_per_class=4, glyphs_options=TINY_GLYPHS, budget="2xconv2+30ex",
                     **kw)
    return spec


@pytest.mark.parametrize("method", ["replay", "bmc"])
def test_ledger_counts_mixed_stream_exemplars_at_the_stored_shape(method, fashion, tmp_path):
    """Fashion-MNIST images (784 bytes as read) are held as 3x32x32 uint8 = 3,072 bytes, and
    the ledger equals the tensors held after every task."""
    spec = dataclasses.replace(mixed_spec(method), cache_dir=str(tmp_path))
    stream, ctx, m = prepare(spec)
    for task in to_device(stream, ctx.device):
        m.begin_task(task)
        m.learn(task)
        m.end_task(task)
        assert m.ledger("strict").total_bytes == held_bytes(m), task.index
    items = {i["name"]: i["n_bytes"] for i in m.ledger("strict").to_dict()["items"]}
    n = m.memory.capacity
    assert n >= 6 and items["memory.images"] == n * 3072 == n * 3 * 32 * 32
    assert items["memory.labels"] == n * m.memory.labels.element_size()
    held = m.memory.images[:m.memory.count]
    fashion_held = held[m.memory.labels[:m.memory.count] >= 4]
    assert len(fashion_held) >= 1
    img = fashion_held[0].cpu().numpy()           # one stored Fashion-MNIST exemplar
    assert img.nbytes == 3072 and not img[:, :2].any() and np.array_equal(img[0], img[1])
    flat = fashion[0].reshape(len(fashion[0]), -1)
    train_x = np.concatenate([t.train.x for t in stream.tasks])
    assert (train_x.reshape(len(train_x), -1) == img.reshape(-1)).all(1).any()
    assert flat.shape[1] == 784


@pytest.mark.parametrize("method", ["bmc", "clr", "mind"])
def test_cli_run_on_a_tiny_multidomain_stream(method, capsys, monkeypatch, tmp_path):
    """`clbudget run --stream ...` finishes; after every task the ledger equals the held
    tensors (checked where the run checks the budget); both accuracies are reported."""
    import clbudget.experiment.run as run_module
    checked = []
    check = run_module.check_budget

    def checking(m, allocation, index):
        assert m.ledger("strict").total_bytes == held_bytes(m), (method, index)
        checked.append(index)
        check(m, allocation, index)

    monkeypatch.setattr(run_module, "check_budget", checking)
    other = {"bmc": "consolidation", "clr": "pretrain", "mind": "teacher"}[method]
    glyphs = [a for k, v in TINY_GLYPHS for a in ("--glyphs", f"{k}={v}")]
    code, out, err = cli(capsys, "run", "--method", method, "--stream", MIXED, "--epochs", "1",
                         "--max-per-class", "12", "--max-test-per-class", "4", *glyphs,
                         "--backbone", "conv2", "--budget", "2xconv2+30ex", "--batch-size", "32",
                         "--recipe-option", f"{other}.epochs=1", "--device", "cpu",
                         "--cache-dir", str(tmp_path), "--json")
    assert code == 0, err
    import json
    row = json.loads(out)
    assert checked == [0, 1, 2] and row["increments"] == [2, 2, 2]
    assert row["spec"]["dataset"] == MIXED
    aware = row["accuracy"]["task_aware"]
    assert len(aware["matrix"]) == 3 and 0 <= aware["last"] <= 1
    if method != "clr":   # CLR is task-aware only (its paper's setting)
        assert row["accuracy"]["setting"] == "task-agnostic" and 0 <= row["accuracy"]["last"] <= 1


def test_stream_flag_excludes_dataset_and_protocol(capsys):
    code, _, err = cli(capsys, "run", "--method", "replay", "--budget", "1MiB", "--stream", MIXED, "--init", "2",
                       "--inc", "2")
    assert code == 2 and "--init, --inc do not apply to --stream" in err
    code, _, err = cli(capsys, "run", "--method", "replay", "--budget", "1MiB", "--dataset", "glyphs")
    assert code == 2 and "--init, --inc (or give --stream)" in err


# ---------------------------------------------------------------------------- domain-incremental runs

class _Trainer:
    device = torch.device("cpu")

    def predict(self, score, x):
        return score(x)


class _Oracle:
    """A stand-in method whose prediction is written in each image's first pixel: the
    evaluator's arithmetic is then checked against hand counts, not against a model."""
    task_aware_only = False
    trainer = _Trainer()

    def __init__(self, increments):
        from types import SimpleNamespace
        from clbudget.methods.base import Context
        self.ctx = SimpleNamespace(offsets=Context.offsets.fget(
            SimpleNamespace(increments=increments)))
        self.seen = sum(increments)

    def eval(self):
        pass

    def scores(self, x):   # (B, K): one-hot of the class in pixel (0, 0, 0)
        return torch.nn.functional.one_hot(x[:, 0, 0, 0].long(), self.seen).float()

    task_scores = None


def _task(index, classes, labels, predicted):
    from clbudget.methods.base import TaskData
    x = torch.zeros((len(labels), 3, 2, 2), dtype=torch.uint8)
    x[:, 0, 0, 0] = torch.tensor(predicted)
    y = torch.tensor(labels)
    return TaskData(index, classes, x, y, x, y)


def test_evaluate_on_a_domain_incremental_stream_by_hand():
    """K = 3 classes from task 0, none new in task 1 (run.py `to_device`): the task-aware
    argmax is over all 3 classes, so it equals the task-agnostic one; seen is per image."""
    from clbudget.experiment.evaluate import evaluate
    from clbudget.methods.base import Method
    _Oracle.task_scores = Method.task_scores
    tasks = [_task(0, (0, 1, 2), [0, 1, 2, 0], [0, 1, 2, 2]),   # 3 of 4 right
             _task(1, (), [1, 1], [1, 1])]                       # 2 of 2
    row = evaluate(_Oracle((3, 0)), tasks, 1)
    assert row["tag"] == [0.75, 1.0] and row["taw"] == [0.75, 1.0]
    assert row["seen"] == 5 / 6                      # (3 + 2) / (4 + 2)
    got = domain_accuracy([[np.array([0, 1, 2, 2])], [np.array([0, 1, 2, 2]), np.array([1, 1])]],
                          [np.array([0, 1, 2, 0]), np.array([1, 1])])
    assert got["matrix"][1] == row["tag"] and got["seen"][1] == row["seen"]
    # class-incremental (3 then 2 new classes): task 1's task-aware argmax is within 3..4,
    # where the image predicted 0 scores (0, 0) and the first, 3, wins: right; agnostic: wrong
    ci = evaluate(_Oracle((3, 2)), [tasks[0], _task(1, (3, 4), [3, 4], [0, 4])], 1)
    assert ci["taw"] == [0.75, 1.0] and ci["tag"] == [0.75, 0.5]


@pytest.mark.parametrize("method", ["replay", "derpp", "ewc", "joint", "finetune"])
def test_domain_incremental_methods_run_and_others_are_refused(method, tmp_path):
    """Each of DOMAIN_INCREMENTAL_METHODS runs; its ledger equals the held tensors."""
    from clbudget.experiment.run import run_experiment
    spec = tiny_spec(method, dataset="glyphs/3@identity,invert,rot90", num_classes=None,
                     max_per_class=9, max_test_per_class=4, glyphs_options=TINY_GLYPHS,
                     budget="4xconv2+30ex", cache_dir=str(tmp_path))
    stream, ctx, m = prepare(spec)
    assert ctx.increments == (3, 0, 0) and ctx.stream.num_classes == 3
    tasks = to_device(stream, ctx.device)
    assert [t.classes for t in tasks] == [(0, 1, 2), (), ()]
    for task in tasks:
        m.begin_task(task)
        assert m.seen == 3                       # every class seen from task 0 on
        m.learn(task)
        m.end_task(task)
        assert m.ledger("strict").total_bytes == held_bytes(m)
    row = run_experiment(spec, stream=stream)
    acc = row["accuracy"]
    assert acc["matrix"] == [[pytest.approx(v) if v is not None else None for v in r]
                             for r in acc["task_aware"]["matrix"]]
    assert acc["last"] == pytest.approx(sum(acc["matrix"][2]) / 3)   # 12 test images a domain
    for other in ("lwf", "icarl", "bmc", "clr"):
        with pytest.raises(ValueError, match=f"{other} does not run on the domain-incremental"):
            prepare(dataclasses.replace(spec, method=other), stream)
    # the refusals say why: CLR's heads are per task over new classes, BMC's experts too
    with pytest.raises(ValueError, match="head per task over the same classes"):
        prepare(dataclasses.replace(spec, method="clr"), stream)
    with pytest.raises(ValueError, match="expert per task"):
        prepare(dataclasses.replace(spec, method="bmc"), stream)


def _gated_by_hand(m, j, sharing=True):
    """MIND's subnetwork j written out here: a copy of the network whose conv and head weights
    are multiplied by (mask <= j) (weight sharing: tasks 0..j's weights; free = 255 > j), or
    by (mask == j) without sharing, and whose BN tensors are domain j's set; eval mode."""
    import copy
    net = copy.deepcopy(m.net).eval()
    layers = [mod for mod in net.modules() if isinstance(mod, torch.nn.Conv2d)] + [net.head]
    assert len(layers) == len(m.masks)
    with torch.no_grad():
        for layer, mask in zip(layers, m.masks):
            layer.weight.mul_(((mask <= j) if sharing else (mask == j)).to(layer.weight.dtype))
    missing, unexpected = net.load_state_dict(m.bn_sets[j], strict=False)
    assert not unexpected
    return net


@pytest.mark.parametrize("sharing", [True, False])
def test_mind_on_a_domain_incremental_stream_as_its_core50_path(tmp_path, monkeypatch, sharing):
    """MIND's reference on CORE50 (domain-incremental; pruner.prune, test_fn.py `test`):
    every task is a domain over all K = 3 classes; the head's weights are given out at random
    like a conv's (numel // T each), so each task owns 3*64 // 3 = 64 head weights spread over
    the rows; task-aware = the true domain's subnetwork and BN set, argmax over all K;
    task-agnostic = the subnetwork of highest max softmax(logits / 6.5).  Expected values:
    the gating written out by hand (`_gated_by_hand`), the weight counts from conv2's shapes.
    Without weight sharing each domain's head weights start He-normal, std sqrt(2 / (3 * 64))
    = 0.102 (pruner.prune's Linear branch: n = out * in), not nn.Linear's U(+-1/8), std
    0.072, nor the zeros earlier pruning left."""
    from clbudget.experiment.evaluate import evaluate
    spec = tiny_spec("mind", dataset="glyphs/3@identity,invert,rot90", num_classes=None,
                     max_per_class=9, max_test_per_class=4, glyphs_options=TINY_GLYPHS,
                     budget="4xconv2+30ex", cache_dir=str(tmp_path), epochs=2,
                     method_options=(("weight_sharing", sharing),))
    stream, ctx, m = prepare(spec)
    heads = []   # (head weights, head mask) as each domain's distillation starts
    fit_gated = m.fit_gated

    def spy(net, *args):
        if args[-1].startswith("mind distillation"):
            heads.append((net.head.weight.detach().clone(), m.masks[-1].clone()))
        return fit_gated(net, *args)
    monkeypatch.setattr(m, "fit_gated", spy)
    assert ctx.increments == (3, 0, 0)
    # conv2 on 3x32x32: convs 64*3*3*3 = 1,728 and 64*64*3*3 = 36,864 weights, head 3*64 = 192;
    # one uint8 mask entry each: 38,784 bytes, predicted by the allocator and held
    assert [tuple(mk.shape) for mk in m.masks][-1] == (3, 64)
    assert ctx.allocation.ledger.by_kind()["masks"] == 1728 + 36864 + 192
    tasks = to_device(stream, ctx.device)
    x0 = tasks[0].x_test
    for task in tasks:
        m.begin_task(task)
        m.learn(task)
        m.end_task(task)
        assert m.ledger("strict").total_bytes == held_bytes(m)
        assert m.ledger("strict").by_kind()["masks"] == 38784
        m.eval()
        if task.index == 0:
            first = m.trainer.predict(lambda x: m.task_scores(x, 0), x0)
    # each domain owns numel // 3 of every gated layer, disjoint, the head's over >1 row
    for t in range(3):
        assert [int((mk == t).sum()) for mk in m.masks] == [576, 12288, 64]
        assert int(((m.masks[-1] == t).sum(1) > 0).sum()) >= 2
    assert not m.net.head.bias.any()          # the reference's head has no bias
    for t, (w, mask) in enumerate(heads):   # pruning zeroes the still-free weights; with
        # sharing a later domain's weights start from those zeros (pruner.prune re-draws them
        # only without sharing)
        assert bool((w[mask == 255] == 0).all())
        assert bool((w[mask == t] != 0).all()) if t == 0 or not sharing else \
            bool((w[mask == t] == 0).all())
    if not sharing:   # domains 1 and 2: 128 head weights drawn He-normal by pruning
        own = torch.cat([w[mask == t] for t, (w, mask) in enumerate(heads) if t > 0])
        assert 0.8 * 0.102 < float(own.std()) < 1.2 * 0.102
    # domain 0's subnetwork is untouched by domains 1 and 2 (shared head rows included)
    assert torch.equal(m.trainer.predict(lambda x: m.task_scores(x, 0), x0), first)
    aware, agnostic = [], []
    for j, task in enumerate(tasks):
        logits = [m.trainer.predict(lambda x, i=i: _gated_by_hand(m, i, sharing)(x),
                                    task.x_test)
                  for i in range(3)]                                          # 3 x (N, K)
        for i in range(3):
            got = m.trainer.predict(lambda x, i=i: m.task_scores(x, i), task.x_test)
            assert torch.allclose(got, logits[i], atol=1e-5)
        aware.append(logits[j].argmax(1).numpy())
        probs = torch.stack([torch.softmax(z / 6.5, 1) for z in logits])       # (3, N, K)
        chosen = probs.max(2).values.argmax(0)                                 # (N,)
        agnostic.append(probs[chosen, torch.arange(len(chosen))].argmax(1).numpy())
    labels = [t.y_test.numpy() for t in tasks]
    row = evaluate(m, tasks, 2)
    rows = lambda p: [p[:t + 1] for t in range(3)]   # noqa: E731  the last row is all we scored
    assert row["taw"] == pytest.approx(domain_accuracy(rows(aware), labels)["matrix"][2])
    assert row["tag"] == pytest.approx(domain_accuracy(rows(agnostic), labels)["matrix"][2])
    assert row["seen"] == pytest.approx(domain_accuracy(rows(agnostic), labels)["last"])
    assert any((a != g).any() for a, g in zip(aware, agnostic))   # the two settings differ
    with pytest.raises(ValueError, match="self_distillation=True does not run on a domain"):
        prepare(dataclasses.replace(spec, method_options=(("self_distillation", True),)),
                stream)


def test_finetune_on_a_domain_task_is_ce_over_every_seen_class(tmp_path, capsys):
    """A domain task after the first brings no new class: finetune's loss is the CE over all
    K = 3 classes, -log softmax(logits)[y] averaged, written out here; a sweep on such a stream
    runs its finetune reference cell (the relative-time baseline) instead of failing it."""
    spec = tiny_spec("finetune", dataset="glyphs/3@identity,invert", num_classes=None,
                     max_per_class=6, max_test_per_class=2, glyphs_options=TINY_GLYPHS,
                     budget="4xconv2", cache_dir=str(tmp_path))
    stream, ctx, m = prepare(spec)
    tasks = to_device(stream, ctx.device)
    m.begin_task(tasks[0])
    m.end_task(tasks[0])
    m.begin_task(tasks[1])
    assert (m.old, m.seen) == (3, 3)
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]])
    y = torch.tensor([2, 1])
    by_hand = -(torch.log(torch.exp(logits[0, 2]) / torch.exp(logits[0]).sum())
                + torch.log(torch.exp(logits[1, 1]) / torch.exp(logits[1]).sum())) / 2
    assert float(m.classification_loss(logits, y)) == pytest.approx(float(by_hand))
    glyphs = [a for k, v in TINY_GLYPHS for a in ("--glyphs", f"{k}={v}")]
    code, out, err = cli(capsys, "sweep", "--methods", "replay", "--budgets", "1MiB",
                         "--stream", "glyphs/3@identity,invert", "--max-per-class", "6",
                         "--max-test-per-class", "2", *glyphs, "--backbone", "conv2",
                         "--epochs", "1", "--device", "cpu", "--cache-dir",
                         str(tmp_path / "c"), "--out", str(tmp_path / "s"))
    assert code == 0, err
    assert "2 finished, 0 failed" in out + err


def test_sweep_plans_a_stream_from_its_own_tasks(capsys, tmp_path):
    glyphs = [a for k, v in TINY_GLYPHS for a in ("--glyphs", f"{k}={v}")]
    code, out, err = cli(capsys, "sweep", "--methods", "replay", "--budgets", "2xconv2+30ex",
                         "--stream", MIXED, "--max-per-class", "12", *glyphs, "--backbone",
                         "conv2", "--device", "cpu", "--cache-dir", str(tmp_path / "c"),
                         "--out", str(tmp_path / "s"), "--dry-run", "--json")
    assert code == 0, err
    import json
    plan = json.loads(out)
    replay = [c for c in plan["cells"] if c["method"] == "replay"]
    assert len(replay) == 1
    n, a = replay[0]["exemplars"], replay[0]["allocation"]
    assert n >= 6 and a["ledger"]["by_kind"]["exemplars"] == n * 3072   # 3x32x32 uint8 each
    assert a["per_class_quota"] == n // 6                   # the stream's 4 + 2 classes


@pytest.mark.parametrize("stream,head_masks", [("glyphs/3@identity,invert", 3 * 64),
                                               ("glyphs/4@identity,invert,rot90", 4 * 64)])
def test_sweep_plans_minds_head_masks_on_a_domain_incremental_stream(capsys, tmp_path, stream,
                                                                     head_masks):
    """The sweep's plan prices what a domain-incremental MIND run holds: conv2's conv masks
    (64*3*3*3 + 64*64*3*3 = 38,592 uint8) plus one per head weight (classes x 64; the head's
    bias has no mask: methods/mind.py gates weights only)."""
    glyphs = [a for k, v in TINY_GLYPHS for a in ("--glyphs", f"{k}={v}")]
    code, out, err = cli(capsys, "sweep", "--methods", "mind", "--budgets", "1MiB",
                         "--stream", stream, "--max-per-class", "6",
                         *glyphs, "--backbone", "conv2", "--device", "cpu", "--cache-dir",
                         str(tmp_path / "c"), "--out", str(tmp_path / "s"), "--dry-run",
                         "--json")
    assert code == 0, err
    import json
    (cell,) = [c for c in json.loads(out)["cells"] if c["method"] == "mind"]
    assert cell["allocation"]["ledger"]["by_kind"]["masks"] == 38_592 + head_masks


def test_the_readme_table_is_mean_and_t_half_width_over_seeds():
    """bench/multidomain_table.py: 3 seeds of 0.20, 0.30, 0.40 -> 30.0 +- 24.8 (std 0.1,
    t(0.975, 2) = 4.3027 by scipy's table, 4.3027 * 10 / sqrt(3) = 24.84); a task-aware-only
    method's TAG is n/a."""
    from bench.multidomain_table import table

    def row(method, seed, tag, taw, setting="task-agnostic"):
        return {"method": method, "seed": seed, "wall_s": 10.0 * (seed + 1),
                "ledger": {"total_bytes": 2**20 * (seed + 1)},
                "accuracy": {"last": tag, "setting": setting, "task_aware": {"last": taw}}}
    rows = [row("replay", s, a, 0.5) for s, a in enumerate((0.2, 0.3, 0.4))]
    rows += [row("clr", 0, 0.6, 0.6, "task-aware")]
    lines = table(rows).splitlines()
    assert lines[2] == "| replay | 0,1,2 | 30.0 +- 24.8 | 50.0 +- 0.0 | 3.00 | 20 |"
    assert lines[3] == "| clr | 0 | n/a (task-aware only) | 60.0 | 1.00 | 10 |"


def test_the_table_versus_another_store_is_a_paired_t_test_by_hand():
    """`--vs`: BMC's last TAG 0.25, 0.16, 0.21 against 0.14, 0.09, 0.12 on seeds 0-2 (seed 3
    only in one store, left out): differences 11, 7, 9 pp, mean 9.0, std 2.0, half-width
    t(0.975, 2) * 2 / sqrt(3) = 4.3027 * 1.1547 = 4.97 -> [4.0, 14.0]; t = 9 / 1.1547 = 7.79,
    two-sided p with 2 df = 0.016 (scipy.stats.t.sf(7.794, 2) * 2).  TAW equal: +0.0 pp."""
    from bench.multidomain_table import versus

    def row(seed, tag, taw=0.5):
        return {"method": "bmc", "seed": seed,
                "accuracy": {"last": tag, "setting": "task-agnostic",
                             "task_aware": {"last": taw}}}
    new = [row(0, 0.25), row(1, 0.16), row(2, 0.21), row(3, 0.9)]
    old = [row(0, 0.14), row(1, 0.09), row(2, 0.12)]
    line = versus(new, old)
    assert line.startswith("bmc (seeds 0,1,2), this store minus the other: "
                           "TAG +9.0 pp, 95% CI [4.0, 14.0], p = 0.016; TAW +0.0 pp")
