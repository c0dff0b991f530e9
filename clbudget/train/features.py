"""The input path of feature streams (streams/features.py): vectors go to the network as they
are stored, or standardised per dimension, and are never augmented.

The image `Pipeline` (train/loop.py) crops, flips and brightens uint8 images and divides by 255
before per-channel normalisation; none of that means anything for a feature vector.  A run on
a feature stream uses `FeaturePipeline` instead, and records what it did:
- `--normalization recipe` (default): none; the vectors as the file stores them, as BMC's
  reference feeds its stored features (datasets/seq_stream.py: no transform when
  `feats_name` is set).  The row's normalization is {"kind": "none", "mean": [], "std": []}.
- `--normalization train-set`: each of the D dimensions standardised by the mean and std
  (unbiased, variance floored at 1e-6 as `Pipeline.from_images`) of every training vector of
  the stream; the row records the D means and stds.
- SOURCE:DATASET (published image constants): refused, they are per colour channel of pixels.
Every phase of the resolved recipe is recorded with `augment=False` (`feature_recipe`): what
the loop ran, not what the image recipe would have asked for.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from clbudget.train.recipe import Recipe
from clbudget.train.recipes import Normalization, parse_normalization


@dataclass(frozen=True)
class FeaturePipeline:
    """(B, D) stored feature vectors -> (B, D) float32 inputs on their device: x, or
    (x - mean) / std per dimension when `mean` is given.  Never augments (`augment` and
    `generator` are accepted for the loop's call and ignored: no random number is drawn)."""
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def __call__(self, x: torch.Tensor, augment: bool = False,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        out = x.float()
        if self.mean:
            mean = torch.tensor(self.mean, device=x.device)
            std = torch.tensor(self.std, device=x.device)
            out = (out - mean) / std
        return out


def feature_normalization(train_x: np.ndarray, choice: str = "recipe") -> Normalization:
    """What normalises a feature stream's vectors under `--normalization choice` (module
    docstring); `train_x` (N, D): every training vector of the stream."""
    kind, _ = parse_normalization(choice)
    if kind == "constants":
        raise ValueError(f"--normalization {choice}: published constants are per colour channel "
                         f"of images; a feature stream takes recipe (the vectors as stored) or "
                         f"train-set (each dimension standardised)")
    if kind == "recipe":
        return Normalization("none", (), (), why="feature stream: vectors as stored")
    x = np.asarray(train_x, dtype=np.float64)                       # (N, D)
    n = len(x)
    mean = x.mean(0)
    var = ((x - mean) ** 2).sum(0) / max(n - 1, 1)
    std = np.sqrt(np.maximum(var, 1e-6))
    return Normalization("train-set", tuple(mean.tolist()), tuple(std.tolist()),
                         why="--normalization train-set: per dimension of the feature vectors")


def feature_recipe(recipe: Recipe) -> Recipe:
    """`recipe` with every phase's `augment` off: feature vectors are never augmented."""
    return replace(recipe, phases=tuple((name, replace(cfg, augment=False))
                                        for name, cfg in recipe.phases))


def feature_inputs(recipe: Recipe, train_x: np.ndarray, choice: str = "recipe"):
    """(recipe without augmentation, Normalization, FeaturePipeline) of a feature stream."""
    norm = feature_normalization(train_x, choice)
    return feature_recipe(recipe), norm, FeaturePipeline(norm.mean, norm.std)
