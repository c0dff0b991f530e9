"""Scaled-down measurements of atlas claims: a published comparison re-run small, at the
claim's memory ratio and at equal bytes, and its measured verdict.

A *setting* (one YAML file in the atlas folder's `scaled/` subfolder, schema in docs/atlas.md)
names the claims it measures and one small stream, backbone, seeds and training that every
method of those claims is run with.  For each claim, its headline pair (winner, runner-up):

- exemplar counts: every count the source states is multiplied by one factor `s`, solved so
  that the winner's bytes / the runner-up's on the setting's stream and backbone equal the
  claim's own ratio (bytes are linear in the exemplar count: a + b * E for each method); a
  count that is not zero is raised to the allocator's floor (one exemplar a class); an
  expanding method keeps one backbone per task of the setting's stream when the source's
  method kept one per task of its own;
- "reported" setting: each method at its own bytes; "aligned" setting: both at the larger
  (the `clbudget audit` pairing);
- cells: (method, budget) runs over the setting's seeds; a method's budgets within the
  audit's tolerance (1%) of each other, across all claims of a setting, are one cell, run at
  the largest of them;
- verdict, from the store's rows of the setting (the stream and the training flags both
  match): the aligned comparison of the audit (`audit.audit_claim`: per-seed accuracies,
  paired t-test over common seeds, else Welch's; stats.py), read as "holds", "reversed" or
  "not significant at equal bytes", and the same comparison at the reported memories.

Pure: the store's rows come in, data goes out (atlas_render.py writes it).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from clbudget.analysis import rows as R
from clbudget.analysis.atlas_claims import AtlasError, _int, _mapping, _text, _Where

TOLERANCE = 0.01        # budgets within 1% are one cell (the audit's default tolerance)
SUBFOLDER = "scaled"
SETTING_KEYS = ("name", "claims", "dataset", "init", "inc", "backbone", "seeds", "data_root",
                "sweep", "note")
OPTIONAL_KEYS = ("note", "sweep")
# sweep flags a setting fixes: name -> the RunSpec field its rows are matched on
SWEEP_KEYS = ("epochs", "batch_size", "lr", "recipe", "recipe_options", "normalization",
              "class_order", "max_per_class", "max_test_per_class", "device")
CLASS_ORDER = "fixed"     # a run's default (`clbudget sweep`'s own is per-seed): always named
UNMATCHED = ("device",)   # how, not what: a GPU rerun of the cells counts


@dataclass(frozen=True)
class Setting:
    name: str
    claims: tuple[str, ...]
    dataset: str
    init: int
    inc: int
    backbone: str
    seeds: tuple[int, ...]
    data_root: str               # the placeholder the commands carry, e.g. CIFAR10_DIR
    sweep: tuple[tuple[str, object], ...] = ()
    note: str = ""
    file: str = ""

    @property
    def flags(self) -> dict:
        return dict(self.sweep)

    @property
    def class_order(self) -> str:
        return self.flags.get("class_order", CLASS_ORDER)

    def stream(self):
        """(num_classes, image_shape, num_tasks) of the setting's stream."""
        from clbudget.budget.costs import num_tasks_of
        from clbudget.streams.catalog import dataset_info
        info = dataset_info(self.dataset)
        return info.num_classes, tuple(info.image_shape), num_tasks_of(info.num_classes,
                                                                      self.init, self.inc)

    def label(self) -> str:
        """'scaled-down: cifar10 B0 Inc2 (5 tasks), resnet32, seeds 0,1,2, epochs 3, ...'."""
        _, _, tasks = self.stream()
        flags = ", ".join(f"{k.replace('_', '-')} {_flag_text(v)}" for k, v in self.sweep
                          if k not in UNMATCHED)
        return (f"scaled-down: {self.dataset} B{self.init} Inc{self.inc} ({tasks} tasks), "
                f"{self.backbone}, seeds {','.join(map(str, self.seeds))}"
                + (f", {flags}" if flags else ""))


def _flag_text(v) -> str:
    if isinstance(v, dict):
        return " ".join(f"{p}.{f}={x}" for p, d in v.items() for f, x in d.items())
    return str(v)


# ---------------------------------------------------------------- parsing

