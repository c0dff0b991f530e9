"""Parity bench: a real PyCIL checkout beside clbudget on the very same arrays (issue 24).

    python -m bench.parity --pycil PYCIL_DIR --method replay --seeds 0..4 --epochs 10 \
        [--data-root CIFAR10_DIR] [--per-class 500] [--init 2 --inc 2] \
        [--pycil-schedule scaled|unscaled] [--first-task-only] [--json OUT]
        [--clbudget-class-order per-seed|fixed] [--pycil-torch-seed run|fixed]

Per seed, clbudget's stream is loaded once (CIFAR-10 ImageFolder, `--per-class` training images
a class drawn with the seed, the class order PyCIL's permutation with the seed) and both sides
train on it:
- clbudget: `run_experiment` with the method's reference recipe (`pycil-*`, PyCIL's CIFAR-10
  normalisation constants and brightness jitter) at `--epochs` a task (milestones scaled by
  `LoopConfig.with_epochs`), resnet32, a budget of exactly 2000 exemplars (the allocation is
  checked);
- PyCIL: its own `DataManager` and model class, fed the same arrays as a data set registered at
  run time (an `iCIFAR10` subclass returned by a patched `_get_idata`; PyCIL's own transforms
  and constants), `shuffle` off and `class_order` = clbudget's order, memory_size 2000,
  fixed_memory false, the model module's epochs and milestones set to the values clbudget
  trains with.
It prints, per seed, last and average incremental accuracy of both and their difference, then
the mean difference, Welch's p (clbudget.analysis.stats.welch_test) and the wall-time ratio.
For iCaRL, PyCIL's CNN and NME accuracies and clbudget's (NME) are printed; the difference is
taken against PyCIL's NME.

Run-time fixes applied to PyCIL (no PyCIL code is committed or edited): every `DataLoader` its
model modules build gets num_workers=0 (its 4-8 worker processes only cost on 2 shared CPU
cores, and results do not depend on them); `_construct_exemplar` herds min(m, images of
the class) (`clip_herding`: PyCIL fails when a class has fewer than m images); the device list is set to the CPU directly
(trainer.py `_set_device` compares a list with -1 and so always picks CUDA); tqdm is silenced; top-5 accuracy is
computed as top-min(5, seen classes) (torch.topk fails with 2 classes);
`torch.manual_seed(seed)` and `np.random.seed(seed)` replace trainer.py's `_set_random`
(`torch.manual_seed(1)` for every seed), so that seeds also vary the initialisation.  The
bench drives the task loop itself (trainer.py `_train` also writes log files under logs/).

Class order and normalisation: clbudget's RunSpec gets `class_order="per-seed"` (shuffled
with the run's seed: PyCIL's `np.random.seed(seed); permutation`); `main` still checks that
both sides' orders agree.  The pycil-* recipes already normalise with PyCIL's CIFAR-10
constants (streams/catalog.py).

`--pycil-schedule unscaled` instead sets only PyCIL's `init_epoch` and `epochs` to `--epochs`
and leaves every other schedule constant (milestones 60/120/170 and 30/50 or 80/120, ..., lr,
decay, weight decay, batch) at the value its model module defines: what setting only the
epochs in PyCIL does, as the comparison filed in issue 24 did.  clbudget's side is the same
under both choices.

`--clbudget-class-order fixed --pycil-torch-seed fixed --pycil-schedule unscaled` is issue
24's comparison as PyCIL's own trainer and clbudget's defaults of that time run it:
clbudget trains every seed on the fixed 1993 class order (its seeds vary the initialisation and
the batches), while PyCIL keeps its per-seed order (`shuffle`, `np.random.seed(seed)`) and
trainer.py's `torch.manual_seed(1)` for every seed (its seeds vary only the class order).  The
two sides then sample different sources of variance; the bench feeds PyCIL the same images in
its own order and skips the order check.

PyCIL needs torchvision, so the bench runs from a venv that has it (BENCHMARKS.md, "Parity
with PyCIL").  tests/test_parity_bench.py tests the bench's own logic without PyCIL.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import dataclasses
import importlib
import json
import logging
import os
import re
import sys
import time

import numpy as np

PYCIL_MODEL = {"replay": "replay", "icarl": "icarl", "wa": "wa", "der": "der"}
MEMORY_SIZE = 2000          # PyCIL exps/*.json memory_size (fixed_memory false)
BACKBONE = "resnet32"
NME_METHODS = ("icarl",)    # clbudget reports NME accuracy (methods/icarl.py `scores`)
SCHEDULES = ("scaled", "unscaled")     # --pycil-schedule


# --------------------------------------------------------------------------- arguments

def parse_seeds(text: str) -> list[int]:
    """"0..4" -> [0, 1, 2, 3, 4]; "0,3,7" -> [0, 3, 7]; "5" -> [5] (ranges inclusive)."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if m := re.fullmatch(r"(\d+)\s*\.\.\s*(\d+)", part):
            lo, hi = int(m[1]), int(m[2])
            if hi < lo:
                raise ValueError(f"--seeds {text!r}: range {part} runs backwards; "
                                 f"write {hi}..{lo}")
            seeds.extend(range(lo, hi + 1))
        elif re.fullmatch(r"\d+", part):
            seeds.append(int(part))
        else:
            raise ValueError(f"--seeds {text!r}: {part!r} is not a seed or a range A..B "
                             f"(e.g. 0..4 or 0,1,2)")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds {text!r} names a seed twice")
    return seeds


