"""Fairness audit, part 1 of 5: the claim file, parsed and validated into a `Claim`.

The audit reads top to bottom as audit_claims (parsing) -> audit_memory (arithmetic) ->
audit_render (verdict wording) -> audit_pairing (which rows are compared, and what differs)
-> audit_commands (the runs that would fill the gaps) -> audit.py (the two audits).

Claim-file schema (unknown keys are errors naming the nearest valid key)::

    title: DER vs iCaRL on CIFAR-100 B0Inc10        # optional, free text
    source: Yan et al., CVPR 2021, Table 1           # optional, free text
    stream:
      dataset: cifar100        # catalog name: image shape and classes come from it
      init: 0                  # classes of the first task (0: same as inc)
      inc: 10                  # classes per later task
      num_classes: 100         # optional (default: the dataset's)
      image_shape: [3, 32, 32] # optional (needed for dataset 'imagefolder')
      class_order_seed: 1993   # optional (default 1993)
    convention: memo           # which ledger the verdict and the aligned budget use:
                               # strict (default) | memo; both are always reported
    metric: average_incremental  # what the accuracies are: last (default) | average_incremental
    seeds: [0, 1, 2]           # seeds of the aligned re-run (default [0, 1, 2])
    epochs: null               # optional: epochs of the aligned re-run (default: the paper's)
    budget: null               # optional aligned budget (e.g. 18.5MiB); default: per pair,
                               # the larger of the two memories
    tolerance: 0.01            # optional: memories within 1% count as aligned
    methods:                   # two or more, distinct names
      - name: der              # a method of `clbudget methods`
        accuracy: 65.2         # reported accuracy, in %
        backbone: resnet32     # optional (default: the dataset's default backbone)
        backbones: 10          # optional: backbones (DER), specialized blocks (MEMO) or
                               # per-task module sets (CLR, MIND); default: the stream's T
                               # for those methods, 1 for every other (must be 1)
        exemplars: 2000        # optional (default 0): stored exemplars
        memory: 18.5MiB        # optional: the memory the paper reports (any budget form);
                               # flagged when it differs from the cost model by > tolerance
        label: DER (paper)     # optional display name
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from clbudget.analysis import rows as R
from clbudget.streams.catalog import nearest

CLAIM_KEYS = ("title", "source", "stream", "convention", "metric", "seeds", "epochs", "budget",
              "tolerance", "methods")


STREAM_KEYS = ("dataset", "init", "inc", "num_classes", "image_shape", "class_order_seed")


METHOD_KEYS = ("name", "accuracy", "backbone", "backbones", "exemplars", "memory", "label")


METRICS = ("last", "average_incremental")


DEFAULT_SEEDS = (0, 1, 2)


class ClaimError(ValueError):
    """A claim file that does not follow the schema."""


@dataclass(frozen=True)
class ClaimMethod:
    name: str
    accuracy_pct: float
    backbone: str
    backbones: int
    exemplars: int
    label: str
    memory: str | None = None     # as reported by the paper


@dataclass(frozen=True)
class Claim:
    dataset: str
    init: int
    inc: int
    num_classes: int
    image_shape: tuple[int, int, int]
    methods: tuple[ClaimMethod, ...]
    class_order_seed: int = 1993
    convention: str = "strict"
    metric: str = "last"
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    epochs: int | None = None
    budget: str | None = None
    tolerance: float = 0.01
    title: str = ""
    source: str = ""

    @property
    def num_tasks(self) -> int:
        from clbudget.budget.costs import num_tasks_of
        return num_tasks_of(self.num_classes, self.init, self.inc)

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- claim parsing

def _check_keys(obj, valid, where: str) -> None:
    if not isinstance(obj, dict):
        raise ClaimError(f"{where}: expected a mapping of keys ({', '.join(valid)}), "
                         f"got {type(obj).__name__}")
    for key in obj:
        if key not in valid:
            raise ClaimError(f"{where}: unknown key {key!r}; nearest valid key: "
                             f"{nearest(str(key), valid)!r} (valid: {', '.join(valid)})")


def _int(value, where: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ClaimError(f"{where}: expected an integer >= {minimum}, got {value!r}")
    return value


def parse_claim(obj, where: str = "claim") -> Claim:
    """Validate a parsed claim (dict from YAML/JSON) into a Claim; ClaimError on any fault."""
    from clbudget.budget.accountant import CONVENTIONS
    from clbudget.budget.costs import COST_MODELS, num_tasks_of
    from clbudget.nets.backbones import BACKBONES, default_backbone
    from clbudget.streams.catalog import dataset_info

    _check_keys(obj, CLAIM_KEYS, where)
    for key in ("stream", "methods"):
        if key not in obj:
            raise ClaimError(f"{where}: missing required key {key!r}")
    stream = obj["stream"]
    _check_keys(stream, STREAM_KEYS, f"{where}: stream")
    for key in ("dataset", "inc"):
        if key not in stream:
            raise ClaimError(f"{where}: stream: missing required key {key!r}")
    try:
        info = dataset_info(str(stream["dataset"]))
    except ValueError as e:
        raise ClaimError(f"{where}: stream: {e}") from None
    shape = stream.get("image_shape", info.image_shape)
    if (not isinstance(shape, (list, tuple)) or len(shape) != 3
            or not all(isinstance(d, int) and d > 0 for d in shape)):
        raise ClaimError(f"{where}: stream.image_shape: expected [C, H, W], got {shape!r}")
    num_classes = _int(stream.get("num_classes", info.num_classes),
                       f"{where}: stream.num_classes", 1)
    if info.num_classes and num_classes > info.num_classes:
        raise ClaimError(f"{where}: stream.num_classes {num_classes} exceeds the "
                         f"{info.num_classes} classes of {info.name}")
    init = _int(stream.get("init", 0), f"{where}: stream.init")
    inc = _int(stream["inc"], f"{where}: stream.inc", 1)
    try:
        T = num_tasks_of(num_classes, init, inc)
    except ValueError as e:
        raise ClaimError(f"{where}: stream: {e}") from None
    convention = obj.get("convention", "strict")
    if convention not in CONVENTIONS:
        raise ClaimError(f"{where}: convention must be one of {', '.join(CONVENTIONS)}, got "
                         f"{convention!r} (nearest: {nearest(str(convention), CONVENTIONS)})")
    metric = obj.get("metric", "last")
    if metric not in METRICS:
        raise ClaimError(f"{where}: metric must be one of {', '.join(METRICS)}, got {metric!r} "
                         f"(nearest: {nearest(str(metric), METRICS)})")
    seeds = obj.get("seeds", list(DEFAULT_SEEDS))
    if not isinstance(seeds, list) or not seeds:
        raise ClaimError(f"{where}: seeds: expected a non-empty list of integers, got {seeds!r}")
    seeds = tuple(_int(s, f"{where}: seeds", -2**31) for s in seeds)
    epochs = obj.get("epochs")
    if epochs is not None:
        epochs = _int(epochs, f"{where}: epochs", 1)
    tolerance = obj.get("tolerance", 0.01)
    if (isinstance(tolerance, bool) or not isinstance(tolerance, (int, float))
            or not 0 <= tolerance < 1):
        raise ClaimError(f"{where}: tolerance: expected a fraction in [0, 1), got {tolerance!r}")
    budget = obj.get("budget")
    methods_obj = obj["methods"]
    if not isinstance(methods_obj, list) or len(methods_obj) < 2:
        raise ClaimError(f"{where}: methods: expected a list of two or more methods")
    methods = []
    for i, m in enumerate(methods_obj):
        w = f"{where}: methods[{i}]"
        _check_keys(m, METHOD_KEYS, w)
        for key in ("name", "accuracy"):
            if key not in m:
                raise ClaimError(f"{w}: missing required key {key!r}")
        name = str(m["name"]).lower()
        if name not in COST_MODELS:
            raise ClaimError(f"{w}: unknown method {m['name']!r}; nearest: "
                             f"{nearest(name, COST_MODELS)!r} (known: {', '.join(COST_MODELS)})")
        acc = m["accuracy"]
        if isinstance(acc, bool) or not isinstance(acc, (int, float)) or not 0 <= acc <= 100:
            raise ClaimError(f"{w}: accuracy: expected a percentage in [0, 100], got {acc!r}")
        backbone = m.get("backbone", default_backbone(tuple(shape)))
        if backbone not in BACKBONES:
            raise ClaimError(f"{w}: unknown backbone {backbone!r}; nearest: "
                             f"{nearest(str(backbone), BACKBONES)!r}")
        model = COST_MODELS[name]
        expanding = model.expanding or model.per_task
        backbones = _int(m.get("backbones", T if expanding else 1), f"{w}: backbones", 1)
        if not expanding and backbones != 1:
            raise ClaimError(f"{w}: {name} keeps one network, not {backbones}; only DER, MEMO "
                             f"(backbones/blocks) and CLR, MIND (per-task modules) expand")
        exemplars = _int(m.get("exemplars", 0), f"{w}: exemplars")
        if exemplars and not model.uses_exemplars:
            raise ClaimError(f"{w}: {name} stores no exemplars; remove 'exemplars: {exemplars}'")
        memory = m.get("memory")
        methods.append(ClaimMethod(name, float(acc), backbone, backbones, exemplars,
                                   str(m.get("label", R.display_name(name))),
                                   None if memory is None else str(memory)))
    if len({m.name for m in methods}) != len(methods):
        raise ClaimError(f"{where}: methods: each method once (compare two variants of one "
                         f"method with two claim files)")
    claim = Claim(info.name, init, inc, num_classes, tuple(int(d) for d in shape), tuple(methods),
                  _int(stream.get("class_order_seed", 1993), f"{where}: stream.class_order_seed"),
                  convention, metric, seeds, epochs, None if budget is None else str(budget),
                  float(tolerance), str(obj.get("title", "")), str(obj.get("source", "")))
    for m in methods:  # a reported memory or budget that does not parse fails here
        if m.memory is not None:
            claim_bytes(claim, m.memory, f"{where}: {m.name}.memory")
    if claim.budget is not None:
        claim_bytes(claim, claim.budget, f"{where}: budget")
    return claim


def load_claim(path) -> Claim:
    """Read a claim file: YAML (.yaml/.yml, yaml.safe_load) or JSON (.json)."""
    path = Path(path)
    if not path.is_file():
        raise ClaimError(f"claim file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise ClaimError(f"claim file {path.name!r}: expected a .yaml, .yml or .json file")
    text = path.read_text(encoding="utf-8")
    if suffix == ".json":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise ClaimError(f"{path.name}: not valid JSON: {e}") from None
    else:
        import yaml
        try:
            obj = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ClaimError(f"{path.name}: not valid YAML: {e}") from None
    return parse_claim(obj, path.name)


# ---------------------------------------------------------------- budget strings

def claim_bytes(claim: Claim, text: str, where: str) -> int:
    from clbudget.budget.accountant import parse_budget
    try:
        return parse_budget(text, image_shape=claim.image_shape,
                            model_bytes=lambda name: _model_bytes(claim, name))
    except ValueError as e:
        raise ClaimError(f"{where}: {e}") from None


def claim_budget_bytes(claim: Claim, text: str) -> int:
    """A budget string ("18.5MiB", "2000ex", "10xresnet32") in bytes on the claim's stream;
    a model equivalent is its feature-extractor parameter bytes, as `clbudget run` reads it."""
    return claim_bytes(claim, text, "budget")


def _model_bytes(claim: Claim, name: str) -> int:
    from clbudget.nets.backbones import backbone_stats
    return backbone_stats(name, claim.image_shape).params_bytes
