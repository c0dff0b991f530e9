"""Fairness audit: is "method A beats B" still true when both hold the same bytes?

Two inputs.
1. A **claim file** (YAML or JSON): the methods a paper compares, the accuracy it reports and
   what each really kept (backbone, number of backbones, exemplars).  The audit computes each
   method's bytes with the cost models (`budget/costs.py`) under both conventions, says
   whether the memories were aligned, and reads the comparison at the aligned budget (the
   larger of each pair's two memories, or `budget`) from a results store, or names the missing
   cells, the `clbudget sweep` command that produces them, and runs them with `--run`.
2. A **results store** alone: every pair of methods in it, at every budget both ran; pairs with
   no common budget are compared at their largest budgets, flagged as unequal memory.
Both flag compared runs whose seeds, epochs, class orders or backbones differ, and budgets
whose ledger totals differ by more than `tolerance` (default 1%).

Verdict (the bytes under the claim's / runs' convention; MiB = 2**20 B):
  DER +4.1 pp at unequal memory (18.5 MiB vs 7.6 MiB); at 18.5 MiB each: +0.9 pp,
  95% CI [-0.3, 2.1], not significant
The aligned difference is a paired t-test over seeds when both methods ran the same seeds,
else Welch's t-test (`stats.py`; the result's `comparison.test` says which); "significant"
means the 95% CI excludes 0.  With one seed the CI is undefined and said to be.

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

import importlib
import itertools
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from clbudget.analysis import rows as R
from clbudget.analysis.stats import compare_seeds, seed_stats
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
            _parse_bytes(claim, m.memory, f"{where}: {m.name}.memory")
    if claim.budget is not None:
        _parse_bytes(claim, claim.budget, f"{where}: budget")
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


def _parse_bytes(claim: Claim, text: str, where: str) -> int:
    from clbudget.budget.accountant import parse_budget
    try:
        return parse_budget(text, image_shape=claim.image_shape,
                            model_bytes=lambda name: _model_bytes(claim, name))
    except ValueError as e:
        raise ClaimError(f"{where}: {e}") from None


def claim_budget_bytes(claim: Claim, text: str) -> int:
    """A budget string ("18.5MiB", "2000ex", "10xresnet32") in bytes on the claim's stream;
    a model equivalent is its feature-extractor parameter bytes, as `clbudget run` reads it."""
    return _parse_bytes(claim, text, "budget")


def _model_bytes(claim: Claim, name: str) -> int:
    from clbudget.nets.backbones import backbone_stats
    return backbone_stats(name, claim.image_shape).params_bytes


def method_memory(claim: Claim, m: ClaimMethod) -> dict:
    """Bytes the method keeps, from its cost model, under both conventions.

    Expanding / per-task methods are costed with `backbones` tasks' worth of modules (the
    stream's T by default); the rest with one network."""
    import clbudget.methods  # noqa: F401  (installs cost_model's loader of methods from outside)
    from clbudget.budget.costs import StreamShape, cost_model
    model = cost_model(m.name)
    T = m.backbones if (model.expanding or model.per_task) else claim.num_tasks
    shape = StreamShape(T, claim.image_shape, claim.num_classes)
    out = {}
    for convention in ("strict", "memo"):
        ledger = model.cost(shape, m.backbone, m.exemplars, convention)
        out[convention] = ledger.total_bytes
        out[f"{convention}_by_kind"] = ledger.by_kind()
    if m.memory is not None:
        out["reported_bytes"] = _parse_bytes(claim, m.memory, f"{m.name}.memory")
    return out


# ---------------------------------------------------------------- verdicts

def _digits(n_bytes) -> int:
    """Decimals of a verdict's MiB: 1 (as '18.5 MiB'), more below 1 MiB ('0.75 MiB')."""
    return 1 if n_bytes >= R.MIB else 2 if n_bytes >= R.MIB / 10 else 3


def verdict_mib(n_bytes) -> str:
    return R.format_mib(n_bytes, _digits(n_bytes))