def parse_schedules(text: str) -> list[str]:
    """"scaled" -> ["scaled"]; "unscaled,scaled" -> both, in that order."""
    names = [part.strip() for part in str(text).split(",")]
    for name in names:
        if name not in SCHEDULES:
            from clbudget.streams.catalog import nearest
            raise ValueError(f"--pycil-schedule {text!r}: {name!r} is not one of "
                             f"{', '.join(SCHEDULES)} (nearest: {nearest(name, SCHEDULES)})")
    if len(set(names)) != len(names):
        raise ValueError(f"--pycil-schedule {text!r} names a schedule twice")
    return names


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.parity", description=__doc__.split("\n")[0])
    p.add_argument("--pycil", required=True, help="PYCIL_DIR: a PyCIL checkout (work tree)")
    p.add_argument("--method", required=True, choices=sorted(PYCIL_MODEL))
    p.add_argument("--seeds", default="0..4", type=parse_seeds)
    p.add_argument("--epochs", type=int, required=True, help="epochs of every task, both sides")
    p.add_argument("--data-root", default="/work/shared/data/cifar10",
                   help="CIFAR10_DIR: CIFAR-10 as an ImageFolder of JPEGs "
                        "(train/<class>/*, test/<class>/*)")
    p.add_argument("--per-class", type=int, default=500, help="training images per class")
    p.add_argument("--test-per-class", type=int, default=None,
                   help="test images per class (default: all)")
    p.add_argument("--init", type=int, default=2)
    p.add_argument("--inc", type=int, default=2)
    p.add_argument("--first-task-only", action="store_true")
    p.add_argument("--pycil-schedule", default=["scaled"], type=parse_schedules,
                   help="scaled: PyCIL trains with clbudget's --epochs-scaled milestones, lr and "
                        "weight decay; unscaled: only PyCIL's init_epoch and epochs are set to "
                        "--epochs, its milestones (60/120/170, ...) stay its module constants "
                        "(issue 24's setting); a list (unscaled,scaled) runs "
                        "PyCIL once per schedule beside one clbudget run a seed")
    p.add_argument("--clbudget-class-order", default="per-seed", choices=("per-seed", "fixed"),
                   help="per-seed: both sides train PyCIL's per-seed order (the matched "
                        "protocol); fixed: clbudget trains every seed on the 1993 order and PyCIL "
                        "keeps its own per-seed order (issue 24's comparison)")
    p.add_argument("--pycil-torch-seed", default="run", choices=TORCH_SEEDS,
                   help="run: PyCIL's torch RNG is seeded with the run's seed; fixed: with 1 for "
                        "every seed, as PyCIL's trainer.py does")
    p.add_argument("--json", default=None, help="write every row and the summary here")
    args = p.parse_args(argv)
    if args.epochs < 1:
        p.error(f"--epochs must be >= 1, got {args.epochs}")
    if args.per_class is not None and args.per_class < 1:
        p.error(f"--per-class must be >= 1, got {args.per_class}")
    if args.first_task_only and args.clbudget_class_order == "fixed":
        p.error("--first-task-only feeds PyCIL clbudget's first task, which is in PyCIL's "
                "order only under --clbudget-class-order per-seed (the default)")
    return args


