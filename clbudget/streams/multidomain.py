"""Streams over several data sets (multi-domain) and over shifting domains (domain-incremental).

Why: BMC (seed 000) evaluates on the Stream benchmark (71 data sets in a row), CLR (seed 001)
on 53 data sets, MIND (seed 003) also on Core50's domain-incremental setting; a stream of one
data set split by classes covers none of them.

Multi-domain, `NAME[/K][:T]+NAME[/K][:T]+...` (e.g. `cifar10:2+fashion-mnist:2+glyphs/10:1`):
each component keeps K classes of its data set (default all; the first K of its class order,
the same `class_order` as `make_stream`) split into T tasks (default 1) of as equal sizes as
possible, the first tasks taking the extra class (K=10, T=3 -> 4, 3, 3).  Labels are global:
component A's classes are 0..a-1, B's a..a+b-1, in component order, so a task's classes are
still contiguous and the class-incremental machinery (heads that grow by appending columns,
task-aware slices at `task_offsets`) applies unchanged.

Domain-incremental, `NAME[/K]@D0,D1,...` (e.g. `glyphs/10@identity,invert,rot90`): task t
holds all K classes under the fixed transform D_t (`DOMAINS`); the label space is the same in
every task.  Each class's training images are cut into T disjoint parts (part t for task t,
after a `default_rng([sample_seed, label])` shuffle), so no image is seen under two domains;
every task tests on the whole test split under its own transform.  How a class-incremental
method's head behaves there and which accuracies are defined: `experiment.metrics.domain_accuracy`.

Images are brought to one stored shape, `IMAGE_SHAPE` = (3, 32, 32) uint8 (`unify`): a grey
image is replicated to 3 channels; a smaller image is zero-padded, centred (28x28 -> 2 pixels
each side; no resampling, so every original pixel is kept exactly); a larger one is scaled
(shorter side, bilinear) and centre-cropped by `readers.fit_image`.  Exemplars are therefore
stored, and counted by the accountant, at 3*32*32 = 3,072 bytes whatever their source (a
Fashion-MNIST image is 784 bytes as read, 3,072 as stored).

Data roots: `--data-root NAME=PATH[,NAME=PATH...]`; a bare PATH is accepted when exactly one
component needs files.  Fashion-MNIST defaults to Debian's `dataset-fashion-mnist` files
(`DEFAULT_ROOTS`).  Guarded by tests/test_multidomain.py and bench/mutant_catalog/multidomain.py.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import DataError, Dataset, Split
from .catalog import DATASETS, dataset_info, nearest
from .protocol import Stream, Task, class_order, make_stream

IMAGE_SHAPE = (3, 32, 32)   # (C, H, W) uint8, every task's stored shape

# Where Debian's package puts the files (`dpkg -L dataset-fashion-mnist`)
DEFAULT_ROOTS = {"fashion-mnist": "/usr/share/datasets/fashion-mnist"}

# Methods that run on a domain-incremental stream (run.py `run_increments`), each run there by
# test_multidomain.py: replay, DER++, EWC and joint train one shared head on every seen class,
# finetune too (CE over every seen class in a task without new ones: the sweep's reference);
# MIND follows its reference's CORE50 path (methods/mind.py, "Domain-incremental": a
# subnetwork and BN set per domain over all K classes, the head's weights given out like a
# conv's).  The others use the classes new in a task, of which a later domain-incremental task
# has none, and are refused by name (`DOMAIN_REFUSALS`) rather than run unchecked.
DOMAIN_INCREMENTAL_METHODS = ("replay", "derpp", "ewc", "joint", "finetune", "mind")

# Why a method is refused there (the error names it); the others: the old:seen slice or
# per-task growth of LwF, iCaRL, WA, DER, MEMO
DOMAIN_REFUSALS = {
    "clr": "CLR is task-aware with a head per task over that task's new classes; here every "
           "task holds the same K classes, which would need a head per task over the same "
           "classes (and per-task kernels/BN chosen by the domain), not implemented",
    "bmc": "BMC trains an expert per task on the head slice of its task's new classes and "
           "balances consolidation by the buffer (task) a sample's label belongs to; here "
           "later tasks bring no new classes and a label names no task",
}

# Fixed per-task transforms of a domain-incremental stream, on (N, C, H, W) uint8
DOMAINS = ("identity", "invert", "rot90", "rot180", "rot270", "noise")


@dataclass(frozen=True)
class Component:
    dataset: str                 # catalogue name
    num_classes: int | None      # the first K of its class order; None: all
    num_tasks: int = 1


@dataclass(frozen=True)
class StreamSpec:
    """A parsed `--stream`: components (multi-domain) or one data set under `domains`."""
    components: tuple[Component, ...]
    domains: tuple[str, ...] = ()   # non-empty: domain-incremental over components[0]

    @property
    def domain_incremental(self) -> bool:
        return bool(self.domains)


@dataclass(frozen=True)
class MultiDomainStream(Stream):
    """A `Stream` whose tasks come from several data sets or domains."""
    task_domains: tuple[str, ...] = ()     # per task: its data set (or "dataset@domain")
    domain_incremental: bool = False       # True: every task holds the same classes 0..K-1

    @property
    def num_classes(self) -> int:
        # the label space: a domain-incremental stream repeats its classes in every task
        return self.increments[0] if self.domain_incremental else sum(self.increments)

    @property
    def task_offsets(self) -> tuple[int, ...]:
        if self.domain_incremental:
            return (0,) * self.num_tasks
        return super().task_offsets


def source_classes(stream: Stream) -> dict[str, tuple[int, ...]]:
    """{data set: the sorted original labels of that data set which the stream's tasks hold},
    read from the tasks (`Task.classes`, remapped) through `class_order` (remapped -> original)
    and, on a multi-domain stream, each task's data set (`task_domains`, "glyphs" or
    "glyphs@invert"); a plain stream's data set is its `dataset_name`.  E.g. CIFAR-10's
    `glyphs/4:2` component under class order 1993 holds glyphs 8, 56, 68, 78 (the first four of
    `RandomState(1993).permutation(100)`), not 0-3.  CLR's glyph stand-in excludes these
    (methods/pretrained.py `disjoint_glyph_classes`)."""
    domains = getattr(stream, "task_domains", ()) or (stream.dataset_name,) * stream.num_tasks
    out: dict[str, set[int]] = {}
    for task, domain in zip(stream.tasks, domains):
        held = out.setdefault(domain.partition("@")[0], set())
        held.update(int(stream.class_order[c]) for c in task.classes)
    return {name: tuple(sorted(labels)) for name, labels in out.items()}


def is_stream_spec(text: str) -> bool:
    """True for a multi-domain or domain-incremental spec (catalogue names hold none of
    '+', ':', '/', '@')."""
    return any(ch in str(text) for ch in "+:/@")


_COMPONENT = re.compile(r"\s*([A-Za-z][\w-]*)\s*(?:/\s*(\d+))?\s*(?::\s*(\d+))?\s*")


def _component(text: str, whole: str, tasks_allowed: bool = True) -> Component:
    match = _COMPONENT.fullmatch(text)
    if not match or (match[3] is not None and not tasks_allowed):
        form = "NAME[/K][:T]" if tasks_allowed else "NAME[/K]"
        raise ValueError(f"stream component {text!r} of {whole!r} is not of the form {form}, "
                         f"e.g. cifar10:2 or glyphs/10:1")
    name = match[1].lower()
    if name not in DATASETS or name == "imagefolder":
        known = [n for n in DATASETS if n != "imagefolder"]
        raise ValueError(f"unknown data set {match[1]!r} in stream {whole!r}; known: "
                         f"{', '.join(known)} (nearest: {nearest(name, known)})")
    info = dataset_info(name)
    k = None if match[2] is None else int(match[2])
    t = 1 if match[3] is None else int(match[3])
    if k is not None and not 1 <= k <= info.num_classes:
        raise ValueError(f"{text!r}: {name} has {info.num_classes} classes; K must be 1.."
                         f"{info.num_classes}, got {k}")
    if t < 1 or t > (k or info.num_classes):
        raise ValueError(f"{text!r}: T={t} tasks of {k or info.num_classes} classes; T must be "
                         f"1..{k or info.num_classes}")
    return Component(name, k, t)


def parse_stream(text: str) -> StreamSpec:
    """`a:2+b/10:1` (multi-domain) or `a/10@identity,invert` (domain-incremental)."""
    whole = str(text)
    if "@" in whole:
        head, _, tail = whole.partition("@")
        if "+" in head:
            raise ValueError(f"stream {whole!r}: a domain-incremental stream has one data set "
                             f"(NAME[/K]@D0,D1,...); drop the '+'")
        domains = tuple(d.strip().lower() for d in tail.split(","))
        for d in domains:
            if d not in DOMAINS:
                raise ValueError(f"unknown domain {d!r} in stream {whole!r}; domains: "
                                 f"{', '.join(DOMAINS)} (nearest: {nearest(d, DOMAINS)})")
        if len(domains) < 2:
            raise ValueError(f"stream {whole!r}: a domain-incremental stream needs at least 2 "
                             f"domains, e.g. {head}@identity,invert")
        return StreamSpec((_component(head, whole, tasks_allowed=False),), domains)
    parts = whole.split("+")
    if any(not p.strip() for p in parts):
        raise ValueError(f"stream {whole!r} has an empty component; e.g. cifar10:2+glyphs/10:1")
    return StreamSpec(tuple(_component(p, whole) for p in parts))


def split_sizes(num_classes: int, num_tasks: int) -> tuple[int, ...]:
    """Classes per task: as equal as possible, the first tasks taking the extra class."""
    base, extra = divmod(num_classes, num_tasks)
    return tuple(base + (i < extra) for i in range(num_tasks))


def data_roots(text: str | None, names: list[str]) -> dict[str, str | None]:
    """`NAME=PATH[,NAME=PATH]` (or one bare PATH for the one component that reads files) ->
    a root per data set of `names`; DEFAULT_ROOTS fill the rest; glyphs needs none."""
    needing = [n for n in dict.fromkeys(names) if dataset_info(n).reader != "glyphs"]
    given: dict[str, str] = {}
    if text:
        pairs = [p.strip() for p in str(text).split(",") if p.strip()]
        if len(pairs) == 1 and "=" not in pairs[0]:
            if len(needing) != 1:
                raise ValueError(f"--data-root {text!r} is one folder but the stream reads "
                                 f"files of {needing or 'no data set'}; give NAME=PATH for each, "
                                 f"e.g. --data-root cifar10=/data/cifar10")
            given[needing[0]] = pairs[0]
        else:
            for pair in pairs:
                name, sep, path = pair.partition("=")
                name = name.strip().lower()
                if not sep or name not in needing:
                    raise ValueError(f"--data-root entry {pair!r}: expected NAME=PATH with NAME "
                                     f"one of the stream's data sets that read files: "
                                     f"{', '.join(needing) or 'none'}")
                given[name] = path.strip()
    return {n: given.get(n, DEFAULT_ROOTS.get(n)) for n in needing}


# ---------------------------------------------------------------------------- images

def unify(x: np.ndarray, shape: tuple[int, int, int] = IMAGE_SHAPE) -> np.ndarray:
    """(N, c, h, w) uint8 -> (N, C, H, W) uint8: grey replicated to C channels; smaller images
    zero-padded, centred (top = (H-h)//2, left = (W-w)//2); larger ones scaled and centre-
    cropped (`readers.fit_image`)."""
    C, H, W = shape
    n, c, h, w = x.shape
    if c == 1 and C == 3:
        x = np.repeat(x, 3, axis=1)
    elif c != C:
        raise ValueError(f"cannot bring {c}-channel images to {C} channels; images must be "
                         f"grey (1) or have {C} channels")
    if (h, w) == (H, W):
        return np.ascontiguousarray(x)
    if h <= H and w <= W:
        out = np.zeros((n, C, H, W), dtype=np.uint8)
        top, left = (H - h) // 2, (W - w) // 2
        out[:, :, top:top + h, left:left + w] = x
        return out
    from PIL import Image
    from .readers import fit_image
    out = np.empty((n, C, H, W), dtype=np.uint8)
    for i in range(n):
        im = Image.fromarray(x[i].transpose(1, 2, 0) if C == 3 else x[i, 0])
        out[i] = np.asarray(fit_image(im, (H, W)), dtype=np.uint8).reshape(H, W, C).transpose(2, 0, 1)
    return out


def apply_domain(x: np.ndarray, domain: str, seed: int) -> np.ndarray:
    """One of `DOMAINS` on (N, C, H, W) uint8.  noise: Gaussian, sigma 32 grey levels, drawn
    from `default_rng([seed, 7])`, added and clipped to 0..255."""
    if domain == "identity":
        return x
    if domain == "invert":
        return 255 - x
    if domain.startswith("rot"):
        return np.ascontiguousarray(np.rot90(x, k=int(domain[3:]) // 90, axes=(2, 3)))
    if domain == "noise":
        noise = np.random.default_rng([seed, 7]).normal(0.0, 32.0, x.shape)
        return np.clip(np.rint(x + noise), 0, 255).astype(np.uint8)
    raise ValueError(f"unknown domain {domain!r}; domains: {', '.join(DOMAINS)}")


# ---------------------------------------------------------------------------- loading

def _component_stream(comp: Component, root, *, class_order_seed, max_per_class,
                      max_test_per_class, cache_dir, glyphs_options, sample_seed) -> Stream:
    """One component as a one-task stream with labels 0..K-1 (`make_stream`'s remapping)."""
    from .data import load_dataset
    info = dataset_info(comp.dataset)
    k = comp.num_classes or info.num_classes
    if comp.dataset == "glyphs" and glyphs_options is not None:
        if glyphs_options.num_classes < k:
            raise ValueError(f"glyphs/{k} needs at least {k} glyphs classes, the glyphs options "
                             f"make {glyphs_options.num_classes}; use glyphs/"
                             f"{glyphs_options.num_classes}")
    dataset = load_dataset(
        comp.dataset, root, cache_dir=cache_dir,
        glyphs_options=glyphs_options if comp.dataset == "glyphs" else None,
        max_per_class=max_per_class, max_test_per_class=max_test_per_class,
        sample_seed=sample_seed,
        class_subset=lambda available: class_order(available, class_order_seed)[:k])
    return make_stream(dataset, k, k, class_order_seed=class_order_seed, num_classes=k,
                       max_per_class=max_per_class, max_test_per_class=max_test_per_class,
                       sample_seed=sample_seed)


def _check_root(name: str, root) -> None:
    if root is not None and not Path(root).expanduser().is_dir():
        hint = (" (Debian: apt-get install -y dataset-fashion-mnist)"
                if name == "fashion-mnist" else "")
        raise DataError(f"data root {root} of {name} is not a folder; give --data-root "
                        f"{name}=PATH{hint}")


def load_multidomain(text: str, data_root: str | None = None, *,
                     class_order_seed: int | None = 1993, max_per_class: int | None = None,
                     max_test_per_class: int | None = None,
                     cache_dir: str | os.PathLike | None = None, glyphs_options=None,
                     sample_seed: int = 0) -> MultiDomainStream:
    """The stream `text` (`parse_stream`), images unified to IMAGE_SHAPE (`unify`)."""
    spec = parse_stream(text)
    roots = data_roots(data_root, [c.dataset for c in spec.components])
    if glyphs_options is not None and all(c.dataset != "glyphs" for c in spec.components):
        raise ValueError(f"glyphs options apply to a stream with glyphs, not {text!r}")
    for name, root in roots.items():
        _check_root(name, root)
    kw = dict(class_order_seed=class_order_seed, max_per_class=max_per_class,
              max_test_per_class=max_test_per_class, cache_dir=cache_dir,
              glyphs_options=glyphs_options, sample_seed=sample_seed)
    if spec.domain_incremental:
        return _domain_stream(spec, roots, text, **kw)
    tasks, increments, order, names, domains = [], [], [], [], []
    offset = 0
    for comp in spec.components:
        one = _component_stream(comp, roots.get(comp.dataset), **kw)
        (only,) = one.tasks
        train = Split(unify(only.train.x), only.train.y + offset)
        test = Split(unify(only.test.x), only.test.y + offset)
        lo = offset
        for size in split_sizes(one.num_classes, comp.num_tasks):
            hi = lo + size
            tasks.append(Task(len(tasks), tuple(range(lo, hi)),
                              *(s.subset((s.y >= lo) & (s.y < hi)) for s in (train, test))))
            increments.append(size)
            domains.append(comp.dataset)
            lo = hi
        order += list(one.class_order)
        names += [f"{comp.dataset}/{n}" for n in one.class_names]
        offset += one.num_classes
    return MultiDomainStream(str(text), IMAGE_SHAPE, tuple(order), tuple(increments),
                             tuple(tasks), tuple(names), tuple(domains), False)


def _domain_stream(spec: StreamSpec, roots, text: str, *, sample_seed: int,
                   **kw) -> MultiDomainStream:
    (comp,) = spec.components
    one = _component_stream(comp, roots.get(comp.dataset), sample_seed=sample_seed, **kw)
    (only,) = one.tasks
    T, K = len(spec.domains), one.num_classes
    train_x, train_y = unify(only.train.x), only.train.y
    test_x, test_y = unify(only.test.x), only.test.y
    part = np.empty(len(train_y), dtype=np.int64)   # the task each training image goes to
    for label in range(K):
        members = np.flatnonzero(train_y == label)
        if len(members) < T:
            raise ValueError(f"class {one.class_names[label]!r} of {comp.dataset} has "
                             f"{len(members)} training images, fewer than the {T} domains; "
                             f"raise --max-per-class to at least {T}")
        members = np.random.default_rng([sample_seed, label]).permutation(members)
        for t, chunk in enumerate(np.array_split(members, T)):
            part[chunk] = t
    tasks = []
    for t, domain in enumerate(spec.domains):
        mine = part == t
        tasks.append(Task(t, tuple(range(K)),
                          Split(apply_domain(train_x[mine], domain, sample_seed * 1000 + t),
                                train_y[mine]),
                          Split(apply_domain(test_x, domain, sample_seed * 1000 + 500 + t),
                                test_y)))
    return MultiDomainStream(str(text), IMAGE_SHAPE, one.class_order, (K,) * T, tuple(tasks),
                             tuple(f"{comp.dataset}/{n}" for n in one.class_names),
                             tuple(f"{comp.dataset}@{d}" for d in spec.domains), True)