def parse_setting(obj, file: str) -> Setting:
    """Validate a parsed setting file; AtlasError naming the file and the field."""
    from clbudget.nets.backbones import BACKBONES
    from clbudget.streams.catalog import dataset_info, nearest, DATASETS
    w = _Where(file)
    _mapping(obj, SETTING_KEYS, [k for k in SETTING_KEYS if k not in OPTIONAL_KEYS], w)
    name = _text(obj["name"], w / "name")
    if name != Path(file).stem:
        (w / "name").fail(f"{name!r} differs from the file stem {Path(file).stem!r}")
    claims = obj["claims"]
    if not isinstance(claims, list) or not claims:
        (w / "claims").fail(f"expected a list of claim ids, got {claims!r}")
    ids = tuple(_text(c, w / "claims" / i) for i, c in enumerate(claims))
    dataset = _text(obj["dataset"], w / "dataset")
    if dataset not in DATASETS:
        (w / "dataset").fail(f"unknown dataset {dataset!r}; nearest: {nearest(dataset, DATASETS)!r}")
    backbone = _text(obj["backbone"], w / "backbone")
    if backbone not in BACKBONES:
        (w / "backbone").fail(f"unknown backbone {backbone!r}; nearest: "
                              f"{nearest(backbone, list(BACKBONES))!r}")
    init, inc = _int(obj["init"], w / "init"), _int(obj["inc"], w / "inc", 1)
    from clbudget.budget.costs import num_tasks_of
    if not dataset_info(dataset).num_classes:
        (w / "dataset").fail(f"{dataset!r} has no fixed class count; name the data set "
                             f"(e.g. 'cifar10')")
    try:
        num_tasks_of(dataset_info(dataset).num_classes, init, inc)
    except ValueError as e:
        (w / "inc").fail(str(e))
    seeds = obj["seeds"]
    if not isinstance(seeds, list) or not seeds:
        (w / "seeds").fail(f"expected a list of integer seeds such as [0, 1, 2], got {seeds!r}")
    seeds = tuple(_int(s, w / "seeds" / i) for i, s in enumerate(seeds))
    sweep = obj.get("sweep") or {}
    _mapping(sweep, SWEEP_KEYS, (), w / "sweep")
    if "recipe_options" in sweep:
        ro = sweep["recipe_options"]
        if not (isinstance(ro, dict) and all(isinstance(v, dict) for v in ro.values())):
            (w / "sweep" / "recipe_options").fail(
                f"expected {{PHASE: {{FIELD: VALUE}}}}, e.g. {{later: {{epochs: 5}}}}, got {ro!r}")
    note = _text(obj["note"], w / "note", one_line=False) if obj.get("note") else ""
    return Setting(name, ids, dataset, init, inc, backbone, seeds,
                   _text(obj["data_root"], w / "data_root"),
                   tuple((k, sweep[k]) for k in SWEEP_KEYS if k in sweep), note, file)


def load_settings(folder, claims) -> list[Setting]:
    """The settings of `folder`/scaled/*.yaml (none if there is no such folder), each claim id
    checked against `claims` (the atlas' claims) and measured by one setting at most."""
    import yaml
    sub = Path(folder) / SUBFOLDER
    if not sub.is_dir():
        return []
    by_id = {c.id: c for c in claims}
    out, seen = [], {}
    for path in sorted(p for p in sub.iterdir() if p.suffix in (".yaml", ".yml")):
        file = f"{SUBFOLDER}/{path.name}"
        try:
            obj = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise AtlasError(f"{file}: not valid YAML: {' '.join(str(e).split())}") from None
        s = parse_setting(obj, file)
        for i, cid in enumerate(s.claims):
            w = _Where(file) / "claims" / i
            if cid not in by_id:
                from clbudget.streams.catalog import nearest
                w.fail(f"no claim {cid!r} in the atlas; nearest: {nearest(cid, list(by_id))!r}")
            if cid in seen:
                w.fail(f"{cid!r} is already measured by {seen[cid]}")
            seen[cid] = file
            reason = scalable_reason(by_id[cid])
            if reason:
                w.fail(f"{cid!r} cannot be scaled down: {reason}")
        out.append(s)
    return out