def mib_pair(a: int, b: int) -> tuple[str, str]:
    """Both in MiB with the fewest decimals (from 1, more below 1 MiB, at most 4) that keep
    different bytes different."""
    for digits in range(_digits(min(a, b)), 5):
        sa, sb = R.format_mib(a, digits), R.format_mib(b, digits)
        if a == b or sa != sb:
            return sa, sb
    return sa, sb


def aligned_text(comparison: dict | None, missing: str = "") -> str:
    """'+0.9 pp, 95% CI [-0.3, 2.1], not significant' (a - b), or why it is not there."""
    if comparison is None or not R.finite(comparison.get("diff")):
        return f"not measured (missing cells: {missing})" if missing else "not measured"
    d = comparison["diff"]
    if not comparison["testable"]:
        return (f"{d:+.1f} pp, 95% CI undefined ({comparison['n_a']} vs {comparison['n_b']} "
                f"seeds), significance not testable")
    sig = "significant" if comparison["significant"] else "not significant"
    return f"{d:+.1f} pp, 95% CI [{comparison['ci_low']:.1f}, {comparison['ci_high']:.1f}], {sig}"


def verdict(a: str, b: str, *, aligned_bytes: int, comparison: dict | None,
            headline_pp: float | None = None, memory_a: int | None = None,
            memory_b: int | None = None, tolerance: float = 0.01, missing: str = "") -> str:
    """The one-line verdict.  With a headline (a's reported/observed lead at its own memory):
    'DER +4.1 pp at unequal memory (18.5 MiB vs 7.6 MiB); at 18.5 MiB each: <aligned>';
    without: 'DER vs iCaRL at 18.5 MiB each: <aligned>'."""
    each = f"at {verdict_mib(aligned_bytes)} each"
    tail = aligned_text(comparison, missing)
    if headline_pp is None:
        return f"{a} vs {b} {each}: {tail}"
    if memory_a is not None and memory_b is not None and not budgets_equal(memory_a, memory_b,
                                                                          tolerance):
        ma, mb = mib_pair(memory_a, memory_b)
        return f"{a} {headline_pp:+.1f} pp at unequal memory ({ma} vs {mb}); {each}: {tail}"
    if memory_a is None:
        return f"{a} {headline_pp:+.1f} pp; {each}: {tail}"
    return (f"{a} {headline_pp:+.1f} pp at equal memory ({verdict_mib(memory_a)} each); "
            f"{each}: {tail}")


def budgets_equal(a, b, tolerance: float = 0.01) -> bool:
    return a == b or abs(a - b) <= tolerance * max(abs(a), abs(b))


# ---------------------------------------------------------------- flags between runs

def _sort_key(v):
    return (0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0, str(v))


def _distinct(rows, get) -> list:
    seen = {}
    for r in rows:
        v = get(r)
        seen.setdefault(json.dumps(v, sort_keys=True, default=str), v)
    return sorted(seen.values(), key=_sort_key)


def _show(values) -> str:
    return ", ".join("default" if v is None else
                     (json.dumps(v, default=str) if isinstance(v, (dict, list)) else str(v))
                     for v in values)


# (flag kind, what is compared, how to read it from a row)
FLAG_CHECKS = (
    ("seeds", "seeds", lambda r: r.get("seed", R.spec_of(r).get("seed"))),
    ("epochs", "epochs", lambda r: R.spec_of(r).get("epochs")),
    ("class_order", "class order seeds", lambda r: R.spec_of(r).get("class_order_seed")),
    ("backbone", "backbones", lambda r: (r.get("allocation") or {}).get("backbone")),
    ("stream", "streams", lambda r: {k: R.spec_of(r).get(k) for k in R.STREAM_FIELDS
                                     if k != "class_order_seed"}),
    ("convention", "conventions", lambda r: R.spec_of(r).get("convention", "strict")),
)


