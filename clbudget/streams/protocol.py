"""Class-incremental protocols: class order, BxIncY splits, and the task stream.

Follows PyCIL (Zhou et al., 2023) so numbers are comparable: the class order is
`np.random.seed(1993); np.random.permutation(K)`, and labels are remapped to their position
in that order, so task t holds the contiguous labels offsets[t] .. offsets[t+1]-1 and a
classifier head grows by appending columns.

Class order protocols (`CLASS_ORDERS`, a run's `class_order`), after PyCIL
utils/data_manager.py `DataManager._setup_data(dataset_name, shuffle, seed)`:
- "fixed" (a run's default: `RunSpec`, `clbudget run`): shuffle with one seed for every run,
  `class_order_seed` (1993, the seed of every exps/*.json); seeds then vary the training alone.
- "per-seed" (`clbudget sweep`'s default): shuffle with the run's own seed, as PyCIL does when
  run with several seeds (`for seed in seed_list: ... DataManager(..., args["shuffle"],
  args["seed"], ...)`): `np.random.seed(seed); order = np.random.permutation(K).tolist()`;
  confidence intervals over seeds then include the class-order variance.
- "unshuffled": PyCIL with shuffle false, `order = idata.class_order`, which is
  `np.arange(K).tolist()` for iCIFAR10/100 and iImageNet100/1000 (utils/data.py): the
  data set's own label order.

Why a sweep shuffles per seed by default.  A sweep exists to give intervals over seeds, and
in class-incremental learning the class order is a source of variance of its own (which
classes come first decides what the first task's features are and which classes are
forgotten); an interval over seeds at one fixed order leaves it out, so it describes that
one order, not the method, and is not the honest error bar the reports promise.  Per seed costs
nothing else: methods are still paired within a seed (every method of a sweep gets seed s's
order, so paired tests and the audit's pairing, analysis/audit_pairing.py, compare like with
like), and PyCIL's published single-seed setting is still one flag away, `--seeds 1993`, whose
order is the fixed one under either protocol.  A single `clbudget run` keeps the fixed order
(seed 1993 whatever --seed): one run has no interval, and it stays comparable with PyCIL's
numbers and with the parity benches.  Run keys leave "fixed" out, so stores written before
keep their keys; `clbudget sweep` into a store that already holds fixed-order runs of its
cells resumes the fixed order and says so (experiment/sweep.py `default_class_order`), and
per-seed and fixed runs are separate settings in reports (analysis/rows.py SETTING_FIELDS).
Whichever protocol ran, the report states it beside every interval (the tables' "class
order" column and captions, the headlines, the figures' footnote, the audit's test line:
analysis/compute.py `class_order_scope`), and every row records its shuffle seed
(`class_order_shuffle_seed`: the seed used, None when unshuffled).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .data import Dataset, Split, load_dataset, per_class_subset


CLASS_ORDERS = ("fixed", "per-seed", "unshuffled")


def class_order(num_classes: int, class_order_seed: int | None = 1993) -> list[int]:
    """PyCIL's order: identical to `np.random.seed(s); np.random.permutation(K)`; with
    `class_order_seed` None, PyCIL's unshuffled order `np.arange(K)`."""
    if class_order_seed is None:
        return list(range(num_classes))
    return np.random.RandomState(class_order_seed).permutation(num_classes).tolist()


def order_seed(protocol: str, seed: int, class_order_seed: int = 1993) -> int | None:
    """The seed `class_order` shuffles with under `protocol` (CLASS_ORDERS) for a run of
    `seed`: class_order_seed ("fixed"), the run's seed ("per-seed"), None ("unshuffled")."""
    from .catalog import check_choice
    check_choice("class order", protocol, CLASS_ORDERS)
    return {"fixed": class_order_seed, "per-seed": seed, "unshuffled": None}[protocol]


@dataclass(frozen=True)
class Task:
    index: int
    classes: tuple[int, ...]  # remapped labels (positions in the class order) new in this task
    train: Split  # labels remapped
    test: Split  # labels remapped; only this task's classes


@dataclass(frozen=True)
class Stream:
    dataset_name: str
    image_shape: tuple[int, ...]  # (C, H, W) uint8 images; (D,) feature vectors
    class_order: tuple[int, ...]  # original labels; class_order[remapped] = original
    increments: tuple[int, ...]  # classes per task
    tasks: tuple[Task, ...]
    class_names: tuple[str, ...]  # class_names[remapped label]

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    @property
    def input_dtype(self) -> str:
        """The stored dtype of its inputs: "uint8" images, "float32"/"float16" features."""
        return str(self.tasks[0].train.x.dtype)

    @property
    def num_classes(self) -> int:
        return sum(self.increments)

    @property
    def task_offsets(self) -> tuple[int, ...]:
        """First remapped label of each task."""
        return tuple(int(o) for o in np.cumsum((0,) + self.increments[:-1]))

    def seen_test(self, t: int) -> Split:
        """Test data of tasks 0..t (the classes seen so far), remapped labels."""
        if not 0 <= t < self.num_tasks:
            raise IndexError(f"task {t} out of range 0..{self.num_tasks - 1}")
        parts = [task.test for task in self.tasks[:t + 1]]
        return Split(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]))


