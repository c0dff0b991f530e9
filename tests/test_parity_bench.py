"""The parity bench's own logic (bench/parity.py): arguments, the arrays PyCIL is fed, the
schedule it is set to, the herding-size fix, the table's arithmetic.

None of these needs PyCIL but the last four, marked `pycil`: they read a real PyCIL checkout
(PYCIL_CHECKOUT=PYCIL_DIR) and drive its DataManager (with torchvision).  The suite deselects them
by default (pyproject.toml); `PYCIL_CHECKOUT=PYCIL_DIR .venv/bin/python -m pytest -m pycil` runs
them, and there they fail, never skip, when the checkout or torchvision is missing.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import sys

import numpy as np
import pytest
import scipy.stats

from bench import parity
from clbudget.streams.data import Dataset, Split
from clbudget.streams.protocol import make_stream


def tiny_dataset(k=6, n_train=4, n_test=3, seed=0) -> Dataset:
    """k classes of random 3x8x8 images; each image's first pixel holds its label and its
    position, so an image can be traced through any reordering."""
    rng = np.random.default_rng(seed)

    def split(n):
        y = np.repeat(np.arange(k), n)
        x = rng.integers(0, 256, (len(y), 3, 8, 8), dtype=np.uint8)
        x[:, 0, 0, 0] = y
        x[:, 0, 0, 1] = np.arange(len(y))
        return Split(x, y)
    return Dataset("tiny", split(n_train), split(n_test), tuple(f"c{i}" for i in range(k)))


# ------------------------------------------------------------------------ arguments

@pytest.mark.parametrize("text,expected", [("0..4", [0, 1, 2, 3, 4]), ("3", [3]),
                                           ("0,3,7", [0, 3, 7]), ("2..2", [2]),
                                           ("0..1, 5", [0, 1, 5])])
def test_seeds_are_ranges_and_lists(text, expected):
    assert parity.parse_seeds(text) == expected


@pytest.mark.parametrize("text,says", [("4..1", "1..4"), ("a", "not a seed"),
                                       ("1,1", "twice"), ("", "not a seed")])
def test_bad_seeds_are_refused_with_the_fix(text, says):
    with pytest.raises(ValueError, match=says):
        parity.parse_seeds(text)


def test_arguments_defaults_and_the_unscaled_command():
    a = parity.parse_args(["--pycil", "/p", "--method", "icarl", "--seeds", "0..2",
                           "--epochs", "3", "--first-task-only", "--json", "o.json"])
    assert (a.pycil, a.method, a.seeds, a.epochs) == ("/p", "icarl", [0, 1, 2], 3)
    assert (a.init, a.inc, a.per_class, a.test_per_class) == (2, 2, 500, None)
    assert a.first_task_only and a.json == "o.json"
    assert a.data_root == "../shared/data/cifar10"
    assert a.pycil_schedule == ["scaled"]
    for text, want in (("unscaled", ["unscaled"]), ("unscaled,scaled", ["unscaled", "scaled"])):
        assert parity.parse_args(["--pycil", "/p", "--method", "replay", "--epochs", "3",
                                  "--pycil-schedule", text]).pycil_schedule == want


@pytest.mark.parametrize("text,says", [("scale", "nearest: scaled"), ("scaled,scaled", "twice"),
                                       ("unscaled,", "'' is not one of scaled, unscaled")])
def test_bad_schedules_are_refused_with_the_fix(text, says):
    with pytest.raises(ValueError, match=says):
        parity.parse_schedules(text)


@pytest.mark.parametrize("argv", [["--method", "replay", "--epochs", "3"],          # no --pycil
                                  ["--pycil", "/p", "--method", "lwf", "--epochs", "3"],
                                  ["--pycil", "/p", "--method", "der", "--epochs", "0"],
                                  ["--pycil", "/p", "--method", "der", "--epochs", "2",
                                   "--seeds", "3..1"],
                                  ["--pycil", "/p", "--method", "der", "--epochs", "2",
                                   "--pycil-schedule", "scale"]])
def test_bad_arguments_exit(argv, capsys):
    with pytest.raises(SystemExit):
        parity.parse_args(argv)


def test_the_spec_uses_pycils_per_seed_order_and_exact_memory():
    a = parity.parse_args(["--pycil", "/p", "--method", "replay", "--epochs", "3",
                           "--per-class", "50"])
    spec = parity.clbudget_spec(a, 4)
    # PyCIL shuffles with the run's seed: the per-seed protocol, shuffled with seed 4
    assert (spec.seed, spec.class_order, spec.order_seed, spec.max_per_class) == \
        (4, "per-seed", 4, 50)
    assert (spec.init, spec.inc, spec.backbone, spec.device) == (2, 2, "resnet32", "cpu")


@pytest.mark.parametrize("method", ["replay", "icarl", "wa", "der"])
@pytest.mark.parametrize("incs", [(2, 2, 2, 2, 2), (2,), (4, 3, 3)])
def test_the_budget_buys_exactly_2000_exemplars(method, incs):
    """PyCIL's memory_size 2000 is a count of exemplars; clbudget's budget must allocate it."""
    from clbudget.budget.costs import StreamShape
    from clbudget.budget.storage import allocate_stored

    class S:
        num_tasks, image_shape, num_classes = len(incs), (3, 32, 32), sum(incs)
    budget = int(parity.exact_memory_budget(method, S))
    shape = StreamShape(len(incs), (3, 32, 32), sum(incs))
    alloc = allocate_stored(method, budget, shape, backbone="resnet32")
    assert alloc.n_exemplars == 2000
    assert allocate_stored(method, budget - 1, shape, backbone="resnet32").n_exemplars == 1999


# ------------------------------------------------------------------------ the data PyCIL gets

def pycil_remap(y, order):
    """PyCIL utils/data_manager.py `_map_new_class_index`: order.index(label)."""
    return np.array([order.index(v) for v in y])


@pytest.mark.parametrize("init,inc,order_seed", [(2, 2, 0), (0, 3, 1993), (3, 1, 7)])
def test_pycil_is_fed_exactly_clbudgets_arrays_and_order(init, inc, order_seed):
    ds = tiny_dataset()
    stream = make_stream(ds, init, inc, class_order_seed=order_seed, max_per_class=3,
                         sample_seed=order_seed)
    a = parity.pycil_arrays(stream)
    # the order is PyCIL's permutation with the seed (np.random.seed; permutation)
    np.random.seed(order_seed)
    assert a["class_order"] == np.random.permutation(6).tolist() == list(stream.class_order)
    for part in ("train", "test"):
        x = np.concatenate([getattr(t, part).x for t in stream.tasks])
        y = np.concatenate([getattr(t, part).y for t in stream.tasks])
        assert a[f"{part}_x"].shape == (len(x), 8, 8, 3) and a[f"{part}_x"].dtype == np.uint8
        np.testing.assert_array_equal(a[f"{part}_x"], x.transpose(0, 2, 3, 1))
        # PyCIL's own remapping of the original labels gives clbudget's labels back
        np.testing.assert_array_equal(pycil_remap(a[f"{part}_y"], a["class_order"]), y)
        # and each original label is the one the image was drawn with (first pixel)
        np.testing.assert_array_equal(a[f"{part}_y"], a[f"{part}_x"][:, 0, 0, 0])
    assert len(a["train_y"]) == 6 * 3 and len(a["test_y"]) == 6 * 3


def test_first_task_only_feeds_the_first_tasks_classes():
    stream = parity.first_task_stream(make_stream(tiny_dataset(), 2, 2, class_order_seed=5))
    a = parity.pycil_arrays(stream)
    assert stream.num_tasks == 1 and stream.num_classes == 2
    np.random.seed(5)
    assert a["class_order"] == np.random.permutation(6).tolist()[:2]
    assert sorted(set(a["train_y"].tolist())) == sorted(a["class_order"])


# ------------------------------------------------------------------------ PyCIL's schedule

def test_pycil_gets_the_schedule_clbudget_trains_with():
    """replay at 3 epochs: milestones scale by 3/200 (first) and 3/70 (later), rounded,
    at least 1 (`LoopConfig.with_epochs`): 60,120,170 -> 0.9,1.8,2.55 -> 1,2,3;
    30,50 -> 1.29,2.14 -> 1,2."""
    a = parity.parse_args(["--pycil", "/p", "--method", "replay", "--epochs", "3"])
    s = parity.pycil_schedule(parity.clbudget_spec(a, 0))
    assert s == {"init_epoch": 3, "init_milestones": [1, 2, 3], "init_lr": 0.1,
                 "init_weight_decay": 5e-4, "init_lr_decay": 0.1, "epochs": 3,
                 "milestones": [1, 2], "lrate": 0.1, "weight_decay": 2e-4,
                 "lrate_decay": 0.1, "batch_size": 128}


@pytest.mark.parametrize("method,epochs,later", [("icarl", 10, [5, 7]),      # 80,120 /170
                                                 ("wa", 10, [4, 6, 8]),      # 60,100,140
                                                 ("der", 12, [6, 8, 11])])   # 80,120,150
def test_schedule_of_the_other_methods(method, epochs, later):
    """Hand arithmetic: icarl 80*10/170=4.7->5, 120*10/170=7.06->7; wa 3.5->4 (half to even
    is 4), 5.9->6, 8.2->8; der 80*12/170=5.6->6, 8.5->8 (half to even), 10.6->11."""
    a = parity.parse_args(["--pycil", "/p", "--method", method, "--epochs", str(epochs)])
    s = parity.pycil_schedule(parity.clbudget_spec(a, 0))
    assert (s["epochs"], s["milestones"], s["init_epoch"]) == (epochs, later, epochs)


# PyCIL's module constants as its source writes them (models/<name>.py, lines 16-27 at the
# mirror's HEAD): what the unscaled schedule must leave in place
PYCIL_CONSTANTS = {
    name: {"init_epoch": 200, "init_lr": 0.1, "init_milestones": [60, 120, 170],
           "init_lr_decay": 0.1, "init_weight_decay": 0.0005, "epochs": epochs, "lrate": 0.1,
           "milestones": milestones, "lrate_decay": 0.1, "batch_size": 128,
           "weight_decay": 2e-4}
    for name, epochs, milestones in (("replay", 70, [30, 50]), ("icarl", 170, [80, 120]),
                                     ("wa", 170, [60, 100, 140]), ("der", 170, [80, 120, 150]))}


def fake_pycil_module(method):
    import types
    module = types.ModuleType(f"models.{method}")
    for key, value in PYCIL_CONSTANTS[method].items():
        setattr(module, key, list(value) if isinstance(value, list) else value)
    return module


@pytest.mark.parametrize("method", ["replay", "icarl", "wa", "der"])
def test_unscaled_schedule_sets_only_the_epochs(method):
    """The unscaled setting (PyCIL run at 3 epochs as it is): only init_epoch/epochs = 3; PyCIL's milestones (never reached
    in 3 epochs), lr, decay, weight decay and batch stay its own values."""
    a = parity.parse_args(["--pycil", "/p", "--method", method, "--epochs", "3",
                           "--pycil-schedule", "unscaled"])
    module = fake_pycil_module(method)
    got = parity.set_pycil_schedule(module, parity.clbudget_spec(a, 0), "unscaled")
    want = {**PYCIL_CONSTANTS[method], "init_epoch": 3, "epochs": 3}
    assert got == want
    assert {k: getattr(module, k) for k in want} == want


def test_the_schedules_alternate_from_pycils_own_constants():
    """One process runs seed after seed: scaled must not leak into a later unscaled run (and
    back).  Scaled replay at 3 epochs: 60,120,170 * 3/200 -> 1,2,3; 30,50 * 3/70 -> 1,2."""
    a = parity.parse_args(["--pycil", "/p", "--method", "replay", "--epochs", "3"])
    spec = parity.clbudget_spec(a, 0)
    module = fake_pycil_module("replay")
    for _ in range(2):
        parity.set_pycil_schedule(module, spec, "scaled")
        assert (module.init_epoch, module.init_milestones, module.epochs, module.milestones) \
            == (3, [1, 2, 3], 3, [1, 2])
        parity.set_pycil_schedule(module, spec, "unscaled")
        assert (module.init_epoch, module.init_milestones, module.epochs, module.milestones) \
            == (3, [60, 120, 170], 3, [30, 50])


def test_schedule_errors_name_what_is_wrong():
    a = parity.parse_args(["--pycil", "/p", "--method", "replay", "--epochs", "3"])
    spec = parity.clbudget_spec(a, 0)
    module = fake_pycil_module("replay")
    del module.milestones
    with pytest.raises(RuntimeError, match="no constant milestones"):
        parity.set_pycil_schedule(module, spec, "unscaled")
    with pytest.raises(ValueError, match=r"scaled, unscaled, got 'scale' \(nearest: scaled\)"):
        parity.pycil_schedule(spec, "scale", PYCIL_CONSTANTS["replay"])


# ------------------------------------------------------------------------ run-time fixes

class FakeLearner:
    """PyCIL's BaseLearner as `clip_herding` sees it: a loop over new classes herding m."""
    def __init__(self, known, total):
        self._known_classes, self._total_classes = known, total
        self.calls = []

    def _construct_exemplar(self, data_manager, m):
        for c in range(self._known_classes, self._total_classes):
            self.calls.append((c, m))