def recipe_flags(rows_a, rows_b, name_a: str, name_b: str) -> list[dict]:
    """A "recipe" flag when the two methods' runs were trained with recipes that differ
    (train/recipes.py `training_differs`: precision, augmentation, normalisation or a
    shared phase's optimisation)."""
    from clbudget.train.recipes import training_differs
    ra = {R.recipe_label(r): R.recipe_of(r) for r in rows_a if R.recipe_of(r)}
    rb = {R.recipe_label(r): R.recipe_of(r) for r in rows_b if R.recipe_of(r)}
    if any(training_differs(a, b) for a in ra.values() for b in rb.values()):
        return [{"kind": "recipe", "message":
                 f"training recipes differ: {name_a} trained with {_show(sorted(ra))}; "
                 f"{name_b} with {_show(sorted(rb))} (equal bytes, unequal training; "
                 f"impose one with --recipe NAME)"}]
    return []


def run_flags(rows_a, rows_b, name_a: str, name_b: str, tolerance: float = 0.01) -> list[dict]:
    """What differs between two methods' compared runs: seeds, epochs, class orders,
    backbones, stream, convention, and memory held (ledger totals beyond `tolerance`).
    Each flag is {"kind", "message"}."""
    flags = []
    for kind, what, get in FLAG_CHECKS:
        va, vb = _distinct(rows_a, get), _distinct(rows_b, get)
        if va != vb:
            msg = f"{what} differ: {name_a} ran {_show(va)}; {name_b} ran {_show(vb)}"
            if kind == "backbone":
                ea = _distinct(rows_a, lambda r: (r.get("allocation") or {}).get("expansion"))
                eb = _distinct(rows_b, lambda r: (r.get("allocation") or {}).get("expansion"))
                msg += f" (expansion x{_show(ea)} vs x{_show(eb)})"
            flags.append({"kind": kind, "message": msg})
    oa = _distinct(rows_a, lambda r: r.get("class_order"))
    ob = _distinct(rows_b, lambda r: r.get("class_order"))
    if oa != ob and not any(f["kind"] == "class_order" for f in flags):
        flags.append({"kind": "class_order", "message":
                      f"class orders differ between {name_a} and {name_b} runs although their "
                      f"class order seeds agree"})
    flags += recipe_flags(rows_a, rows_b, name_a, name_b)
    ha = [R.held_bytes(r) for r in rows_a if R.held_bytes(r) is not None]
    hb = [R.held_bytes(r) for r in rows_b if R.held_bytes(r) is not None]
    if ha and hb:
        ma, mb = round(sum(ha) / len(ha)), round(sum(hb) / len(hb))
        if not budgets_equal(ma, mb, tolerance):
            sa, sb = mib_pair(ma, mb)
            flags.append({"kind": "memory", "message":
                          f"ledger totals differ by more than {tolerance:.0%}: {name_a} holds "
                          f"{sa} ({ma:,} B), {name_b} holds {sb} ({mb:,} B)"})
    return flags


def _per_seed_acc(rows, metric: str) -> dict:
    by_seed: dict = {}
    for r in rows:
        v = R.accuracy_pct(r, metric)
        if v is not None:
            by_seed.setdefault(r.get("seed"), []).append(v)
    return {s: sum(v) / len(v) for s, v in by_seed.items()}


def _comparison(rows_a, rows_b, metric: str) -> dict | None:
    a, b = _per_seed_acc(rows_a, metric), _per_seed_acc(rows_b, metric)
    if not a or not b:
        return None
    out = compare_seeds(a, b).to_dict()
    out.update(metric=metric, unit="pp", seeds_a=sorted(a, key=str), seeds_b=sorted(b, key=str),
               mean_a=seed_stats(a.values()).mean, mean_b=seed_stats(b.values()).mean)
    return out


def _cell_memory(rows) -> dict:
    out = {}
    for convention in ("strict", "memo"):
        vals = [R.ledger_bytes(r, convention) for r in rows if R.ledger_bytes(r, convention)]
        out[convention] = round(sum(vals) / len(vals)) if vals else None
    return out


# ---------------------------------------------------------------- claim audit

