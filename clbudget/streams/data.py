"""`load_dataset`: read a data set of the catalogue with its reader (readers.py) or generator
(glyphs.py) into uint8 arrays.

The base types and the cache live in base.py, which the readers and the generator import;
this module sits above all three (dependencies run one way, issue 15).  The base names are
re-exported here, so `from clbudget.streams.data import Split` keeps working.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Collection

from .base import (DataError, Dataset, Split, cache_key, cached_split,  # noqa: F401 (re-export)
                   per_class_subset, resolve_cache_dir)
from .catalog import dataset_info
from .glyphs import GlyphsOptions, load_glyphs

def load_dataset(name: str, data_root: str | os.PathLike | None = None, *,
                 cache_dir: str | os.PathLike | None = None, glyphs_options=None,
                 max_per_class: int | None = None, max_test_per_class: int | None = None,
                 sample_seed: int = 0,
                 class_subset: Callable[[int], Collection[int]] | None = None) -> Dataset:
    """Read data set `name` (see `DATASETS`) from `data_root` into uint8 arrays.

    max_per_class / max_test_per_class cap train / test images per class, chosen by
    `per_class_subset(y, cap, sample_seed)` before decoding. `class_subset(K)` returns the
    original labels to read; the others stay in `class_names` but get no images (this is how
    `load_stream` skips classes a stream does not use). Decoded folders and generated glyphs
    are cached under `cache_dir`; pickle and IDX files are read directly (already arrays).
    """
    from . import readers   # imported on use, as before: the readers pull in PIL
    info = dataset_info(name)
    opts = readers.ReadOptions(
        cache_dir=resolve_cache_dir(cache_dir), max_per_class=max_per_class,
        max_test_per_class=max_test_per_class, sample_seed=sample_seed,
        class_subset=class_subset)
    if info.reader == "glyphs":
        return load_glyphs(glyphs_options or GlyphsOptions(), opts, name=info.name)
    if glyphs_options is not None:
        raise ValueError(f"glyphs_options only applies to the glyphs data set, not {name!r}")
    if info.reader == "features":   # one file, read whole (make_stream caps and orders)
        from .features import read_features
        if data_root is None:
            raise DataError("the features data set needs its file: --features FILE.npz "
                            "(or --data-root FILE.npz)")
        return read_features(data_root)
    from .download import download_hint
    if data_root is None:
        raise DataError(f"data set {info.name!r} needs a data root (--data-root); "
                        f"expected: {info.description}{download_hint(info.name)}")
    root = Path(data_root).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"data root {root} is not a folder; expected: {info.description}"
                        f"{download_hint(info.name)}")
    return readers.READERS[info.reader](info, root, opts)