def test_herding_is_clipped_to_each_class_size_and_state_restored():
    class DM:
        _train_targets = np.array([2] * 5 + [3] * 9 + [0] * 20)
    cls = type("L", (FakeLearner,), {})
    parity.clip_herding(cls)
    parity.clip_herding(cls)           # twice: wraps once
    learner = cls(2, 4)
    learner._construct_exemplar(DM, 7)
    assert learner.calls == [(2, 5), (3, 7)]
    assert (learner._known_classes, learner._total_classes) == (2, 4)


def test_loss_log_reads_pycils_last_epoch_line():
    log = parity._LossLog()
    logger = logging.getLogger("parity-test")
    logger.addHandler(log)
    logger.setLevel(logging.INFO)
    logger.info("Task 0, Epoch 3/3 => Loss 0.693, Train_accy 50.00")
    logger.info("Task 1, Epoch 10/10 => Loss 1.250, Train_accy 60.00, Test_accy 40.00")
    logger.info("Exemplar size: 2000")
    assert log.losses == {0: 0.693, 1: 1.25}


# ------------------------------------------------------------------------ the table

def row(seed, c_last, p_last, c_avg, p_avg, c_wall, p_wall):
    side = lambda last, avg, wall: {"last": last, "average": avg, "wall_s": wall,  # noqa: E731
                                    "loss": [0.5], "predicted_classes": [2],
                                    "cnn_last": last, "cnn_average": avg, "nme_last": None}
    return {"seed": seed, "clbudget": side(c_last, c_avg, c_wall),
            "pycil": side(p_last, p_avg, p_wall)}