def claim_rows(claim: Claim, rows, method: str, budget_bytes: int) -> list[dict]:
    """Finished rows of `method` on the claim's stream and convention at `budget_bytes`
    (within the claim's tolerance; the closest budget if several)."""
    picked = []
    for r in R.finished(rows):
        s = R.spec_of(r)
        if (r.get("method") != method or s.get("dataset") != claim.dataset
                or s.get("init") != claim.init or s.get("inc") != claim.inc
                or (s.get("num_classes") or claim.num_classes) != claim.num_classes
                or s.get("convention", "strict") != claim.convention
                or r.get("budget_bytes") is None
                or not budgets_equal(r["budget_bytes"], budget_bytes, claim.tolerance)):
            continue
        picked.append(r)
    if not picked:
        return []
    best = min(abs(r["budget_bytes"] - budget_bytes) for r in picked)
    return [r for r in picked if abs(r["budget_bytes"] - budget_bytes) == best]


def audit_claim(claim: Claim, rows=(), *, budget_bytes: int | None = None,
                store: str | None = None) -> dict:
    """Audit a claim against result rows (possibly none).  Pure: returns the audit as data.

    Pairs are ordered by reported accuracy (higher first, ties in file order), so the
    headline is the claimed lead.  `store` only fills the suggested sweep command."""
    if budget_bytes is None and claim.budget is not None:
        budget_bytes = _parse_bytes(claim, claim.budget, "budget")
    memory = {m.name: method_memory(claim, m) for m in claim.methods}
    conv = claim.convention
    order = sorted(claim.methods, key=lambda m: -m.accuracy_pct)
    pairs, missing_cells = [], {}
    for a, b in itertools.combinations(order, 2):
        ma, mb = memory[a.name][conv], memory[b.name][conv]
        aligned = budget_bytes or max(ma, mb)
        rows_a, rows_b = (claim_rows(claim, rows, m.name, aligned) for m in (a, b))
        missing = []
        for m, rs in ((a, rows_a), (b, rows_b)):
            have = {r.get("seed") for r in rs}
            need = [s for s in claim.seeds if s not in have]
            if need:
                missing.append({"method": m.name, "backbone": m.backbone, "budget_bytes": aligned,
                                "seeds": need})
                cell = missing_cells.setdefault((m.name, m.backbone, aligned), set())
                cell.update(need)
        comparison = _comparison(rows_a, rows_b, claim.metric)
        flags = run_flags(rows_a, rows_b, a.label, b.label, claim.tolerance)
        for m, rs in ((a, rows_a), (b, rows_b)):
            used = sorted({(r.get("allocation") or {}).get("backbone") for r in rs}, key=str)
            if rs and used != [m.backbone]:
                flags.append({"kind": "backbone", "message":
                              f"{m.label}: the claim uses {m.backbone}, the stored runs "
                              f"{', '.join(map(str, used))}"})
            orders = _distinct(rs, lambda r: R.spec_of(r).get("class_order_seed"))
            if rs and orders != [claim.class_order_seed]:
                flags.append({"kind": "class_order", "message":
                              f"{m.label}: the claim's class order seed is "
                              f"{claim.class_order_seed}, the stored runs used {_show(orders)}"})
            epochs = _distinct(rs, lambda r: R.spec_of(r).get("epochs"))
            if rs and claim.epochs is not None and epochs != [claim.epochs]:
                flags.append({"kind": "epochs", "message":
                              f"{m.label}: the claim asks for {claim.epochs} epochs, the stored "
                              f"runs used {_show(epochs)}"})
        for m in (a, b):
            rep = memory[m.name].get("reported_bytes")
            if rep is not None and not budgets_equal(rep, memory[m.name][conv], claim.tolerance):
                flags.append({"kind": "reported_memory", "message":
                              f"{m.label}: the paper reports {R.format_mib(rep, 2)}, the cost "
                              f"model gives {R.format_mib(memory[m.name][conv], 2)} "
                              f"({conv} convention)"})
        miss_text = "; ".join(f"{_label(claim, c['method'])} seeds "
                              f"{','.join(map(str, c['seeds']))}" for c in missing)
        pairs.append({
            "a": a.name, "b": b.name, "label_a": a.label, "label_b": b.label,
            "reported_pp": {"a": a.accuracy_pct, "b": b.accuracy_pct,
                            "diff": a.accuracy_pct - b.accuracy_pct},
            "memory_bytes": {"a": {k: memory[a.name][k] for k in ("strict", "memo")},
                             "b": {k: memory[b.name][k] for k in ("strict", "memo")}},
            "convention": conv, "aligned": budgets_equal(ma, mb, claim.tolerance),
            "aligned_budget_bytes": aligned, "comparison": comparison,
            "runs": {"a": [r.get("run_key") for r in rows_a],
                     "b": [r.get("run_key") for r in rows_b]},
            "missing": missing, "flags": flags,
            "verdict": verdict(a.label, b.label, aligned_bytes=aligned, comparison=comparison,
                               headline_pp=a.accuracy_pct - b.accuracy_pct, memory_a=ma,
                               memory_b=mb, tolerance=claim.tolerance, missing=miss_text),
        })
    cells = [{"method": m, "backbone": bb, "budget_bytes": bud, "seeds": sorted(seeds)}
             for (m, bb, bud), seeds in sorted(missing_cells.items())]
    return {"mode": "claim", "claim": claim.to_dict(), "convention": conv, "metric": claim.metric,
            "methods": [{"name": m.name, "label": m.label, "reported_accuracy_pct": m.accuracy_pct,
                         "backbone": m.backbone, "backbones": m.backbones,
                         "exemplars": m.exemplars, "memory_bytes": memory[m.name]}
                        for m in claim.methods],
            "pairs": pairs, "missing_cells": cells,
            "sweep_commands": claim_sweep_commands(claim, cells, store)}


