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

import json
from dataclasses import dataclass, replace

from clbudget.train.loop import LoopConfig
from clbudget.train.recipe import (AUGMENTATIONS, NORMALIZATIONS, PRECISIONS,  # noqa: F401
                                    RECIPES, Recipe, register_recipe)


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
            lr: float | None = None, dataset: str | None = None,
            n_exemplars: int | None = None) -> Recipe:
    """The recipe a run of `method_cls` trains with: the method's reference recipe or `name`,
    limited to the phases the method has (missing task phases from its `phase_fallbacks`,
    missing other phases from its own reference recipe), with `options` ((phase, {field:
    value}) pairs) applied, then the run-wide `epochs`/`batch_size`/`lr` on its task phases
    only (`Method.task_phases`).  The reference recipe may depend on `dataset` and the
    buffer size `n_exemplars` (`Method.recipe_for`, methods/best_args.py)."""
    reference = reference_recipe(method_cls, dataset, n_exemplars)
    imposed = name is not None and name != reference
    base = get_recipe(name or reference)
    task_phases = task_phases_of(method_cls)
    phases = []
    for phase in method_cls.phases:
        source = phase
        if source not in base.phase_names and phase not in task_phases:
            own = get_recipe(reference)   # a phase of its own: its reference values
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


def reference_recipe(method_cls, dataset: str | None = None,
                     n_exemplars: int | None = None) -> str:
    """The name of a method's own recipe on `dataset` at a buffer of `n_exemplars`
    (`Method.recipe_for`; the buffer only for methods with best-args tables, so a user's
    `recipe_for(cls, dataset)` still works)."""
    if not hasattr(method_cls, "recipe_for"):
        return method_cls.recipe
    if getattr(method_cls, "best_args", None):
        return method_cls.recipe_for(dataset, n_exemplars)
    return method_cls.recipe_for(dataset)


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


@dataclass(frozen=True)
class Normalization:
    """The per-channel normalisation a run applies, as it records it: published `constants`
    of `source` for `dataset`, or `train-set` statistics of the run's training images; `why`
    says how it was chosen (the recipe's choice, --normalization, or the fallback when the
    recipe's source publishes no constants for the data set)."""
    kind: str                        # "constants" | "train-set"
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str | None = None        # "pycil" | "mammoth" (constants only)
    dataset: str | None = None       # whose constants (constants only)
    why: str = ""

    def to_dict(self) -> dict:
        return {"kind": self.kind, "source": self.source, "dataset": self.dataset,
                "mean": list(self.mean), "std": list(self.std), "why": self.why}


def normalization_choices() -> list[str]:
    """Every valid `--normalization`: recipe, train-set, SOURCE:DATASET with constants."""
    from clbudget.streams.catalog import NORMALIZATION_CONSTANTS
    return ["recipe", "train-set"] + [f"{s}:{d}" for s, d in NORMALIZATION_CONSTANTS]


def parse_normalization(choice: str) -> tuple[str, str | None]:
    """"recipe" | "train-set" | "SOURCE:DATASET" -> (kind, constants key); ValueError naming
    the nearest valid choice."""
    from clbudget.streams.catalog import NORMALIZATION_CONSTANTS, dataset_info, nearest
    choices = normalization_choices()
    text = str(choice).strip().lower()
    if text in ("recipe", "train-set"):
        return text, None
    source, sep, dataset = text.partition(":")
    try:
        key = (source, dataset_info(dataset).name) if sep else None
    except ValueError:
        key = None
    if key not in NORMALIZATION_CONSTANTS:
        raise ValueError(f"--normalization must be recipe, train-set or SOURCE:DATASET with "
                         f"published constants ({', '.join(choices[2:])}), got {choice!r} "
                         f"(nearest: {nearest(text, choices)})")
    return "constants", f"{key[0]}:{key[1]}"


def declared_dataset(dataset: str, choice: str = "recipe") -> str:
    """The data set a run declares itself to be: DATASET of `--normalization SOURCE:DATASET`
    (a CIFAR-10 ImageFolder tree run with pycil:cifar10 is CIFAR-10 to the recipes), else
    `dataset`."""
    kind, key = parse_normalization(choice)
    return key.split(":")[1] if kind == "constants" else dataset


def normalization_for(recipe: Recipe, dataset: str, train_x,
                      choice: str = "recipe") -> Normalization:
    """The normalisation a run of `recipe` on `dataset` applies under `choice`
    (`parse_normalization`): the constants its source publishes for `dataset`, the
    constants named by SOURCE:DATASET, or the mean/std of every training image `train_x`
    (N, C, H, W) uint8 of the stream: when asked (`train-set`, a recipe whose normalisation
    is train-set) or when the recipe's source publishes no constants for `dataset` (then
    `why` says so)."""
    from clbudget.streams.catalog import NORMALIZATION_CONSTANTS, normalization_constants
    from clbudget.train.loop import Pipeline
    kind, key = parse_normalization(choice)
    channels = int(train_x.shape[1])
    if kind == "constants":
        source, name = key.split(":")
        mean, std = NORMALIZATION_CONSTANTS[(source, name)]
        if len(mean) != channels:
            raise ValueError(f"--normalization {choice}: {len(mean)} channels of constants for "
                             f"{channels}-channel images; use --normalization train-set")
        return Normalization("constants", tuple(mean), tuple(std), source, name,
                             f"--normalization {key}")
    if kind == "recipe" and recipe.normalization != "train-set":
        constants = normalization_constants(recipe.normalization, dataset)
        if constants is not None and len(constants[0]) == channels:
            return Normalization("constants", tuple(constants[0]), tuple(constants[1]),
                                 recipe.normalization, _dataset_name(dataset),
                                 f"recipe {recipe.name}")
        why = (f"recipe {recipe.name} asks for {recipe.normalization}'s constants, which "
               f"{recipe.normalization} publishes for no {dataset!r} "
               f"({'' if constants is None else 'not for these channels; '}"
               f"declare the data set with --normalization SOURCE:DATASET)")
    else:
        why = "--normalization train-set" if kind == "train-set" else f"recipe {recipe.name}"
    stats = Pipeline.from_images(train_x)
    return Normalization("train-set", stats.mean, stats.std, why=why)


def _dataset_name(dataset: str) -> str:
    from clbudget.streams.catalog import dataset_info
    return dataset_info(dataset).name


def pipeline_for(recipe: Recipe, dataset: str, train_x, choice: str = "recipe"):
    """The input pipeline of a run: the recipe's augmentation and the normalisation
    `normalization_for` chooses."""
    from clbudget.train.loop import Pipeline
    n = normalization_for(recipe, dataset, train_x, choice)
    return Pipeline(n.mean, n.std, brightness=AUGMENTATIONS[recipe.augmentation])


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
    # what was applied (rows record it; --normalization may override the recipe's choice)
    na, nb = da.get("applied_normalization"), db.get("applied_normalization")
    if na is not None and nb is not None and na != nb:
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
