"""Data for class-incremental streams: readers, the glyphs generator, BxIncY protocols.

`load_stream(name, data_root, init, inc, ...)` is the entry point; it reads only what the
stream uses and caches decoded uint8 arrays (see `data.py`).
"""
from .catalog import DATASETS, DatasetInfo, dataset_info, nearest
from .data import DataError, Dataset, Split, load_dataset
from .glyphs import GlyphsOptions
from .protocol import Stream, Task, class_order, load_stream, make_stream, parse_protocol

__all__ = [
    "DatasetInfo", "DATASETS", "dataset_info", "nearest", "Split", "Dataset", "DataError",
    "load_dataset", "GlyphsOptions", "class_order", "Task", "Stream", "parse_protocol",
    "make_stream", "load_stream",
]