def _label(claim: Claim, name: str) -> str:
    return next((m.label for m in claim.methods if m.name == name), name)


def claim_sweep_commands(claim: Claim, cells, store: str | None = None) -> list[str]:
    """`clbudget sweep` commands that would produce the missing cells (one per backbone/budget)."""
    groups: dict[tuple, dict] = {}
    for c in cells:
        g = groups.setdefault((c["backbone"], c["budget_bytes"]), {"methods": [], "seeds": set()})
        g["methods"].append(c["method"])
        g["seeds"].update(c["seeds"])
    out = []
    for (backbone, budget), g in sorted(groups.items()):
        cmd = (f"clbudget sweep --methods {','.join(g['methods'])} --budgets {budget} "
               f"--seeds {','.join(map(str, sorted(g['seeds'])))} --dataset {claim.dataset} "
               f"--init {claim.init} --inc {claim.inc} --backbone {backbone} "
               f"--convention {claim.convention}")
        if claim.num_classes != _dataset_classes(claim.dataset):
            cmd += f" --num-classes {claim.num_classes}"
        if claim.class_order_seed != 1993:
            cmd += f" --class-order-seed {claim.class_order_seed}"
        if claim.epochs is not None:
            cmd += f" --epochs {claim.epochs}"
        out.append(cmd + f" --out {store or 'DIR'}")
    return out


def _dataset_classes(name: str) -> int:
    from clbudget.streams.catalog import dataset_info
    return dataset_info(name).num_classes


def claim_specs(claim: Claim, cells, *, device: str = "auto", data_root: str | None = None,
                epochs: int | None = None) -> list:
    """RunSpecs of the missing cells: the claim's stream and backbone, the budget as a plain
    byte count (as `clbudget sweep` writes range budgets, so the run keys match)."""
    from clbudget.experiment.run import RunSpec
    return [RunSpec(method=c["method"], dataset=claim.dataset, budget=str(c["budget_bytes"]),
                    init=claim.init, inc=claim.inc, data_root=data_root,
                    epochs=epochs if epochs is not None else claim.epochs, seed=seed,
                    class_order_seed=claim.class_order_seed, device=device,
                    num_classes=None if claim.num_classes == _dataset_classes(claim.dataset)
                    else claim.num_classes,
                    backbone=c["backbone"], convention=claim.convention)
            for c in cells for seed in c["seeds"]]


# ---------------------------------------------------------------- store audit

def _protocol(row) -> str:
    s = R.spec_of(row)
    return json.dumps({k: s.get(k) for k in ("dataset", "init", "inc", "num_classes")},
                      sort_keys=True, default=str)