# --------------------------------------------------------------------------- clbudget side

def clbudget_spec(args, seed: int, budget: str = "2000ex"):
    """The RunSpec of one seed.  Per-seed class order = PyCIL's `np.random.seed(seed);
    permutation` (class_order="per-seed"; `main` checks both sides' orders agree), or the fixed
    1993 order under `--clbudget-class-order fixed`."""
    from clbudget.experiment.run import RunSpec
    return RunSpec(method=args.method, dataset="cifar10", data_root=args.data_root,
                   budget=budget, init=args.init, inc=args.inc, epochs=args.epochs, seed=seed,
                   class_order=args.clbudget_class_order, device="cpu",
                   max_per_class=args.per_class,
                   max_test_per_class=args.test_per_class, backbone=BACKBONE)


def first_task_stream(stream):
    """The stream cut to its first task (what --first-task-only trains)."""
    return dataclasses.replace(stream, tasks=stream.tasks[:1], increments=stream.increments[:1])


def exact_memory_budget(method: str, stream) -> str:
    """A budget in bytes whose allocation is exactly MEMORY_SIZE exemplars on resnet32 (PyCIL's
    memory_size 2000 counts exemplars; clbudget's strict budget counts the model's bytes too)."""
    from clbudget.budget.allocator import AllocatorConfig, minimum_with
    from clbudget.budget.costs import StreamShape, cost_model
    shape = StreamShape(stream.num_tasks, tuple(stream.image_shape), stream.num_classes)
    return str(minimum_with(cost_model(method), shape, BACKBONE, MEMORY_SIZE, AllocatorConfig()))


@contextlib.contextmanager
def _counting_predictions(out: list):
    """While open, clbudget's run records after every task how many distinct classes its
    task-agnostic predictions on the seen test images take (a bench-only wrapper)."""
    import torch
    from clbudget.experiment import run as run_mod
    from clbudget.nets.classifier import mask_unseen
    original = run_mod.evaluate

    def evaluate(method, tasks, t, *other):
        row = original(method, tasks, t, *other)
        if other:       # iCaRL's second accuracy (the CNN's): the same predictions counted once
            return row
        with torch.no_grad():
            x = torch.cat([task.x_test for task in tasks[:t + 1]])
            s = mask_unseen(method.trainer.predict(method.scores, x), method.seen)
            out.append(int(torch.unique(s.argmax(1)).numel()))
        return row
    run_mod.evaluate = evaluate
    try:
        yield
    finally:
        run_mod.evaluate = original


def run_clbudget(spec, stream) -> dict:
    from clbudget.experiment.run import run_experiment
    predicted: list[int] = []
    with _counting_predictions(predicted):
        row = run_experiment(spec, stream=stream)
    if row["allocation"]["n_exemplars"] != MEMORY_SIZE:
        raise RuntimeError(f"clbudget allocated {row['allocation']['n_exemplars']} exemplars, "
                           f"not {MEMORY_SIZE}")
    curve = [100 * a for a in row["accuracy"]["per_step"]]
    return {"curve": curve, "last": curve[-1], "average": float(np.mean(curve)),
            "loss": [ls[-1] if ls else None for ls in row["losses"]],
            "predicted_classes": predicted, "wall_s": row["wall_s"],
            "recipe": row["recipe"]["name"], "class_order": row["class_order"]}


# --------------------------------------------------------------------------- PyCIL side

