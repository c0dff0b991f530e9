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
    image_shape: tuple[int, ...]  # (C, H, W) as stored, uint8; features: read from the file
    num_classes: int
    reader: str  # "cifar", "imagefolder", "tinyimagenet", "idx", "glyphs", "features"
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
        DatasetInfo("features", (0,), 0, "features",
                    "pre-extracted feature vectors: an .npz or .pt file holding train_x (N, D), "
                    "train_y (N,), test_x (M, D), test_y (M,) (streams/features.py; "
                    "`clbudget encode` writes one); shape and classes are read from the file"),
    )
}


def nearest(name: str, options) -> str:
    """The closest valid spelling, for error messages."""
    match = difflib.get_close_matches(name, list(options), n=1, cutoff=0.0)
    return match[0] if match else ""


def check_choice(field: str, value, choices) -> None:
    """ValueError "FIELD must be one of A, B, got 'X' (nearest: A)" unless `value` is one of
    `choices`."""
    if value not in choices:
        raise ValueError(f"{field} must be one of {', '.join(choices)}, got {value!r} "
                         f"(nearest: {nearest(str(value), choices)})")


def dataset_info(name: str) -> DatasetInfo:
    key = name.strip().lower().replace("_", "-")
    key = {"fashionmnist": "fashion-mnist", "tiny-imagenet": "tinyimagenet",
           "imagenet-100": "imagenet100"}.get(key, key)
    if key not in DATASETS:
        raise ValueError(
            f"unknown dataset {name!r}; known: {', '.join(DATASETS)} "
            f"(nearest: {nearest(key, DATASETS)})")
    return DATASETS[key]


# Published per-channel (mean, std) normalisation constants, by whose code uses them.  A recipe
# names the source (`Recipe.normalization`); a dataset without constants there is normalised
# with its whole training set's mean and std (train/recipes.py `pipeline_for`).
NORMALIZATION_CONSTANTS: dict[tuple[str, str], tuple[tuple[float, ...], tuple[float, ...]]] = {
    # PyCIL utils/data.py iCIFAR10 / iCIFAR100 / iImageNet100 `common_trsf`
    ("pycil", "cifar10"): ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    ("pycil", "cifar100"): ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
    ("pycil", "imagenet100"): ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    # Mammoth datasets/seq_cifar10.py, seq_cifar100.py, seq_tinyimagenet.py MEAN, STD
    ("mammoth", "cifar10"): ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2615)),
    ("mammoth", "cifar100"): ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
    ("mammoth", "tinyimagenet"): ((0.4802, 0.4480, 0.3975), (0.2770, 0.2691, 0.2821)),
    # Mammoth datasets/seq_mnist.py: ToTensor only, no Normalize (pixels / 255)
    ("mammoth", "mnist"): ((0.0,), (1.0,)),
}


def normalization_constants(source: str, dataset: str):
    """(mean, std) that `source` ("pycil", "mammoth") publishes for `dataset`, or None."""
    try:
        key = dataset_info(dataset).name
    except ValueError:
        return None
    return NORMALIZATION_CONSTANTS.get((source, key))