def scalable_reason(claim) -> str:
    """Why a claim's headline pair cannot be run at all ("" if it can): a scaled setting
    chooses the stream and backbone, so only the methods matter."""
    from clbudget.analysis.atlas_claims import runner_up
    from clbudget.analysis.atlas_prices import priced_only
    pair = (claim.winner, runner_up(claim))
    only = [m.name for m in pair if priced_only(m.name)]
    if only:
        return f"{', '.join(dict.fromkeys(only))} priced only"
    if pair[0].name == pair[1].name:
        return "two variants of one method"
    if any(m.name == "joint" for m in pair):
        return "joint is an upper bound clbudget never budgets"
    return ""


# ---------------------------------------------------------------- scaling

def _audit_claim(claim, setting: Setting, counts: dict, convention: str):
    """The scaled pair as a `clbudget audit` claim: the setting's stream and backbone,
    `counts` = {method index: (backbones, exemplars)}."""
    from clbudget.analysis.atlas_claims import citation, runner_up
    from clbudget.analysis.audit_claims import Claim, ClaimMethod
    classes, shape, _ = setting.stream()
    pair = (claim.winner, runner_up(claim))
    methods = tuple(ClaimMethod(m.name, m.accuracy, setting.backbone, *counts[m.index], m.label)
                    for m in pair)
    return Claim(setting.dataset, setting.init, setting.inc, classes, shape, methods,
                 convention=convention, metric=claim.metric, seeds=setting.seeds,
                 epochs=setting.flags.get("epochs"), tolerance=TOLERANCE,
                 title=f"{claim.id} ({setting.name})", source=citation(claim))


def _backbones(claim, m, setting: Setting) -> int:
    """An expanding / per-task method's kept backbones on the setting's stream: one a task
    where the source kept one a task, else the source's count."""
    from clbudget.budget.costs import cost_model
    import clbudget.methods  # noqa: F401  (cost models of methods from outside)
    model = cost_model(m.name)
    if not (model.expanding or model.per_task):
        return 1
    return setting.stream()[2] if m.keeps.backbones == claim.num_tasks else m.keeps.backbones


def min_exemplars(setting: Setting) -> int:
    """The allocator's floor for a method that keeps exemplars: one a class."""
    return setting.stream()[0]


def scale(claim, setting: Setting, convention: str = "strict") -> dict:
    """The claim's headline pair on the setting: the factor s, each method's exemplars and
    bytes, the reported and aligned budgets (pure)."""
    from clbudget.analysis.atlas_claims import runner_up
    from clbudget.analysis.atlas_prices import price_method
    from clbudget.analysis.audit_memory import method_memory
    w, l = claim.winner, runner_up(claim)
    target = price_method(claim, w).bytes(convention) / price_method(claim, l).bytes(convention)
    n = {m.index: m.keeps.n_exemplars(claim.num_classes) for m in (w, l)}
    bb = {m.index: _backbones(claim, m, setting) for m in (w, l)}

    def bytes_at(counts):
        ac = _audit_claim(claim, setting, counts, convention)
        return {cm.name: method_memory(ac, cm)[convention] for cm in ac.methods}

    b0 = bytes_at({i: (bb[i], 0) for i in n})
    b1 = bytes_at({i: (bb[i], 1) for i in n})
    a = {m.index: b0[m.name] for m in (w, l)}
    per = {m.index: b1[m.name] - b0[m.name] for m in (w, l)}   # bytes an exemplar
    denom = per[w.index] * n[w.index] - target * per[l.index] * n[l.index]
    notes = []
    if denom == 0:
        s = 1.0
        notes.append("no exemplar count to scale: counts kept as the source states them")
    else:
        s = (target * a[l.index] - a[w.index]) / denom
        if s < 0:
            notes.append(f"the claim's ratio {target:.4f} is out of reach by scaling exemplars "
                         f"on {setting.backbone}: counts scaled to 0")
            s = 0.0
    floor = min_exemplars(setting)
    counts = {}
    for m in (w, l):
        e = round(s * n[m.index])
        if n[m.index] and e < floor:
            notes.append(f"{m.label}: {s * n[m.index]:.1f} exemplars raised to the "
                         f"allocator's floor of {floor} (one a class)")
            e = floor
        counts[m.index] = (bb[m.index], e)
    final = bytes_at(counts)
    own = {m.index: final[m.name] for m in (w, l)}
    aligned = max(own.values())
    return {"setting": setting.name, "label": setting.label(), "factor": s,
            "claim_ratio": target, "ratio": own[w.index] / own[l.index],
            "convention": convention, "notes": notes, "aligned_budget_bytes": aligned,
            "methods": [{"index": m.index, "name": m.name, "label": m.label,
                         "backbones": bb[m.index], "source_exemplars": n[m.index],
                         "exemplars": counts[m.index][1], "bytes": own[m.index]}
                        for m in (w, l)],
            "_counts": counts}