def pycil_arrays(stream, pycil_order_seed: int | None = None) -> dict:
    """clbudget's stream as PyCIL's iData holds CIFAR: (N, H, W, C) uint8 images, original
    labels, and the class order (original labels by position): clbudget's, or with
    `pycil_order_seed` PyCIL's own (`np.random.seed(seed); permutation` of the original labels,
    data_manager.py `_setup_data` with shuffle on)."""
    order = np.asarray(stream.class_order[:stream.num_classes], dtype=np.int64)

    def split(part):
        x = np.concatenate([getattr(t, part).x for t in stream.tasks])
        y = np.concatenate([getattr(t, part).y for t in stream.tasks])
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1)), order[y]
    train_x, train_y = split("train")
    test_x, test_y = split("test")
    if pycil_order_seed is not None:
        np.random.seed(pycil_order_seed)
        order = np.sort(order)[np.random.permutation(len(order))]
    return {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y,
            "class_order": order.tolist()}


TRAINER_TORCH_SEED = 1      # PyCIL trainer.py `_set_random`: torch.manual_seed(1) for every seed
TORCH_SEEDS = ("run", "fixed")

SCHEDULE_KEYS = ("init_epoch", "init_milestones", "init_lr", "init_weight_decay",
                 "init_lr_decay", "epochs", "milestones", "lrate", "weight_decay",
                 "lrate_decay", "batch_size")


def pycil_constants(module) -> dict:
    """The schedule constants of a PyCIL model module as its source defines them (the values
    before this bench first set them, kept on the module, so a later seed or schedule in the
    same process starts from PyCIL's own values again)."""
    if not hasattr(module, "_parity_original"):
        missing = [k for k in SCHEDULE_KEYS if not hasattr(module, k)]
        if missing:
            raise RuntimeError(f"PyCIL {module.__name__} has no constant {', '.join(missing)}")
        module._parity_original = {k: getattr(module, k) for k in SCHEDULE_KEYS}
    return dict(module._parity_original)


def pycil_schedule(spec, schedule: str = "scaled", constants: dict | None = None) -> dict:
    """PyCIL's module constants for one run.  "scaled": the epochs, milestones, lr and weight
    decay clbudget trains with (the resolved recipe: `first` phase -> init_*, `later` -> the
    rest).  "unscaled": PyCIL's own `constants` with only init_epoch and epochs set to
    spec.epochs, as setting nothing but the epochs in PyCIL does (milestones beyond the last
    epoch never fire, so the lr stays init_lr / lrate throughout)."""
    if schedule == "unscaled":
        if constants is None:
            raise ValueError("the unscaled schedule needs PyCIL's module constants")
        return {**{k: constants[k] for k in SCHEDULE_KEYS},
                "init_epoch": spec.epochs, "epochs": spec.epochs}
    from clbudget.streams.catalog import check_choice
    check_choice("--pycil-schedule", schedule, SCHEDULES)
    recipe = spec.resolved_recipe()
    first, later = recipe.phase("first"), recipe.phase("later")
    return {"init_epoch": first.epochs, "init_milestones": list(first.milestones),
            "init_lr": first.lr, "init_weight_decay": first.weight_decay,
            "init_lr_decay": first.gamma,
            "epochs": later.epochs, "milestones": list(later.milestones), "lrate": later.lr,
            "weight_decay": later.weight_decay, "lrate_decay": later.gamma,
            "batch_size": later.batch_size}


def set_pycil_schedule(module, spec, schedule: str) -> dict:
    """Set a PyCIL model module's schedule constants for `spec` under `schedule` (from PyCIL's
    own values, whatever an earlier run in this process set) and return them."""
    constants = pycil_schedule(spec, schedule, pycil_constants(module))
    for key, value in constants.items():
        setattr(module, key, value)
    return constants


def _import_pycil(path: str):
    path = os.path.abspath(path)
    if not os.path.isfile(os.path.join(path, "utils", "data_manager.py")):
        raise SystemExit(f"--pycil {path}: not a PyCIL checkout (no utils/data_manager.py)")
    if path not in sys.path:
        sys.path.insert(0, path)
    return importlib.import_module("utils.data_manager"), importlib.import_module("utils.data")