def audit_rows(rows, *, metric: str = "last", tolerance: float = 0.01,
               store: str | None = None) -> dict:
    """Audit every pair of methods in a store.  Pure: returns the audit as data.

    Within each protocol (dataset, init, inc, classes): for each pair, a comparison at every
    budget both ran (budgets within `tolerance` match); a pair with no common budget is
    compared at each method's largest budget (headline, unequal memory) and the aligned cells
    at the larger one are listed as missing."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)} "
                         f"(nearest: {nearest(metric, METRICS)})")
    done = [r for r in R.finished(rows) if r.get("budgeted", True)
            and r.get("budget_bytes") is not None]
    series: dict[tuple, dict] = {}   # (protocol, method, variant) -> {budget: [rows]}
    for r in done:
        key = (_protocol(r), r.get("method"), R.variant_key(r))
        series.setdefault(key, {}).setdefault(r["budget_bytes"], []).append(r)
    variants: dict[tuple, int] = {}
    for p, m, _ in series:
        variants[(p, m)] = variants.get((p, m), 0) + 1

    def label(key):
        p, m, _ = key
        any_row = next(iter(series[key].values()))[0]
        return R.display_name(m) + (R.variant_suffix(any_row) if variants[(p, m)] > 1 else "")

    order = list(R.DISPLAY_NAMES)
    keys = sorted(series, key=lambda k: (k[0], order.index(k[1]) if k[1] in order else 99,
                                         k[1], k[2]))
    pairs, missing_cells = [], []
    for ka, kb in itertools.combinations(keys, 2):
        if ka[0] != kb[0]:
            continue
        sa, sb = series[ka], series[kb]
        common = [(ba, bb) for ba in sorted(sa) for bb in sorted(sb)
                  if budgets_equal(ba, bb, tolerance)]
        la, lb = label(ka), label(kb)
        if common:
            for ba, bb in common:
                comp = _comparison(sa[ba], sb[bb], metric)
                first, second, ra, rb = la, lb, sa[ba], sb[bb]
                if comp and R.finite(comp["diff"]) and comp["diff"] < 0:  # leader first
                    first, second, ra, rb = lb, la, sb[bb], sa[ba]
                    comp = _comparison(ra, rb, metric)
                pairs.append(_store_pair(first, second, ra, rb, max(ba, bb), comp, tolerance,
                                         headline=None))
            continue
        # no common budget: each at its largest budget, the leader first
        ends = [{"label": lab, "method": k[1], "budget": max(sr), "rows": sr[max(sr)]}
                for lab, k, sr in ((la, ka, sa), (lb, kb, sb))]
        accs = [_per_seed_acc(e["rows"], metric) for e in ends]
        if not all(accs):
            continue
        means = [sum(acc.values()) / len(acc) for acc in accs]
        if means[1] > means[0]:
            ends.reverse()
            means.reverse()
        first, second = ends
        aligned = max(first["budget"], second["budget"])
        seeds = sorted({r.get("seed") for e in ends for r in e["rows"]}, key=_sort_key)
        miss = [{"method": e["method"], "label": e["label"], "budget_bytes": aligned,
                 "seeds": seeds, "spec": R.spec_of(e["rows"][0])}
                for e in ends if e["budget"] != aligned]
        for c in miss:  # one cell per (method configuration, budget), seeds merged
            ident = lambda cell: (cell["method"], cell["budget_bytes"],
                                  R.variant_key({"spec": cell["spec"]}),
                                  R.setting_key({"spec": cell["spec"]}))
            same = next((m for m in missing_cells if ident(m) == ident(c)), None)
            if same is None:
                missing_cells.append(dict(c))
            else:
                same["seeds"] = sorted(set(same["seeds"]) | set(c["seeds"]), key=_sort_key)
        miss_text = "; ".join(f"{c['label']} at {verdict_mib(aligned)} seeds "
                              f"{','.join(map(str, c['seeds']))}" for c in miss)
        pair = _store_pair(first["label"], second["label"], first["rows"], second["rows"],
                           aligned, None, tolerance, headline=means[0] - means[1],
                           missing_text=miss_text,
                           memory=(_held(first["rows"]), _held(second["rows"])))
        pair["missing"] = [{k: v for k, v in c.items() if k != "spec"} for c in miss]
        pairs.append(pair)
    return {"mode": "store", "metric": metric, "tolerance": tolerance, "pairs": pairs,
            "missing_cells": [{k: v for k, v in c.items() if k != "spec"} for c in missing_cells],
            "sweep_commands": store_sweep_commands(missing_cells, store),
            "_missing_specs": missing_cells}


def _held(rows) -> int:
    vals = [R.held_bytes(r) for r in rows if R.held_bytes(r) is not None]
    return round(sum(vals) / len(vals)) if vals else 0


def _store_pair(a, b, rows_a, rows_b, aligned, comp, tolerance, *, headline,
                missing_text="", memory=None) -> dict:
    ma, mb = memory if memory else (None, None)
    return {
        "a": rows_a[0].get("method"), "b": rows_b[0].get("method"), "label_a": a, "label_b": b,
        "budget_bytes": {"a": rows_a[0].get("budget_bytes"), "b": rows_b[0].get("budget_bytes")},
        "memory_bytes": {"a": _cell_memory(rows_a), "b": _cell_memory(rows_b)},
        "aligned": headline is None, "aligned_budget_bytes": aligned, "comparison": comp,
        "observed_lead_pp": headline,
        "runs": {"a": [r.get("run_key") for r in rows_a], "b": [r.get("run_key") for r in rows_b]},
        "missing": [], "flags": run_flags(rows_a, rows_b, a, b, tolerance),
        "verdict": verdict(a, b, aligned_bytes=aligned, comparison=comp, headline_pp=headline,
                           memory_a=ma, memory_b=mb, tolerance=tolerance, missing=missing_text),
    }


def store_sweep_commands(missing_cells, store: str | None = None) -> list[str]:
    out = []
    for c in missing_cells:
        s = c["spec"]
        cmd = (f"clbudget sweep --methods {c['method']} --budgets {c['budget_bytes']} "
               f"--seeds {','.join(map(str, c['seeds']))} --dataset {s.get('dataset')} "
               f"--init {s.get('init')} --inc {s.get('inc')}")
        for key in ("backbone", "epochs", "batch_size", "lr", "num_classes", "max_per_class",
                    "max_test_per_class", "data_root"):
            if s.get(key) is not None:
                cmd += f" --{key.replace('_', '-')} {s[key]}"
        for key, value in sorted((s.get("method_options") or {}).items()):
            cmd += f" --option {key}={json.dumps(value)}"
        if s.get("class_order_seed", 1993) != 1993:
            cmd += f" --class-order-seed {s['class_order_seed']}"
        if s.get("convention", "strict") != "strict":
            cmd += f" --convention {s['convention']}"
        out.append(cmd + f" --out {store or 'DIR'}")
    return out


def store_specs(audit: dict) -> list:
    """RunSpecs of a store audit's missing cells: the method's own spec at the aligned budget."""
    from clbudget.experiment.run import RunSpec
    specs = []
    for c in audit.get("_missing_specs", []):
        base = dict(c["spec"])
        base["method_options"] = tuple(sorted((base.get("method_options") or {}).items()))
        base["glyphs_options"] = tuple(sorted((base.get("glyphs_options") or {}).items()))
        for seed in c["seeds"]:
            specs.append(RunSpec(**{**base, "budget": str(c["budget_bytes"]), "seed": seed}))
    return specs


# ---------------------------------------------------------------- running missing cells

def run_missing_cells(specs, store, *, progress: bool = False) -> dict:
    """Ask the experiment layer to run the missing cells (clbudget.experiment.sweep.run_cells);
    the audit itself never trains.  Returns run_cells' summary."""
    if not specs:
        return {}
    try:
        sweep = importlib.import_module("clbudget.experiment.sweep")
        run_cells = sweep.run_cells
    except (ImportError, AttributeError):
        raise ValueError("running missing cells needs clbudget.experiment.sweep.run_cells, "
                         "which this installation lacks; run the printed `clbudget sweep` "
                         "command instead") from None
    return run_cells(list(specs), store, progress=progress)