def test_summary_arithmetic():
    rows = [row(0, 30.0, 28.0, 40.0, 41.0, 10.0, 20.0),
            row(1, 34.0, 29.0, 44.0, 40.0, 12.0, 18.0),
            row(2, 35.0, 29.5, 45.0, 42.0, 14.0, 22.0)]
    s = parity.summary(rows)
    assert s["diff_last"] == [2.0, 5.0, 5.5]
    assert s["diff_average"] == [-1.0, 4.0, 3.0]
    assert s["mean_clbudget_last"] == pytest.approx(33.0)
    assert s["mean_pycil_last"] == pytest.approx(28.833333333)
    assert s["mean_diff_last"] == pytest.approx(4.1666666667)     # (2 + 5 + 5.5) / 3
    assert s["mean_diff_average"] == pytest.approx(2.0)           # (-1 + 4 + 3) / 3
    assert s["wall_ratio"] == pytest.approx(36 / 60)
    assert s["p_last"] == pytest.approx(scipy.stats.ttest_ind(
        [30, 34, 35], [28, 29, 29.5], equal_var=False).pvalue)
    assert s["p_average"] == pytest.approx(scipy.stats.ttest_ind(
        [40, 44, 45], [41, 40, 42], equal_var=False).pvalue)
    text = parity.format_table("replay", rows, s)
    assert "| 1 | 34.00 | 29.00 | +5.00 | 44.00 | 40.00 | +4.00 |" in text
    assert "diff +4.17 pp" in text and "ratio clbudget/PyCIL 0.60" in text