def register_pycil_dataset(pycil_path: str, arrays: dict, name: str = "clbudget",
                           augment: bool = True):
    """Make PyCIL's `_get_idata(name)` return an iCIFAR10 (PyCIL's transforms and constants)
    holding `arrays`, and return the iData class.  `augment=False` gives training images the test
    transform (no crop, flip or brightness: only converted and normalised; bench/lockstep.py)."""
    dm, data = _import_pycil(pycil_path)

    class ClbudgetCIFAR10(data.iCIFAR10):
        class_order = list(arrays["class_order"])
        train_trsf = data.iCIFAR10.train_trsf if augment else data.iCIFAR10.test_trsf

        def download_data(self):
            self.train_data, self.train_targets = arrays["train_x"], arrays["train_y"]
            self.test_data, self.test_targets = arrays["test_x"], arrays["test_y"]

    original = getattr(dm, "_original_get_idata", dm._get_idata)
    dm._original_get_idata = original

    def _get_idata(dataset_name):
        return ClbudgetCIFAR10() if dataset_name == name else original(dataset_name)
    dm._get_idata = _get_idata
    return ClbudgetCIFAR10


def clip_herding(learner_cls):
    """Run-time fix: PyCIL's `_construct_exemplar` herds m exemplars from every new class and
    fails (argmin of an empty array) when a class has fewer than m training images, as with
    500 images a class and memory 2000 over 2 or 4 classes.  Herd each class alone with
    min(m, its images), as clbudget's memory does (`select_class` with the quota)."""
    original = learner_cls._construct_exemplar
    if getattr(original, "clipped", False):
        return

    def construct(self, data_manager, m):
        known, total = self._known_classes, self._total_classes
        try:
            for c in range(known, total):
                n = int((data_manager._train_targets == c).sum())
                self._known_classes, self._total_classes = c, c + 1
                original(self, data_manager, min(m, n))
        finally:
            self._known_classes, self._total_classes = known, total
    construct.clipped = True
    learner_cls._construct_exemplar = construct


def _no_workers(loader_cls):
    def make(*a, **kw):
        kw["num_workers"] = 0
        return loader_cls(*a, **kw)
    return make


class _LossLog(logging.Handler):
    """PyCIL logs its last epoch's mean loss per task ("Task t, Epoch e/E => Loss x, ...")."""
    def __init__(self):
        super().__init__()
        self.losses: dict[int, float] = {}

    def emit(self, record):
        m = re.match(r"Task (\d+), Epoch \d+/\d+ => Loss ([-\d.naninf]+)", record.getMessage())
        if m:
            self.losses[int(m[1])] = float(m[2])