def run_audit(store=None, claim: Claim | None = None, *, run: bool = False,
              budget_bytes: int | None = None, metric: str = "last", tolerance: float = 0.01,
              device: str = "auto", data_root: str | None = None, epochs: int | None = None,
              progress: bool = False) -> dict:
    """Audit a claim and/or a store (a ResultStore); with `run`, have the experiment layer run
    the missing cells into the store first, then audit again."""
    location = None
    if store is not None:  # what `clbudget sweep --out` takes for this store
        location = str(store.path.parent if store.path.name == "results.sqlite" else store.path)

    def once(rows):
        if claim is not None:
            return audit_claim(claim, rows, budget_bytes=budget_bytes, store=location)
        return audit_rows(rows, metric=metric, tolerance=tolerance, store=location)

    rows = store.rows() if store is not None else []
    result = once(rows)
    ran = {}
    if run and result["missing_cells"]:
        if store is None:
            raise ValueError("--run needs --store DIR: the results store to write the runs to")
        specs = (claim_specs(claim, result["missing_cells"], device=device, data_root=data_root,
                             epochs=epochs) if claim is not None else store_specs(result))
        ran = run_missing_cells(specs, store, progress=progress) or {}
        result = once(store.rows())
        result["ran"] = ran if isinstance(ran, dict) else {"result": str(ran)}
    result.pop("_missing_specs", None)
    return result