def test_each_schedule_gets_its_own_table():
    """--pycil-schedule unscaled,scaled: one clbudget run a seed against each PyCIL run."""
    rows = []
    for seed, c, unscaled, scaled in ((0, 33.0, 29.0, 32.5), (1, 34.0, 28.0, 34.5)):
        r = row(seed, c, scaled, c, scaled, 10.0, 10.0)
        r["pycil_by_schedule"] = {"unscaled": row(seed, 0, unscaled, 0, unscaled, 0, 5.0)["pycil"],
                                  "scaled": r["pycil"]}
        rows.append(r)
    s_unscaled = parity.summary(parity.schedule_rows(rows, "unscaled"))
    s_scaled = parity.summary(parity.schedule_rows(rows, "scaled"))
    assert s_unscaled["diff_last"] == [4.0, 6.0] and s_scaled["diff_last"] == [0.5, -0.5]
    assert s_unscaled["wall_ratio"] == pytest.approx(2.0) and s_scaled["wall_ratio"] == 1.0


# ------------------------------------------------------------------------ with a checkout

PYCIL = os.environ.get("PYCIL_CHECKOUT", "")


@pytest.fixture
def pycil_checkout():
    """The PyCIL checkout the `pycil` tests read; a failure (not a skip) when it is missing."""
    if not os.path.isfile(os.path.join(PYCIL, "trainer.py")):
        pytest.fail(f"-m pycil needs a PyCIL checkout: set PYCIL_CHECKOUT=PYCIL_DIR (now "
                    f"{PYCIL!r})", pytrace=False)
    return PYCIL