def run_pycil(pycil_path: str, spec, stream, first_task_only: bool,
              schedule: str = "scaled", own_order: bool = False,
              torch_seed: str = "run", augment: bool = True) -> dict:
    """One PyCIL run on `stream`'s images: in clbudget's class order, or in PyCIL's own per-seed
    order (`own_order`); torch seeded with the run's seed, or 1 as trainer.py does
    (`torch_seed="fixed"`); `augment=False`: training images not augmented."""
    import torch
    arrays = pycil_arrays(stream, spec.seed if own_order else None)
    register_pycil_dataset(pycil_path, arrays, augment=augment)
    dm = importlib.import_module("utils.data_manager")
    factory = importlib.import_module("utils.factory")
    base = importlib.import_module("models.base")
    module = importlib.import_module(f"models.{PYCIL_MODEL[spec.method]}")
    constants = set_pycil_schedule(module, spec, schedule)
    for mod in (module, base):
        mod.DataLoader = _no_workers(torch.utils.data.DataLoader)
    module.tqdm = functools.partial(module.tqdm, disable=True)
    clip_herding(base.BaseLearner)
    torch.manual_seed(TRAINER_TORCH_SEED if torch_seed == "fixed" else spec.seed)
    np.random.seed(spec.seed)
    args = {"dataset": "clbudget", "memory_size": MEMORY_SIZE, "memory_per_class": 20,
            "fixed_memory": False, "shuffle": False, "init_cls": spec.init or spec.inc,
            "increment": spec.inc, "model_name": PYCIL_MODEL[spec.method],
            "convnet_type": BACKBONE, "device": [torch.device("cpu")], "seed": spec.seed}
    log = _LossLog()
    root = logging.getLogger()
    root.addHandler(log)
    root.setLevel(logging.INFO)
    t0 = time.perf_counter()
    try:
        data_manager = dm.DataManager("clbudget", False, spec.seed, args["init_cls"],
                                      spec.inc)
        model = factory.get_model(args["model_name"], args)
        tasks = 1 if first_task_only else data_manager.nb_tasks
        cnn, nme, predicted = [], [], []
        for _ in range(tasks):
            model.incremental_train(data_manager)
            model.topk = min(5, model._total_classes)    # top-5 of 2 classes fails in topk
            y_pred, y_true = model._eval_cnn(model.test_loader)     # = eval_task's body
            cnn.append(float(model._evaluate(y_pred, y_true)["top1"]))
            predicted.append(int(len(np.unique(y_pred[:, 0]))))
            if hasattr(model, "_class_means"):
                y_nme, y_true = model._eval_nme(model.test_loader, model._class_means)
                nme.append(float(model._evaluate(y_nme, y_true)["top1"]))
            model.after_task()
    finally:
        root.removeHandler(log)
    wall_s = time.perf_counter() - t0
    # the accuracy clbudget reports: NME for iCaRL, the linear head ("CNN") otherwise (PyCIL's
    # eval_task also gives NME for every learner that kept class means, replay and WA too)
    curve = nme if spec.method in NME_METHODS else cnn
    return {"curve": curve, "last": curve[-1], "average": float(np.mean(curve)),
            "cnn_curve": cnn, "nme_curve": nme or None,
            "cnn_last": cnn[-1], "cnn_average": float(np.mean(cnn)),
            "nme_last": nme[-1] if nme else None,
            "nme_average": float(np.mean(nme)) if nme else None,
            "loss": [log.losses.get(t) for t in range(tasks)], "predicted_classes": predicted,
            "wall_s": wall_s, "class_order": list(data_manager._class_order),
            "schedule": constants, "schedule_choice": schedule}


# --------------------------------------------------------------------------- the table

def summary(rows: list[dict]) -> dict:
    """Per-seed differences (clbudget - PyCIL, percentage points), their means, Welch's p of
    the last accuracies and of the averages, and the wall-time ratio (clbudget / PyCIL)."""
    from clbudget.analysis.stats import welch_test
    c_last = [r["clbudget"]["last"] for r in rows]
    p_last = [r["pycil"]["last"] for r in rows]
    c_avg = [r["clbudget"]["average"] for r in rows]
    p_avg = [r["pycil"]["average"] for r in rows]
    return {"seeds": [r["seed"] for r in rows],
            "diff_last": [c - p for c, p in zip(c_last, p_last)],
            "diff_average": [c - p for c, p in zip(c_avg, p_avg)],
            "mean_clbudget_last": float(np.mean(c_last)), "mean_pycil_last": float(np.mean(p_last)),
            "mean_clbudget_average": float(np.mean(c_avg)),
            "mean_pycil_average": float(np.mean(p_avg)),
            "mean_diff_last": float(np.mean(c_last) - np.mean(p_last)),
            "mean_diff_average": float(np.mean(c_avg) - np.mean(p_avg)),
            "p_last": welch_test(c_last, p_last).p_value,
            "p_average": welch_test(c_avg, p_avg).p_value,
            "wall_ratio": sum(r["clbudget"]["wall_s"] for r in rows)
            / sum(r["pycil"]["wall_s"] for r in rows)}


