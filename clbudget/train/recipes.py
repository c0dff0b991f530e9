"""Training recipes: how a method is trained, named, frozen and cited.

A recipe is the optimisation of every phase of a method (epochs, batch size, optimizer, lr,
schedule, momentum, weight decay, augmentation on/off per phase) plus the run-wide precision.
It is kept apart from the method's mechanism hyper-parameters (its `Config`): two methods
compared at equal bytes should also be compared at equal training, and the recipe says what
that training was.

Every method names its reference recipe (`Method.recipe`, the settings of the code it follows,
with the file they come from).  A run may impose another one (`RunSpec.recipe`, `--recipe`),
override single fields (`RunSpec.recipe_options`, `--recipe-option first.epochs=5`) and the
precision (`--precision`).  Phases keep their identity: a method marks the phases that train
it on the task (`Method.task_phases`, e.g. BMC's experts "first"/"later"); the run-wide
`--epochs`/`--batch-size`/`--lr` change only those, while the other phases (BMC's
consolidation, CLR's pre-training, MIND's teacher) keep their recipe's values unless a
`--recipe-option PHASE.FIELD=...` names them.  Task phases an imposed recipe lacks are taken
from the method's `phase_fallbacks` (CLR's task <- "later"); other phases it lacks from the
method's own reference recipe (so BMC's consolidation stays its un-augmented AdamW phase).  A run records
the resolved recipe (`Recipe.to_dict`) and its fingerprint; sweeps and audits compare
fingerprints.
"""
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
        from clbudget.streams.catalog import nearest
        if self.augmentation not in AUGMENTATIONS:
            raise ValueError(f"augmentation must be one of {', '.join(AUGMENTATIONS)}, got "
                             f"{self.augmentation!r} (nearest: "
                             f"{nearest(self.augmentation, AUGMENTATIONS)})")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {', '.join(NORMALIZATIONS)}, got "
                             f"{self.normalization!r} (nearest: "
                             f"{nearest(self.normalization, NORMALIZATIONS)})")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, "
                             f"got {self.precision!r}")
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


def get_recipe(name: str) -> Recipe:
    _load_builtin()
    if name not in RECIPES:
        from clbudget.streams.catalog import nearest
        raise ValueError(f"unknown recipe {name!r}; known: {', '.join(sorted(RECIPES))} "
                         f"(nearest: {nearest(name, RECIPES)})")
    return RECIPES[name]


def _load_builtin() -> None:
    import clbudget.train.recipe_book  # noqa: F401  (registers the reference recipes)


def _phase_with(cfg: LoopConfig, fields: dict, where: str) -> LoopConfig:
    """`cfg` with `fields` replaced, each checked against LoopConfig's field types first."""
    from clbudget.train.fields import check_fields
    return replace(cfg, **check_fields(LoopConfig, fields, where, sep="."))


def resolve(method_cls, name: str | None = None, options=(), precision: str | None = None,
            epochs: int | None = None, batch_size: int | None = None,
            lr: float | None = None) -> Recipe:
    """The recipe a run of `method_cls` trains with: the method's reference recipe or `name`,
    limited to the phases the method has (missing task phases from its `phase_fallbacks`,
    missing other phases from its own reference recipe), with `options` ((phase, {field:
    value}) pairs) applied, then the run-wide `epochs`/`batch_size`/`lr` on its task phases
    only (`Method.task_phases`)."""
    imposed = name is not None and name != method_cls.recipe
    base = get_recipe(name or method_cls.recipe)
    task_phases = task_phases_of(method_cls)
    phases = []
    for phase in method_cls.phases:
        source = phase
        if source not in base.phase_names and phase not in task_phases:
            own = get_recipe(method_cls.recipe)   # a phase of its own: its reference values
            if phase in own.phase_names:
                phases.append((phase, own.phase(phase)))
                continue
        if source not in base.phase_names:
            source = method_cls.phase_fallbacks.get(phase, "")
        if source not in base.phase_names:
            raise ValueError(
                f"recipe {base.name} has no phase {phase!r} that {method_cls.name} needs "
                f"(its phases: {', '.join(base.phase_names)}; {method_cls.name} needs "
                f"{', '.join(method_cls.phases)})")
        phases.append((phase, base.phase(source)))
    recipe = replace(base, phases=tuple(phases),
                     name=base.name if not imposed else base.name)
    for phase, fields in options:
        if phase not in recipe.phase_names:
            from clbudget.streams.catalog import nearest
            raise ValueError(f"{method_cls.name} has no training phase {phase!r}; phases: "
                             f"{', '.join(recipe.phase_names)} "
                             f"(nearest: {nearest(phase, recipe.phase_names)})")
        if isinstance(fields, LoopConfig):
            cfg = fields
        elif isinstance(fields, dict):
            cfg = _phase_with(recipe.phase(phase), fields,
                              f"{method_cls.name} recipe option {phase}")
        else:
            raise ValueError(f"recipe option {phase}: expected {{field: value, ...}} "
                             f"(e.g. {phase}.epochs=5), got {fields!r}")
        recipe = recipe.replace_phase(phase, cfg)
    for phase, cfg in recipe.phases:   # the run-wide --epochs/--batch-size/--lr: task phases
        if phase not in task_phases:
            continue
        cfg = cfg.with_epochs(epochs)
        if batch_size:
            cfg = replace(cfg, batch_size=batch_size)
        if lr:
            cfg = replace(cfg, lr=lr)
        recipe = recipe.replace_phase(phase, cfg)
    if precision is not None:
        recipe = replace(recipe, precision=precision)
    return recipe


