"""A training recipe's type and the table of named recipes (no recipe values: those are in
recipe_book.py, which registers them here; `recipes.get_recipe` loads the book).

Kept apart from recipes.py so that recipe_book -> recipe <- recipes import one way."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, replace

from clbudget.train.loop import LoopConfig

PRECISIONS = ("fp32", "bf16")

# augmentation policy -> ColorJitter brightness after crop + flip (`loop.Pipeline`)
AUGMENTATIONS: dict[str, float] = {
    "crop-flip": 0.0,                        # Mammoth datasets/seq_cifar10.py TRANSFORM
    "crop-flip-brightness63": 63 / 255,      # PyCIL utils/data.py iCIFAR10/100 train_trsf
}
# normalisation -> whose published constants (streams/catalog.py NORMALIZATION_CONSTANTS);
# "train-set": the whole training set's mean and std (also the fallback of the others for a
# dataset their code publishes no constants for)
NORMALIZATIONS = ("pycil", "mammoth", "train-set")


@dataclass(frozen=True)
class Recipe:
    name: str
    source: str                                   # where the values come from (repo + file)
    phases: tuple[tuple[str, LoopConfig], ...]    # (phase name, its optimisation)
    precision: str = "fp32"                       # "fp32" | "bf16" (autocast) on every device
    augmentation: str = "crop-flip"               # AUGMENTATIONS (when a phase augments)
    normalization: str = "train-set"              # NORMALIZATIONS

    def __post_init__(self):
        from clbudget.streams.catalog import check_choice
        check_choice("augmentation", self.augmentation, AUGMENTATIONS)
        check_choice("normalization", self.normalization, NORMALIZATIONS)
        check_choice("precision", self.precision, PRECISIONS)
        names = [n for n, _ in self.phases]
        if len(set(names)) != len(names):
            raise ValueError(f"recipe {self.name}: a phase is named twice ({', '.join(names)})")

    @property
    def phase_names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.phases)

    def phase(self, name: str) -> LoopConfig:
        for n, cfg in self.phases:
            if n == name:
                return cfg
        raise KeyError(f"recipe {self.name} has no phase {name!r}; "
                       f"phases: {', '.join(self.phase_names)}")

    def replace_phase(self, name: str, cfg: LoopConfig) -> "Recipe":
        phases = tuple((n, cfg if n == name else c) for n, c in self.phases)
        return replace(self, phases=phases)

    def to_dict(self) -> dict:
        return {"name": self.name, "source": self.source, "precision": self.precision,
                "augmentation": self.augmentation, "normalization": self.normalization,
                "phases": {n: dataclasses.asdict(c) for n, c in self.phases}}

    @property
    def fingerprint(self) -> str:
        """Identity of the training itself (phases, precision, augmentation, normalisation),
        not of its name."""
        d = self.to_dict()
        blob = json.dumps({k: d[k] for k in ("precision", "phases", "augmentation",
                                             "normalization")},
                          sort_keys=True, default=list)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


RECIPES: dict[str, Recipe] = {}


def register_recipe(recipe: Recipe) -> Recipe:
    if RECIPES.get(recipe.name, recipe) != recipe:
        raise ValueError(f"recipe {recipe.name!r} registered twice")
    RECIPES[recipe.name] = recipe
    return recipe