def format_table(method: str, rows: list[dict], s: dict) -> str:
    nme = method in NME_METHODS
    head = ["seed", "clbudget last", "PyCIL last", "diff", "clbudget avg", "PyCIL avg", "diff",
            "PyCIL CNN last/avg", "PyCIL NME last/avg", "loss c/p", "classes c/p", "wall c/p s"]
    lines = [f"{method}: accuracy in %, both {'NME' if nme else 'CNN (linear head)'}; "
             f"diff = clbudget - PyCIL (pp); loss: last epoch's mean training loss; classes: "
             f"distinct predicted classes",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r, dl, da in zip(rows, s["diff_last"], s["diff_average"]):
        c, p = r["clbudget"], r["pycil"]
        cells = [str(r["seed"]), f"{c['last']:.2f}", f"{p['last']:.2f}", f"{dl:+.2f}",
                 f"{c['average']:.2f}", f"{p['average']:.2f}", f"{da:+.2f}"]
        cells += [f"{p['cnn_last']:.2f}/{p['cnn_average']:.2f}",
                  "-" if p.get("nme_last") is None
                  else f"{p['nme_last']:.2f}/{p['nme_average']:.2f}"]
        cells += [f"{_num(c['loss'][-1])}/{_num(p['loss'][-1])}",
                  f"{c['predicted_classes'][-1]}/{p['predicted_classes'][-1]}",
                  f"{c['wall_s']:.0f}/{p['wall_s']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(f"mean: last {s['mean_clbudget_last']:.2f} vs {s['mean_pycil_last']:.2f} "
                 f"(diff {s['mean_diff_last']:+.2f} pp, Welch p={s['p_last']:.3g}); average "
                 f"{s['mean_clbudget_average']:.2f} vs {s['mean_pycil_average']:.2f} "
                 f"(diff {s['mean_diff_average']:+.2f} pp, Welch p={s['p_average']:.3g}); "
                 f"wall-time ratio clbudget/PyCIL {s['wall_ratio']:.2f}")
    return "\n".join(lines)


def _num(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def main(argv=None) -> int:
    args = parse_args(argv)
    from clbudget.experiment.run import load
    rows = []
    own_order = args.clbudget_class_order == "fixed"    # PyCIL keeps its own per-seed order
    for seed in args.seeds:
        stream = load(clbudget_spec(args, seed))
        if args.first_task_only:
            stream = first_task_stream(stream)
        spec = clbudget_spec(args, seed, exact_memory_budget(args.method, stream))
        c = run_clbudget(spec, stream)
        by_schedule = {}
        for schedule in args.pycil_schedule:
            p = run_pycil(args.pycil, spec, stream, args.first_task_only, schedule,
                          own_order=own_order, torch_seed=args.pycil_torch_seed)
            if not own_order and \
                    list(c["class_order"][:stream.num_classes]) != list(p["class_order"]):
                raise RuntimeError(f"seed {seed}: class orders differ: {c['class_order']} vs "
                                   f"{p['class_order']}")
            by_schedule[schedule] = p
            print(f"seed {seed}: clbudget {c['curve']} ({c['wall_s']:.0f} s), "
                  f"PyCIL {schedule} {p['curve']} ({p['wall_s']:.0f} s)", flush=True)
        rows.append({"seed": seed, "clbudget": c, "pycil": by_schedule[args.pycil_schedule[0]],
                     "pycil_by_schedule": by_schedule})
        if args.json:       # after every seed: a stopped bench keeps the seeds it finished
            _write(args, rows, None)
    summaries = {}
    for schedule in args.pycil_schedule:
        view = schedule_rows(rows, schedule)
        summaries[schedule] = s = summary(view)
        print(f"PyCIL schedule: {schedule}")
        print(format_table(args.method, view, s))
    if args.json:
        _write(args, rows, summaries)
    return 0


def schedule_rows(rows: list[dict], schedule: str) -> list[dict]:
    """The rows with PyCIL's run under `schedule` as their "pycil" side."""
    return [{**r, "pycil": r["pycil_by_schedule"][schedule]} for r in rows]


def _write(args, rows: list[dict], s: dict | None) -> None:
    """Every row and the summaries by PyCIL schedule (None until every seed ran)."""
    with open(args.json, "w") as f:
        json.dump({"args": dict(vars(args)), "rows": rows, "summary": s}, f, indent=1,
                  default=str)


if __name__ == "__main__":
    raise SystemExit(main())
