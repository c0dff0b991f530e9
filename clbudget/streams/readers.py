"""Readers for data on disk: ImageFolder, Tiny-ImageNet, CIFAR pickles, IDX (MNIST).

Every reader first builds a *listing* (file paths or in-memory arrays with labels), then
`_take` applies the per-class caps and class subset, and only then decodes. Folder readers
share `_decode_listing`: one cap, one decoder (`decode_image`), one cache key.
"""
from __future__ import annotations

import gzip
import os
import pickle
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection

import numpy as np
from PIL import Image

from .catalog import DatasetInfo
from .base import DataError, Dataset, Split, cache_key, cached_split, per_class_subset

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm",
                            ".pgm", ".tif", ".tiff"})
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")


@dataclass(frozen=True)
class ReadOptions:
    cache_dir: Path
    max_per_class: int | None = None  # train images per class
    max_test_per_class: int | None = None
    sample_seed: int = 0
    class_subset: Callable[[int], Collection[int]] | None = None  # K -> labels to read

    def take(self, y: np.ndarray, split: str, num_classes: int) -> np.ndarray:
        """Indices of the listing to read: caps and class subset applied, order kept."""
        cap = self.max_per_class if split == "train" else self.max_test_per_class
        labels = None if self.class_subset is None else {
            int(c) for c in self.class_subset(num_classes)}
        return per_class_subset(y, cap, self.sample_seed, labels)


# ---------------------------------------------------------------------------- decoding

def fit_image(im: Image.Image, size_hw: tuple[int, int]) -> Image.Image:
    """Scale the shorter side to the target, then centre-crop: keeps the aspect ratio."""
    h, w = size_hw
    if im.size == (w, h):
        return im
    scale = max(w / im.width, h / im.height)
    sw, sh = max(w, round(im.width * scale)), max(h, round(im.height * scale))
    im = im.resize((sw, sh), Image.BILINEAR)
    left, top = (sw - w) // 2, (sh - h) // 2
    return im.crop((left, top, left + w, top + h))