# ---------------------------------------------------------------- cells and commands

def plan_cells(scaled: list[dict]) -> dict:
    """{method: [budgets]} a setting runs for its claims' scaled pairs: each method's
    own and aligned budgets, those within TOLERANCE of each other merged into the largest."""
    from clbudget.analysis.audit_memory import budgets_equal
    need: dict[str, set] = {}
    for sc in scaled:
        for m in sc["methods"]:
            need.setdefault(m["name"], set()).update({m["bytes"], sc["aligned_budget_bytes"]})
    cells = {}
    for name, budgets in need.items():
        clusters: list[list[int]] = []
        for b in sorted(budgets, reverse=True):   # largest first: each cluster's cell budget
            if clusters and budgets_equal(b, clusters[-1][0], TOLERANCE):
                clusters[-1].append(b)
            else:
                clusters.append([b])
        cells[name] = sorted(c[0] for c in clusters)
    return cells


def cell_of(cells: dict, method: str, budget: int) -> int:
    """The planned cell budget a needed (method, budget) is read from."""
    from clbudget.analysis.audit_memory import budgets_equal
    return min((b for b in cells[method] if budgets_equal(b, budget, TOLERANCE)),
               key=lambda b: abs(b - budget))


def _flags(setting: Setting) -> str:
    """The stream, backbone and training flags every command of the setting carries."""
    out = (f"--dataset {setting.dataset} --data-root {setting.data_root} --init {setting.init} "
           f"--inc {setting.inc} --backbone {setting.backbone}")
    if "class_order" not in setting.flags:
        out += f" --class-order {CLASS_ORDER}"
    for key, value in setting.sweep:
        if key == "recipe_options":
            for phase, fields in value.items():
                for f, v in fields.items():
                    out += f" --recipe-option {phase}.{f}={v}"
        else:
            out += f" --{key.replace('_', '-')} {value}"
    return out


def sweep_command(setting: Setting, methods, budgets, store: str | None) -> str:
    """The `clbudget sweep` command of one group of cells."""
    return (f"clbudget sweep --methods {','.join(methods)} --budgets "
            f"{','.join(map(str, budgets))} --seeds {','.join(map(str, setting.seeds))} "
            f"{_flags(setting)} --out {store or 'DIR'}")


def run_command(setting: Setting, method: str, budget: int, seed: int, store: str) -> str:
    """The `clbudget run` command of one cell and seed (the same run as the sweep's, without
    the sweep's finetune reference)."""
    return (f"clbudget run --method {method} --budget {budget} --seed {seed} {_flags(setting)} "
            f"--out {store}")


def commands(setting: Setting, cells: dict, store: str | None = None,
             only: dict | None = None) -> list[str]:
    """Sweep commands of the setting's cells (`only`: {method: [cell budgets]} a claim reads),
    methods with the same budgets in one command."""
    pick = only if only is not None else cells
    groups: dict[tuple, list[str]] = {}
    for name in pick:
        groups.setdefault(tuple(sorted(set(pick[name]))), []).append(name)
    return [sweep_command(setting, ms, budgets, store) for budgets, ms in groups.items()]


# ---------------------------------------------------------------- verdict

