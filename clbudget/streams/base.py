"""Decoded data sets as uint8 arrays, and the on-disk cache that keeps them.

Every reader ends in the same two arrays per split, `x` (N, C, H, W) uint8 and `y` (N,)
int64, because that is the dtype exemplars are stored and counted at: a budget in bytes
means nothing if the data silently becomes float32 on the way in.

Per-class caps are applied to the *listing*, before anything is decoded, so that
`--max-per-class 300` on a 50,000-JPEG folder decodes 3,000 files, not 50,000. The subset
is chosen by `per_class_subset`, which `make_stream` uses too, so capping at load time and
capping a fully loaded data set pick the same images.

This module holds the base types (`Split`, `Dataset`, `DataError`) and the cache; the readers
(readers.py) and the generator (glyphs.py) import it, never the reverse.  `load_dataset`,
which dispatches to them, is in data.py.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection, Iterable, Sequence

import numpy as np


class DataError(ValueError):
    """A data folder is missing or does not have the layout its reader expects."""


# what a split's x may hold: images (N, C, H, W) uint8, or pre-extracted feature vectors
# (N, D) at the float dtype they are stored and counted at (streams/features.py)
FEATURE_DTYPES = (np.float32, np.float16)


@dataclass(frozen=True)
class Split:
    x: np.ndarray  # (N, C, H, W) uint8, or (N, D) float32/float16 features; C-contiguous
    y: np.ndarray  # (N,) int64

    def __post_init__(self):
        image = self.x.dtype == np.uint8 and self.x.ndim == 4
        features = self.x.dtype in FEATURE_DTYPES and self.x.ndim == 2
        if not (image or features):
            raise ValueError(f"Split.x must be (N, C, H, W) uint8 images or (N, D) float32 / "
                             f"float16 features, got {self.x.dtype} {self.x.shape}")
        if self.y.shape != (len(self.x),):
            raise ValueError(f"Split.y must be ({len(self.x)},), got {self.y.shape}")
        # Frozen dataclass: normalise in place of a custom __init__.
        object.__setattr__(self, "x", np.ascontiguousarray(self.x))
        object.__setattr__(self, "y", np.asarray(self.y, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: np.ndarray) -> "Split":
        return Split(self.x[index], self.y[index])


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    test: Split
    class_names: tuple[str, ...]  # class_names[label]; labels are 0..K-1

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.train.x.shape[1:])  # (C, H, W), features (D,)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def per_class_subset(y: np.ndarray, max_per_class: int | None, seed: int,
                     labels: Collection[int] | None = None) -> np.ndarray:
    """Sorted indices of at most `max_per_class` items of each label in `labels` (all if None).

    Each class draws its subset from its own generator `default_rng([seed, label])`, so the
    images kept for a class do not depend on which other classes are kept. Order of the
    input is preserved.
    """
    if max_per_class is not None and max_per_class < 1:
        raise ValueError(f"max_per_class must be >= 1 or None, got {max_per_class}")
    if seed < 0:
        raise ValueError(f"sample_seed must be >= 0, got {seed}")
    y = np.asarray(y)
    wanted = np.unique(y) if labels is None else np.asarray(sorted(labels), dtype=np.int64)
    parts = []
    for label in wanted:
        members = np.flatnonzero(y == label)
        if max_per_class is not None and len(members) > max_per_class:
            rng = np.random.default_rng([seed, int(label)])
            members = rng.choice(members, max_per_class, replace=False)
        parts.append(members)
    if not parts:
        return np.empty(0, dtype=np.int64)
    return np.sort(np.concatenate(parts)).astype(np.int64)


# ---------------------------------------------------------------------------- cache

def resolve_cache_dir(cache_dir: str | os.PathLike | None) -> Path:
    """`cache_dir`, else $CLBUDGET_CACHE, else ~/.cache/clbudget (created on first write)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("CLBUDGET_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "clbudget"


def cache_key(parts: Iterable[object], files: Sequence[str] = ()) -> str:
    """Hex digest of `parts` (repr, or bytes for arrays) and each file's path, size, mtime.

    Sizes and mtimes make a changed folder miss the cache without reading any file.
    """
    h = hashlib.sha256()
    for part in parts:
        h.update(part.tobytes() if isinstance(part, np.ndarray) else repr(part).encode())
        h.update(b"\0")
    for path in files:
        st = os.stat(path)
        h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def cached_split(cache_dir: Path, stem: str, key: str,
                 build: Callable[[], Split]) -> Split:
    """Load `<cache_dir>/<stem>-<key>.npz`, or build the split and write it atomically.

    A cache file that cannot be read (e.g. from an interrupted older version) is rebuilt.
    """
    path = cache_dir / f"{stem}-{key}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                return Split(f["x"], f["y"])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass
    split = build()
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=f".{stem}-", suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, x=split.x, y=split.y)
        os.replace(tmp, path)  # atomic: readers never see a half-written file
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return split