needs_pycil = pytest.mark.pycil


@needs_pycil
def test_pycils_data_manager_serves_the_registered_arrays(pycil_checkout):
    assert importlib.util.find_spec("torchvision") is not None, \
        "PyCIL's DataManager imports torchvision: install it beside PyCIL's torch"
    stream = make_stream(tiny_dataset(n_train=5), 2, 2, class_order_seed=3, max_per_class=4,
                         sample_seed=3)
    a = parity.pycil_arrays(stream)
    parity.register_pycil_dataset(PYCIL, a)
    dm = sys.modules["utils.data_manager"]
    manager = dm.DataManager("clbudget", False, 3, 2, 2)
    assert manager._class_order == list(stream.class_order)
    assert manager._increments == [2, 2, 2]
    for t, task in enumerate(stream.tasks):
        lo = sum(stream.increments[:t])
        data, targets, _ = manager.get_dataset(np.arange(lo, lo + 2), source="train",
                                               mode="test", ret_data=True)
        # same images (by their traced pixels) with the same labels, task by task
        got = sorted(zip(data[:, 0, 1, 0].tolist(), targets.tolist()))
        want = sorted(zip(task.train.x[:, 0, 0, 1].tolist(), task.train.y.tolist()))
        assert got == want


@pytest.mark.pycil
@pytest.mark.usefixtures("pycil_checkout")
@pytest.mark.parametrize("method", ["replay", "icarl", "wa", "der"])
def test_the_constants_above_are_pycils(method):
    """PYCIL_CONSTANTS against the checkout's source (read, not imported: no torchvision)."""
    import ast
    with open(os.path.join(PYCIL, "models", f"{method}.py")) as f:
        tree = ast.parse(f.read())
    found = {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body
             if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
             and node.targets[0].id in PYCIL_CONSTANTS[method]}
    assert found == PYCIL_CONSTANTS[method]