def setting_rows(setting: Setting, rows) -> list[dict]:
    """Finished rows trained as the setting says: backbone, class order protocol and every
    fixed sweep flag (the stream, convention and budget are matched by the audit's
    `claim_rows`)."""
    want = {k: v for k, v in setting.sweep if k not in UNMATCHED + ("class_order",)}
    canon = lambda v: json.dumps(v, sort_keys=True, default=str)
    out = []
    for r in R.finished(rows):
        s = R.spec_of(r)
        if (s.get("backbone") != setting.backbone
                or s.get("class_order", CLASS_ORDER) != setting.class_order):
            continue
        if all(canon(s.get(k) if k != "recipe_options" else (s.get(k) or {})) == canon(v)
               for k, v in want.items()):
            out.append(r)
    return out


def verdict_word(comparison: dict | None, missing) -> str:
    """'holds' / 'reversed' / 'not significant' at equal bytes, or why there is none."""
    if comparison is None or not R.finite(comparison.get("diff")):
        return "not measured"
    if not comparison["testable"]:
        return "not testable (fewer than 2 seeds a method)"
    word = ("holds" if comparison["significant"] and comparison["diff"] > 0 else
            "reversed" if comparison["significant"] else "not significant")
    return word + " at equal bytes" + (" (partly measured)" if missing else "")


def _cell_stats(rows, metric: str) -> dict:
    from clbudget.analysis.audit_memory import per_seed_accuracy
    from clbudget.analysis.stats import seed_stats
    acc = per_seed_accuracy(rows, metric)
    st = seed_stats(acc.values())
    return {"seeds": sorted(acc, key=str), "per_seed": {str(k): v for k, v in acc.items()},
            **st.to_dict()}


def measure_scaled(claim, setting: Setting, sc: dict, cells: dict, rows,
                   store: str | None) -> dict:
    """The scaled claim read from a store's rows (None: no store given)."""
    from clbudget.analysis.audit import audit_claim
    from clbudget.analysis.audit_memory import seed_comparison
    from clbudget.analysis.audit_pairing import claim_rows
    ac = _audit_claim(claim, setting, sc.pop("_counts"), sc["convention"])
    w, l = sc["methods"]
    aligned = sc["aligned_budget_bytes"]
    reads = {}
    for m in (w, l):
        for b in (m["bytes"], aligned):
            reads.setdefault(m["name"], set()).add(cell_of(cells, m["name"], b))
    sc["cells"] = {k: sorted(v) for k, v in reads.items()}
    sc["commands"] = commands(setting, cells, store, only=sc["cells"])
    if rows is None:
        sc.update(status="no store", verdict="no store given (--store DIR)", text="no store "
                  "given (--store DIR)", reported=None, aligned=None, flags=[], missing=[])
        return sc
    mine = setting_rows(setting, rows)
    result = audit_claim(ac, mine, store=store)   # at the larger of the pair's memories
    [p] = result["pairs"]
    sides = {}
    for key, budgets in (("reported", (w["bytes"], l["bytes"])), ("aligned", (aligned, aligned))):
        rw, rl = (claim_rows(ac, mine, m["name"], cell_of(cells, m["name"], b))
                  for m, b in zip((w, l), budgets))
        sides[key] = {"budget_bytes": {"winner": budgets[0], "loser": budgets[1]},
                      "winner": _cell_stats(rw, claim.metric),
                      "loser": _cell_stats(rl, claim.metric),
                      "comparison": seed_comparison(rw, rl, claim.metric)}
    comp = sides["aligned"]["comparison"]
    word = verdict_word(comp, p["missing"])
    sc.update(status=("not measured" if comp is None else
                      "partly measured" if p["missing"] else "measured"),
              verdict=word, reported=sides["reported"], aligned=sides["aligned"],
              flags=[f["message"] for f in p["flags"]], missing=p["missing"],
              text=f"{word}: {p['verdict']}")
    return sc


def scaled_record(claim, setting: Setting, cells: dict, convention: str, rows,
                  store: str | None) -> dict:
    """Scale the claim onto the setting and read its verdict (pure)."""
    return measure_scaled(claim, setting, scale(claim, setting, convention), cells, rows, store)


def plan_setting(claims_by_id: dict, setting: Setting, convention: str) -> dict:
    """The setting's cells over all its claims."""
    return plan_cells([{k: v for k, v in scale(claims_by_id[c], setting, convention).items()
                        if k != "_counts"} for c in setting.claims])