# ---------------------------------------------------------------- text

def render_audit(result: dict) -> str:
    """The audit as text: per pair, memory under both conventions, verdict, flags."""
    lines = []
    if result["mode"] == "claim":
        c = result["claim"]
        head = c.get("title") or "claim"
        lines.append(f"Fairness audit of {head}" + (f" ({c['source']})" if c.get("source") else ""))
        lines.append(f"stream {c['dataset']} B{c['init']}Inc{c['inc']}, {c['num_classes']} "
                     f"classes; accuracy = {result['metric']}; verdict memory = "
                     f"{result['convention']} convention")
        for m in result["methods"]:
            mem = m["memory_bytes"]
            lines.append(f"  {m['label']:<12} reported {m['reported_accuracy_pct']:.1f}%  "
                         f"{m['backbones']} x {m['backbone']} + {m['exemplars']:,} exemplars: "
                         f"strict {mem['strict']:,} B ({R.format_mib(mem['strict'], 2)}), "
                         f"memo {mem['memo']:,} B ({R.format_mib(mem['memo'], 2)})")
    else:
        lines.append(f"Fairness audit of the store: {len(result['pairs'])} comparisons "
                     f"(accuracy = {result['metric']})")
    for p in result["pairs"]:
        lines.append("")
        ma, mb = p["memory_bytes"]["a"], p["memory_bytes"]["b"]
        fmt = lambda v: "n/a" if v is None else f"{v:,} B"
        lines.append(f"{p['label_a']} vs {p['label_b']}: memory strict {fmt(ma['strict'])} vs "
                     f"{fmt(mb['strict'])}; memo {fmt(ma['memo'])} vs {fmt(mb['memo'])}; "
                     f"{'budgets aligned' if p['aligned'] else 'budgets NOT aligned'}")
        lines.append(f"  {p['verdict']}")
        comp = p.get("comparison")
        if comp:
            lines.append(f"  test: {comp['test']} on {comp['n_a']} vs {comp['n_b']} seeds"
                         + (f", p = {comp['p_value']:.3g}" if R.finite(comp.get("p_value"))
                            else ""))
        for f in p["flags"]:
            lines.append(f"  ! {f['message']}")
    if result.get("sweep_commands"):
        lines += ["", "Missing cells; to produce them:"]
        lines += [f"  {cmd}" for cmd in result["sweep_commands"]]
        lines.append("  (or re-run this audit with --run --store DIR)")
    return "\n".join(lines)