def parse_protocol(text: str) -> tuple[int, int]:
    """"B0Inc10" -> (0, 10); "B50Inc5" -> (50, 5). Case-insensitive."""
    match = re.fullmatch(r"\s*b(\d+)\s*[-_ ]?\s*inc(\d+)\s*", text, re.IGNORECASE)
    if not match:
        raise ValueError(f"protocol {text!r} is not of the form B<init>Inc<inc>, "
                         f"e.g. B0Inc10 or B50Inc5")
    return int(match[1]), int(match[2])


def _check_signs(init: int, inc: int):
    if inc <= 0 or init < 0:
        raise ValueError(f"B{init}Inc{inc}: inc must be >= 1 and init >= 0 (init 0 means "
                         f"the first task has inc classes), got init={init}, inc={inc}")


def increments(num_classes: int, init: int, inc: int,
               available: int | None = None) -> tuple[int, ...]:
    """Classes per task of B{init}Inc{inc} on num_classes classes; init 0 means init = inc.

    Raises ValueError naming the nearest valid inc and num_classes when they do not divide.
    """
    name = f"B{init}Inc{inc}"
    _check_signs(init, inc)
    if init > num_classes:
        raise ValueError(f"{name}: init {init} is more than the {num_classes} classes; "
                         f"init must be at most {num_classes}")
    first = init or inc
    rest = num_classes - first
    if rest < 0 or rest % inc:
        base = num_classes - init
        valid_inc = ([d for d in range(1, base + 1) if base % d == 0] if base > 0
                     else ["any"])
        limit = num_classes if available is None else available
        valid_n = [first + k * inc for k in range(0, limit // inc + 1)
                   if first + k * inc <= limit]
        hint = (f"; or num_classes={min(valid_n, key=lambda n: (abs(n - num_classes), n))}"
                if valid_n else "")
        raise ValueError(f"{name} does not divide {num_classes} classes: {init} + k*{inc} != "
                         f"{num_classes}; valid inc for init {init}: "
                         f"{', '.join(map(str, valid_inc))}{hint}")
    return (first,) + (inc,) * (rest // inc)


def make_stream(dataset: Dataset, init: int, inc: int, *, class_order_seed: int | None = 1993,
                num_classes: int | None = None, max_per_class: int | None = None,
                max_test_per_class: int | None = None, sample_seed: int = 0) -> Stream:
    """Split `dataset` into the tasks of B{init}Inc{inc}.

    num_classes keeps the first N classes of the shuffled order (e.g. 10 of CIFAR-100);
    max_per_class / max_test_per_class keep a random subset per class chosen by
    `per_class_subset(y, cap, sample_seed)`, the same rule `load_dataset` applies before
    decoding, so capping here or at load time gives the same images.
    """
    available = dataset.num_classes
    n = available if num_classes is None else num_classes
    if not 1 <= n <= available:
        raise ValueError(f"num_classes={num_classes} but {dataset.name} has {available} "
                         f"classes; choose 1..{available}")
    incs = increments(n, init, inc, available)
    order = class_order(available, class_order_seed)[:n]
    position = np.full(available, -1, dtype=np.int64)
    position[order] = np.arange(n)

    def remap(split: Split, cap: int | None, what: str) -> Split:
        kept = split.subset(per_class_subset(split.y, cap, sample_seed, order))
        empty = sorted(set(order) - set(np.unique(kept.y).tolist()))
        if empty:
            raise ValueError(f"{what} split of {dataset.name} has no images of classes "
                             f"{[dataset.class_names[c] for c in empty][:5]}; was it loaded "
                             f"with a different class subset or class_order_seed?")
        return Split(kept.x, position[kept.y])

    train = remap(dataset.train, max_per_class, "train")
    test = remap(dataset.test, max_test_per_class, "test")
    offsets = np.cumsum((0,) + incs)
    tasks = []
    for t, (lo, hi) in enumerate(zip(offsets[:-1], offsets[1:])):
        tasks.append(Task(t, tuple(range(lo, hi)),
                          *(s.subset((s.y >= lo) & (s.y < hi)) for s in (train, test))))
    return Stream(dataset.name, dataset.image_shape, tuple(order), incs, tuple(tasks),
                  tuple(dataset.class_names[c] for c in order))


def load_stream(name: str, data_root: str | os.PathLike | None, init: int, inc: int, *,
                class_order_seed: int | None = 1993, num_classes: int | None = None,
                max_per_class: int | None = None, max_test_per_class: int | None = None,
                cache_dir: str | os.PathLike | None = None, glyphs_options=None,
                sample_seed: int = 0) -> Stream:
    """`load_dataset` + `make_stream`, decoding only the images the stream uses.

    Only the first num_classes classes of the order, and at most max_per_class train /
    max_test_per_class test images each, are read; the result equals
    `make_stream(load_dataset(name, data_root), ...)` with the same arguments.
    """
    _check_signs(init, inc)  # fail before reading anything
    subset: Callable[[int], list[int]] | None = None
    if num_classes is not None:
        def subset(available: int) -> list[int]:
            return class_order(available, class_order_seed)[:num_classes]
    dataset = load_dataset(name, data_root, cache_dir=cache_dir, glyphs_options=glyphs_options,
                           max_per_class=max_per_class, max_test_per_class=max_test_per_class,
                           sample_seed=sample_seed, class_subset=subset)
    return make_stream(dataset, init, inc, class_order_seed=class_order_seed,
                       num_classes=num_classes, max_per_class=max_per_class,
                       max_test_per_class=max_test_per_class, sample_seed=sample_seed)