def decode_image(path: str, shape: tuple[int, int, int]) -> np.ndarray:
    """One file as a (C, H, W) uint8 array; C = 1 means grey ("L"), 3 means RGB."""
    c, h, w = shape
    try:
        with Image.open(path) as im:
            im.draft("L" if c == 1 else "RGB", (w, h))  # JPEG: decode at reduced scale
            im = fit_image(im.convert("L" if c == 1 else "RGB"), (h, w))
            a = np.asarray(im, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        # OSError covers truncated files and UnidentifiedImageError.
        raise DataError(f"cannot decode image {path}: {e}; delete or replace the file") from e
    return a.reshape(h, w, c).transpose(2, 0, 1)


def decode_images(paths: list[str], shape: tuple[int, int, int]) -> np.ndarray:
    """(N, C, H, W) uint8, decoded in listing order, so an error names the first bad file.

    Small images decode serially: for 32x32 JPEGs, threads measured 1.5-2x slower (the work
    is per-call Python overhead, under the GIL). Large ones use threads, as PIL releases the
    GIL while decoding.
    """
    out = np.empty((len(paths), *shape), dtype=np.uint8)
    if shape[1] * shape[2] < 96 * 96:
        for i, path in enumerate(paths):
            out[i] = decode_image(path, shape)
        return out
    chunk = 256  # bounds the work done after a bad file
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for start in range(0, len(paths), chunk):
            batch = paths[start:start + chunk]
            for i, a in enumerate(pool.map(lambda p: decode_image(p, shape), batch)):
                out[start + i] = a
    return out


def _decode_listing(name: str, split: str, files: list[str], y: np.ndarray,
                    class_names: tuple[str, ...], shape: tuple[int, int, int],
                    opts: ReadOptions) -> Split:
    """The shared path of every folder reader: cap, then cache or decode."""
    index = opts.take(y, split, len(class_names))
    chosen, y = [files[i] for i in index], y[index]
    key = cache_key(("folder", name, split, shape, class_names, y), chosen)
    return cached_split(opts.cache_dir, f"{name}-{split}", key,
                        lambda: Split(decode_images(chosen, shape), y))


def _check_class_count(info: DatasetInfo, found: int, root: Path):
    if info.num_classes and found != info.num_classes:
        raise DataError(f"{root} holds {found} classes but {info.name} has "
                        f"{info.num_classes}; use --dataset imagefolder for other trees")


# ---------------------------------------------------------------------------- ImageFolder

def _image_files(folder: Path) -> list[str]:
    return sorted(e.path for e in os.scandir(folder)
                  if e.is_file() and not e.name.startswith(".")
                  and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES)


def _class_dirs(split_dir: Path) -> dict[str, Path]:
    return {e.name: Path(e.path) for e in sorted(os.scandir(split_dir), key=lambda e: e.name)
            if e.is_dir() and not e.name.startswith(".")}


def read_imagefolder(info: DatasetInfo, root: Path, opts: ReadOptions) -> Dataset:
    """train/<class>/*, test/<class>/* (or val/<class>/*); labels in sorted class order.

    Images are scaled (shorter side) and centre-cropped to the catalog's shape; for the
    generic "imagefolder" data set, to the size of the first training image in sorted order,
    so a tree of equal-size images is stored exactly as it is.
    """
    layout = ("expected ImageFolder layout train/<class>/*.jpg and test/<class>/*.jpg "
              "(or val/<class>/*.jpg)")
    test_dir = next((root / s for s in ("test", "val") if (root / s).is_dir()), None)
    if not (root / "train").is_dir() or test_dir is None:
        missing = "train/" if not (root / "train").is_dir() else "test/ or val/"
        raise DataError(f"no {missing} folder under {root}; {layout}")
    dirs = {"train": _class_dirs(root / "train"), "test": _class_dirs(test_dir)}
    if not dirs["train"]:
        raise DataError(f"no class folders in {root / 'train'}; {layout}")
    if set(dirs["train"]) != set(dirs["test"]):
        only_train = sorted(set(dirs["train"]) - set(dirs["test"]))
        only_test = sorted(set(dirs["test"]) - set(dirs["train"]))
        raise DataError(f"train and {test_dir.name} classes differ under {root}: only in "
                        f"train: {only_train}; only in {test_dir.name}: {only_test}")
    class_names = tuple(dirs["train"])
    _check_class_count(info, len(class_names), root)
    listings = {}
    for split, by_class in dirs.items():
        files, labels = [], []
        for label, folder in enumerate(by_class.values()):
            found = _image_files(folder)
            if not found:
                raise DataError(f"no image files in {folder}; {layout}")
            files += found
            labels += [label] * len(found)
        listings[split] = files, np.asarray(labels, dtype=np.int64)
    shape = info.image_shape
    if not info.num_classes:  # generic tree: the first image decides
        first = listings["train"][0][0]
        try:
            with Image.open(first) as im:
                shape = (info.image_shape[0], im.height, im.width)
        except (OSError, SyntaxError, ValueError) as e:   # the first bad file, named
            raise DataError(f"cannot decode image {first}: {e}; delete or replace the "
                            f"file") from e
    return Dataset(info.name, *(
        _decode_listing(info.name, split, *listings[split], class_names, shape, opts)
        for split in ("train", "test")), class_names)


# ---------------------------------------------------------------------------- Tiny-ImageNet

def read_tinyimagenet(info: DatasetInfo, root: Path, opts: ReadOptions) -> Dataset:
    """train/<wnid>/images/*.JPEG; val/images/*.JPEG labelled by val/val_annotations.txt."""
    layout = ("expected Tiny-ImageNet layout train/<wnid>/images/*.JPEG, val/images/*.JPEG "
              "and val/val_annotations.txt (optional wnids.txt)")
    annotations = root / "val" / "val_annotations.txt"
    if not (root / "train").is_dir() or not annotations.is_file():
        missing = "train/" if not (root / "train").is_dir() else "val/val_annotations.txt"
        raise DataError(f"no {missing} under {root}; {layout}")
    if (root / "wnids.txt").is_file():
        class_names = tuple(sorted(w for w in (root / "wnids.txt").read_text().split()))
    else:
        class_names = tuple(_class_dirs(root / "train"))
    _check_class_count(info, len(class_names), root)
    label_of = {w: i for i, w in enumerate(class_names)}
    train_files, train_y = [], []
    for wnid, label in label_of.items():
        folder = root / "train" / wnid / "images"
        if not folder.is_dir():
            raise DataError(f"no folder {folder}; {layout}")
        found = _image_files(folder)
        train_files += found
        train_y += [label] * len(found)
    test_files, test_y = [], []
    for line_no, line in enumerate(annotations.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in label_of:
            raise DataError(f"{annotations}:{line_no}: expected '<file>\\t<wnid>\\t...' with "
                            f"a wnid from train/, got {line!r}")
        test_files.append(str(root / "val" / "images" / fields[0]))
        test_y.append(label_of[fields[1]])
    return Dataset(info.name, *(
        _decode_listing(info.name, split, files, np.asarray(y, dtype=np.int64), class_names,
                        info.image_shape, opts)
        for split, files, y in (("train", train_files, train_y),
                                ("test", test_files, test_y))), class_names)


# ---------------------------------------------------------------------------- CIFAR pickles

def _array_split(x: np.ndarray, y: np.ndarray, split: str, num_classes: int,
                 opts: ReadOptions) -> Split:
    index = opts.take(y, split, num_classes)
    return Split(x[index], y[index])


def _unpickle(path: Path) -> dict:
    # The official CIFAR python release is a set of pickles written by Python 2; they are
    # data, not code, and this is the only place clbudget unpickles anything.
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="bytes")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as e:
        raise DataError(f"cannot read CIFAR batch {path}: {e}") from e


def read_cifar(info: DatasetInfo, root: Path, opts: ReadOptions) -> Dataset:
    """torchvision's pickle folder (root may be the batches folder or its parent), or an
    ImageFolder tree train/<class>/*, test/<class>/* (e.g. the JPEG CIFAR-10)."""
    ten = info.num_classes == 10
    folder_name = "cifar-10-batches-py" if ten else "cifar-100-python"
    train_files = [f"data_batch_{i}" for i in range(1, 6)] if ten else ["train"]
    test_file, meta_file = ("test_batch", "batches.meta") if ten else ("test", "meta")
    label_key, names_key = ((b"labels", b"label_names") if ten
                            else (b"fine_labels", b"fine_label_names"))
    folder = next((d for d in (root / folder_name, root) if (d / train_files[0]).is_file()),
                  None)
    if folder is None:
        if (root / "train").is_dir():
            return read_imagefolder(info, root, opts)
        raise DataError(
            f"no {folder_name}/ folder or {train_files[0]} file under {root}; expected the "
            f"CIFAR python layout {folder_name}/{{{','.join(train_files)},{test_file},"
            f"{meta_file}}} or ImageFolder train/<class>/*.jpg and test/<class>/*.jpg")
    missing = [n for n in (*train_files, test_file, meta_file) if not (folder / n).is_file()]
    if missing:
        raise DataError(f"{folder} lacks {', '.join(missing)}; expected {folder_name}/"
                        f"{{{','.join(train_files)},{test_file},{meta_file}}}")
    class_names = tuple(n.decode() for n in _unpickle(folder / meta_file)[names_key])
    _check_class_count(info, len(class_names), folder)
    splits = []
    for split, names in (("train", train_files), ("test", [test_file])):
        batches = [_unpickle(folder / n) for n in names]
        try:
            x = np.concatenate([np.asarray(b[b"data"], dtype=np.uint8) for b in batches])
            y = np.concatenate([np.asarray(b[label_key], dtype=np.int64) for b in batches])
        except KeyError as e:
            raise DataError(f"a CIFAR batch in {folder} has no key {e}; expected b'data' "
                            f"and {label_key!r}") from e
        splits.append(_array_split(x.reshape(-1, 3, 32, 32), y, split, len(class_names),
                                   opts))
    return Dataset(info.name, *splits, class_names)


# ---------------------------------------------------------------------------- IDX

def read_idx_file(path: Path, magic: int) -> np.ndarray:
    """An IDX array of unsigned bytes (the MNIST format), .gz or raw.

    Header: 0, 0, type code 0x08 (ubyte), ndim, then ndim big-endian uint32 sizes; so the
    magic is 2049 for a label vector and 2051 for an image stack.
    """
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        data = f.read()
    found = struct.unpack(">I", data[:4])[0] if len(data) >= 4 else None
    if found != magic:
        raise DataError(f"{path}: IDX magic {found}, expected {magic} "
                        f"({'images' if magic == 2051 else 'labels'})")
    ndim = magic & 0xFF
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataError(f"{path}: header says {dims} = {int(np.prod(dims))} bytes, file "
                        f"holds {body.size}; the file is truncated or corrupt")
    return body.reshape(dims)


def read_idx(info: DatasetInfo, root: Path, opts: ReadOptions) -> Dataset:
    """train-/t10k- images-idx3-ubyte and labels-idx1-ubyte (.gz or raw) in root or root/raw."""
    stems = {(split, kind): f"{prefix}-{kind}-idx{1 if kind == 'labels' else 3}-ubyte"
             for split, prefix in (("train", "train"), ("test", "t10k"))
             for kind in ("images", "labels")}
    paths = {}
    for key, stem in stems.items():
        paths[key] = next((d / n for d in (root, root / "raw") for n in (stem, stem + ".gz")
                           if (d / n).is_file()), None)
    missing = [stems[k] for k, p in paths.items() if p is None]
    if missing:
        raise DataError(f"no {', '.join(missing)} (.gz or raw) under {root} or {root / 'raw'};"
                        f" expected the MNIST IDX files {', '.join(stems.values())}")
    class_names = (FASHION_MNIST_CLASSES if info.name == "fashion-mnist"
                   else tuple(str(d) for d in range(10)))
    splits = []
    for split in ("train", "test"):
        x = read_idx_file(paths[split, "images"], 2051)
        y = read_idx_file(paths[split, "labels"], 2049).astype(np.int64)
        if len(x) != len(y) or (len(y) and y.max() >= len(class_names)):
            raise DataError(f"{paths[split, 'images']} holds {len(x)} images but "
                            f"{paths[split, 'labels']} {len(y)} labels (max {y.max()}); "
                            f"expected equal counts and labels 0..{len(class_names) - 1}")
        splits.append(_array_split(x[:, None], y, split, len(class_names), opts))
    return Dataset(info.name, *splits, class_names)


READERS: dict[str, Callable[[DatasetInfo, Path, ReadOptions], Dataset]] = {
    "cifar": read_cifar, "imagefolder": read_imagefolder,
    "tinyimagenet": read_tinyimagenet, "idx": read_idx,
}