def task_phases_of(method_cls) -> tuple[str, ...]:
    """The phases that train `method_cls` on its tasks (all its phases if it names none)."""
    marked = getattr(method_cls, "task_phases", None)
    if marked is None:
        return tuple(method_cls.phases)
    odd = [p for p in marked if p not in method_cls.phases]
    if odd:
        raise ValueError(f"{method_cls.name}: task_phases names {', '.join(odd)}, not among its "
                         f"phases ({', '.join(method_cls.phases)})")
    return tuple(marked)


def phase_epochs(recipe) -> dict[str, int]:
    """{phase: epochs} of a Recipe or of a row's recorded recipe dict."""
    if isinstance(recipe, Recipe):
        return {n: c.epochs for n, c in recipe.phases}
    return {n: c.get("epochs") for n, c in ((recipe or {}).get("phases") or {}).items()}


def pipeline_for(recipe: Recipe, dataset: str, train_x):
    """The input pipeline of a run: the recipe's augmentation, and its normalisation: the
    constants its source publishes for `dataset`, else the mean/std of every training image
    `train_x` (N, C, H, W) uint8 of the stream."""
    from clbudget.train.loop import Pipeline
    from clbudget.streams.catalog import normalization_constants
    brightness = AUGMENTATIONS[recipe.augmentation]
    constants = (normalization_constants(recipe.normalization, dataset)
                 if recipe.normalization != "train-set" else None)
    if constants is not None and len(constants[0]) == int(train_x.shape[1]):
        return Pipeline(tuple(constants[0]), tuple(constants[1]), brightness=brightness)
    return Pipeline.from_images(train_x, brightness=brightness)


# --- comparing the training of runs (sweeps, reports, audits) -------------------------------

def _as_dict(recipe) -> dict:
    return recipe.to_dict() if isinstance(recipe, Recipe) else dict(recipe or {})


def fingerprint_of(recipe) -> str:
    """The fingerprint of a Recipe or of a row's recorded recipe dict ("?" if none)."""
    if isinstance(recipe, Recipe):
        return recipe.fingerprint
    return str((recipe or {}).get("fingerprint", "?"))


def training_differs(a, b) -> bool:
    """Whether two recipes (Recipe or recorded dicts) train differently: precision,
    augmentation or normalisation differ, or a phase both have is set differently.  Phases
    only one of them has (BMC's consolidation) do not count: an imposed recipe gives every
    shared phase the same settings."""
    da, db = _as_dict(a), _as_dict(b)
    for key in ("precision", "augmentation", "normalization"):
        if da.get(key) != db.get(key):
            return True
    pa, pb = da.get("phases") or {}, db.get("phases") or {}
    return any(json.dumps(pa[n], sort_keys=True, default=list)
               != json.dumps(pb[n], sort_keys=True, default=list) for n in set(pa) & set(pb))


def recipe_warnings(items, where: str = "sweep") -> list[str]:
    """One warning line per distinct recipe when the (method, recipe) pairs of `items` do not
    all train alike (`training_differs`); [] when they do."""
    groups: dict[str, tuple[object, list[str]]] = {}
    for method, recipe in items:
        fp = fingerprint_of(recipe)
        _, methods = groups.setdefault(fp, (recipe, []))
        if method not in methods:
            methods.append(method)
    recipes = [r for r, _ in groups.values()]
    if not any(training_differs(a, b) for i, a in enumerate(recipes) for b in recipes[i + 1:]):
        return []
    lines = []
    for fp, (recipe, methods) in groups.items():
        name = recipe.name if isinstance(recipe, Recipe) else (recipe or {}).get("name", "?")
        lines.append(f"warning: this {where} mixes training recipes: {', '.join(methods)} "
                     f"{'trains' if len(methods) == 1 else 'train'} with {name} [{fp}]; "
                     f"impose one with --recipe NAME to compare at equal training")
    return lines