# ---------------------------------------------------------------- the unscaled comparison

def test_the_unscaled_comparison_arguments():
    a = parity.parse_args(["--pycil", "/p", "--method", "replay", "--epochs", "3"])
    assert (a.clbudget_class_order, a.pycil_torch_seed) == ("per-seed", "run")
    a = parity.parse_args(["--pycil", "/p", "--method", "replay", "--epochs", "3",
                           "--clbudget-class-order", "fixed", "--pycil-torch-seed", "fixed"])
    spec = parity.clbudget_spec(a, 4)
    # clbudget's seeds then share the 1993 order (the default fixed order), PyCIL's do not
    assert (spec.seed, spec.class_order, spec.order_seed) == (4, "fixed", 1993)
    assert parity.clbudget_spec(a, 0).order_seed == 1993


@pytest.mark.parametrize("argv", [["--clbudget-class-order", "fixed", "--first-task-only"],
                                  ["--clbudget-class-order", "random"],
                                  ["--pycil-torch-seed", "1"]])
def test_bad_comparison_arguments_exit(argv):
    with pytest.raises(SystemExit):
        parity.parse_args(["--pycil", "/p", "--method", "replay", "--epochs", "3", *argv])


@pytest.mark.parametrize("pycil_seed", [0, 1, 2, 1993])
def test_pycil_keeps_its_own_order_beside_clbudgets_fixed_one(pycil_seed):
    """Under --clbudget-class-order fixed PyCIL gets the same images in its own order:
    data_manager.py `_setup_data` with shuffle: order = range(k), np.random.seed(seed),
    np.random.permutation(k)."""
    stream = make_stream(tiny_dataset(), 2, 2, class_order_seed=1993, max_per_class=3,
                         sample_seed=0)
    a = parity.pycil_arrays(stream, pycil_seed)
    np.random.seed(pycil_seed)
    assert a["class_order"] == np.random.permutation(6).tolist()
    same = parity.pycil_arrays(stream)
    assert same["class_order"] == list(stream.class_order)
    for part in ("train", "test"):
        # the same images with the same original labels; only the order PyCIL maps them by
        np.testing.assert_array_equal(a[f"{part}_x"], same[f"{part}_x"])
        np.testing.assert_array_equal(a[f"{part}_y"], a[f"{part}_x"][:, 0, 0, 0])
    if pycil_seed != 1993:
        assert a["class_order"] != same["class_order"]


def test_the_trainers_fixed_torch_seed_is_the_one_pycil_sets():
    """Without a checkout: PyCIL's trainer.py `_set_random` calls `torch.manual_seed(1)` (read
    at G-U-N/PyCIL 87cc4110d607, trainer.py line 162); the pycil-marked test below reads the
    checkout itself."""
    assert parity.TRAINER_TORCH_SEED == 1


@pytest.mark.pycil
@pytest.mark.usefixtures("pycil_checkout")
def test_the_trainers_fixed_torch_seed_is_pycils():
    """TRAINER_TORCH_SEED against trainer.py's `_set_random` (read, not imported)."""
    import ast
    with open(os.path.join(PYCIL, "trainer.py")) as f:
        tree = ast.parse(f.read())
    body = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_set_random")
    seeds = [ast.literal_eval(c.args[0]) for c in ast.walk(body) if isinstance(c, ast.Call)
             and ast.unparse(c.func) == "torch.manual_seed"]
    assert seeds == [parity.TRAINER_TORCH_SEED]
