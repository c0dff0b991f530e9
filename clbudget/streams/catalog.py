"""Dataset metadata that needs no files: image shape, class count, reader.

The accountant and the allocator size exemplars from `image_shape` alone, so
`clbudget budget allocate --dataset cifar100` works on a machine with no data.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    image_shape: tuple[int, int, int]  # (C, H, W) as stored, uint8
    num_classes: int
    reader: str  # "cifar", "imagefolder", "tinyimagenet", "idx", "glyphs"
    description: str

    @property
    def image_bytes(self) -> int:
        c, h, w = self.image_shape
        return c * h * w


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("cifar10", (3, 32, 32), 10, "cifar",
                    "CIFAR-10: python-pickle folder or ImageFolder tree"),
        DatasetInfo("cifar100", (3, 32, 32), 100, "cifar",
                    "CIFAR-100: python-pickle folder or ImageFolder tree"),
        DatasetInfo("tinyimagenet", (3, 64, 64), 200, "tinyimagenet",
                    "Tiny-ImageNet-200 (train/<wnid>/images, val/val_annotations.txt)"),
        DatasetInfo("imagenet100", (3, 224, 224), 100, "imagefolder",
                    "ImageNet-100 subset as an ImageFolder tree, resized to 224x224"),
        DatasetInfo("mnist", (1, 28, 28), 10, "idx", "MNIST IDX files (.gz or raw)"),
        DatasetInfo("fashion-mnist", (1, 28, 28), 10, "idx",
                    "Fashion-MNIST IDX files (.gz or raw)"),
        DatasetInfo("glyphs", (3, 32, 32), 100, "glyphs",
                    "procedural Synbols-style characters rendered by clbudget (no files)"),
        DatasetInfo("imagefolder", (3, 32, 32), 0, "imagefolder",
                    "any ImageFolder tree train/<class>/*, test|val/<class>/*; "
                    "shape and classes are read from the data"),
    )
}


def nearest(name: str, options) -> str:
    """The closest valid spelling, for error messages."""
    match = difflib.get_close_matches(name, list(options), n=1, cutoff=0.0)
    return match[0] if match else ""


def dataset_info(name: str) -> DatasetInfo:
    key = name.strip().lower().replace("_", "-")
    key = {"fashionmnist": "fashion-mnist", "tiny-imagenet": "tinyimagenet",
           "imagenet-100": "imagenet100"}.get(key, key)
    if key not in DATASETS:
        raise ValueError(
            f"unknown dataset {name!r}; known: {', '.join(DATASETS)} "
            f"(nearest: {nearest(key, DATASETS)})")
    return DATASETS[key]
