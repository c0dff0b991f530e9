"""Tables over result rows: one record per run, per cell (setting x method x budget) with
seed statistics, AUC-A / AUC-L per method, Pareto flags.  Pure functions of rows.

A *cell* is every finished run of one method configuration at one budget in one setting
(stream, epochs, convention: `rows.SETTING_FIELDS`); its seeds are aggregated with
`stats.seed_stats` (mean, std ddof=1, 95% Student-t CI; NaN CI with one seed).  Runs of a
method under different fixed backbones or method options are different series, labelled
`DER [backbone=resnet20]`.
"""
from __future__ import annotations

from clbudget.analysis import rows as R
from clbudget.analysis.auc import AUC_PCT_UNIT, AUC_UNIT, auc_memo, auc_pct_mib
from clbudget.analysis.compute import class_order_protocol, class_order_scope
from clbudget.analysis.pareto import pareto_mask
from clbudget.analysis.stats import CONFIDENCE, seed_stats

# Every figure a cell carries: name -> unit as printed.
FIGURES = {
    "last": "%", "average_incremental": "%", "forgetting": "pp", "bwt": "pp",
    "forgetting_chaudhry": "pp", "forgetting_clipped": "pp",   # metrics.FORGETTING
    "last_task_aware": "%",
    "relative_time": "x finetune", "cost_accuracy": "% per MiB",
    "total_cost_bytes": "B", "ledger_strict_bytes": "B", "ledger_memo_bytes": "B",
    "communication_bytes": "B", "wall_s": "s", "peak_memory_bytes": "B",
    "train_flops": "FLOPs", "inference_flops_per_image": "FLOPs",   # train/flops.py
}
AUC_METRICS = {"auc_a": "average_incremental", "auc_l": "last"}   # MEMO's AUC-A, AUC-L


def run_records(rows) -> list[dict]:
    """One flat record per finished run: identity, allocation and every FIGURE."""
    rows = R.finished(rows)
    rel = R.relative_times(rows)
    variants: dict[tuple, set] = {}
    for r in rows:
        variants.setdefault((R.setting_key(r), r.get("method")), set()).add(R.variant_key(r))
    from clbudget.analysis.codecs import storage_of
    storages: dict[tuple, set] = {}   # codecs / store dtypes of a method (analysis/codecs.py)
    for r in rows:
        storages.setdefault((R.setting_key(r), r.get("method")), set()).add(storage_of(r))
    out = []
    for r in rows:
        alloc = r.get("allocation") or {}
        many = len(variants[(R.setting_key(r), r.get("method"))]) > 1
        codec, store = storage_of(r)
        several = storages[(R.setting_key(r), r.get("method"))]
        storage = ((f" {codec}" if len({c for c, _ in several}) > 1 else "")
                   + (f" {store}" if len({d for _, d in several}) > 1 else ""))
        out.append({
            "run_key": r.get("run_key"), "setting": R.setting_key(r),
            "setting_label": R.setting_label(r), "method": r.get("method"),
            "label": R.display_name(r.get("method")) + (R.variant_suffix(r) if many else "")
            + storage + R.evaluation_suffix(r),
            "time_basis": R.time_basis(r),
            "budget_bytes": r.get("budget_bytes"), "seed": r.get("seed"),
            "budgeted": bool(r.get("budgeted", True)), "backbone": alloc.get("backbone"),
            "expansion": alloc.get("expansion"), "n_exemplars": alloc.get("n_exemplars"),
            "convention": R.spec_of(r).get("convention", "strict"),
            "epochs": R.spec_of(r).get("epochs"), "device": R.device_of(r),
            "recipe": R.recipe_label(r), "recipe_dict": R.recipe_of(r),
            "class_order": class_order_protocol(r),
            "last": R.accuracy_pct(r, "last"),
            "average_incremental": R.accuracy_pct(r, "average_incremental"),
            "forgetting": R.accuracy_pct(r, "forgetting"), "bwt": R.accuracy_pct(r, "bwt"),
            "forgetting_chaudhry": R.accuracy_pct(r, "forgetting_chaudhry"),
            "forgetting_clipped": R.accuracy_pct(r, "forgetting_clipped"),
            "last_task_aware": R.accuracy_pct(r, "last", task_aware=True),
            "relative_time": rel.get(r.get("run_key")), "cost_accuracy": R.cost_accuracy(r),
            "total_cost_bytes": R.total_cost_bytes(r),
            "ledger_strict_bytes": R.ledger_bytes(r, "strict"),
            "ledger_memo_bytes": R.ledger_bytes(r, "memo"),
            "communication_bytes": R.communication_bytes(r), "wall_s": r.get("wall_s"),
            "peak_memory_bytes": r.get("peak_memory_bytes"),
            "train_flops": r.get("train_flops"),
            "inference_flops_per_image": r.get("inference_flops_per_image"),
            "breakdown": R.ledger_breakdown(r),
            "matrix": (r.get("accuracy") or {}).get("matrix"),
        })
    return out


def _per_seed(records, figure) -> dict:
    """{seed: value}, averaging repeated runs of one seed; missing values dropped."""
    by_seed: dict = {}
    for rec in records:
        if R.finite(rec[figure]):
            by_seed.setdefault(rec["seed"], []).append(rec[figure])
    return {s: sum(v) / len(v) for s, v in sorted(by_seed.items(), key=lambda kv: str(kv[0]))}


def cell_summary(rows, confidence: float = CONFIDENCE) -> list[dict]:
    """One record per (setting, series, budget), sorted; figures as SeedStats dicts.

    Each cell: setting, setting_label, method, label, budget_bytes, budgeted, backbone,
    expansion, n_exemplars, seeds, n_seeds, per_seed {figure: {seed: value}},
    stats {figure: {n, mean, std, ci_low, ci_high}}, breakdown (bytes per bar, first run),
    matrix (per-task accuracy matrix in %, mean over seeds), pareto_cost, pareto_time,
    class_order (the runs' class-order protocol) and class_order_scope (what the intervals
    over its seeds cover: `compute.class_order_scope`).
    """
    groups: dict[tuple, list] = {}
    for rec in run_records(rows):
        groups.setdefault((rec["setting"], rec["label"], rec["budget_bytes"]), []).append(rec)
    cells = []
    for (setting, label, budget), recs in groups.items():
        first = recs[0]
        per_seed = {f: _per_seed(recs, f) for f in FIGURES}
        cells.append({
            "setting": setting, "setting_label": first["setting_label"],
            "method": first["method"], "label": label, "budget_bytes": budget,
            "budgeted": first["budgeted"], "backbone": first["backbone"],
            "expansion": first["expansion"], "n_exemplars": first["n_exemplars"],
            "convention": first["convention"],
            "recipe": " / ".join(sorted({rec["recipe"] for rec in recs})),
            "recipe_dict": first["recipe_dict"],
            # how the class order varied over the seeds: what the interval covers
            "class_order": " / ".join(sorted({rec["class_order"] for rec in recs})),
            "class_order_scope": class_order_scope(rec["class_order"] for rec in recs),
            "seeds": sorted({rec["seed"] for rec in recs}, key=str),
            "n_seeds": len({rec["seed"] for rec in recs}), "n_runs": len(recs),
            "per_seed": per_seed,
            "stats": {f: seed_stats(per_seed[f].values(), confidence).to_dict() for f in FIGURES},
            "breakdown": first["breakdown"], "matrix": mean_matrix([r["matrix"] for r in recs]),
        })
    cells.sort(key=lambda c: (c["setting_label"], c["setting"], c["label"], c["budget_bytes"] or 0))
    mark_pareto(cells)
    mark_recipes(cells)
    return cells


def mark_recipes(cells) -> None:
    """`recipes_differ` on every cell: whether, within its setting, the methods' recipes
    train differently (train/recipes.py `training_differs`): the comparison then also
    compares training budgets."""
    from clbudget.train.recipes import training_differs
    by_setting: dict[str, list] = {}
    for c in cells:
        by_setting.setdefault(c["setting"], []).append(c)
    for cs in by_setting.values():
        recipes = [c["recipe_dict"] for c in cs if c["recipe_dict"]]
        differ = any(training_differs(a, b) for i, a in enumerate(recipes)
                     for b in recipes[i + 1:])
        for c in cs:
            c["recipes_differ"] = differ


def mean_matrix(matrices):
    """Element-wise mean (in %) of lower-triangular accuracy matrices; None above the diagonal."""
    matrices = [m for m in matrices if m]
    if not matrices:
        return None
    T = len(matrices[0])
    out = [[None] * T for _ in range(T)]
    for t in range(T):
        for j in range(T):
            vals = [m[t][j] for m in matrices if len(m) == T and m[t][j] is not None]
            out[t][j] = 100.0 * sum(vals) / len(vals) if vals else None
    return out


def mark_pareto(cells, y: str = "last") -> None:
    """Set cell['pareto_cost'] (accuracy vs total cost) and cell['pareto_time'] (accuracy vs
    relative time) on the cell means, within each setting.  Unbudgeted cells (joint) get None."""
    for setting in {c["setting"] for c in cells}:
        group = [c for c in cells if c["setting"] == setting and c["budgeted"]]
        ys = [c["stats"][y]["mean"] for c in group]
        for key, x in (("pareto_cost", "total_cost_bytes"), ("pareto_time", "relative_time")):
            mask = pareto_mask([c["stats"][x]["mean"] for c in group], ys)
            for c, m in zip(group, mask):  # None: a coordinate is missing (no reference)
                known = R.finite(c["stats"][x]["mean"]) and R.finite(c["stats"][y]["mean"])
                c[key] = m if known else None
    for c in cells:
        if not c["budgeted"]:
            c["pareto_cost"] = c["pareto_time"] = None


def auc_summary(cells, confidence: float = CONFIDENCE) -> list[dict]:
    """AUC-A and AUC-L (MEMO) per (setting, series) over its budgets: `auc_a`/`auc_l` on
    MEMO Table 1's scale (accuracy fraction x MiB, `unit`), `auc_a_pct`/`auc_l_pct` the same
    areas in % x MiB (`unit_pct`).

    The statistics are over seeds that ran every budget of the series (per-seed AUCs).
    `comparable`: True when the series ran the setting's common budget set (the most frequent
    among series with two or more budgets), False when not, None with fewer than two budgets.
    """
    series: dict[tuple, list] = {}
    for c in cells:
        if c["budgeted"] and c["budget_bytes"] is not None:
            series.setdefault((c["setting"], c["label"]), []).append(c)
    # The setting's reference budgets: the most common budget set among series with two or
    # more budgets (a sweep's finetune reference runs at one budget only and has no AUC).
    counts: dict = {}
    for (setting, _), cs in series.items():
        if len(cs) >= 2:
            key = tuple(sorted(c["budget_bytes"] for c in cs))
            counts.setdefault(setting, {}).setdefault(key, 0)
            counts[setting][key] += 1
    reference = {s: max(sorted(c), key=c.get) for s, c in counts.items()}
    out = []
    for (setting, label), cs in sorted(series.items(), key=lambda kv: (kv[1][0]["setting_label"],
                                                                      kv[0])):
        cs = sorted(cs, key=lambda c: c["budget_bytes"])
        budgets = [c["budget_bytes"] for c in cs]
        rec = {"setting": setting, "setting_label": cs[0]["setting_label"],
               "method": cs[0]["method"], "label": label, "budgets_bytes": budgets,
               "n_budgets": len(budgets),
               "class_order_scope": class_order_scope(
                   p for c in cs for p in c.get("class_order", "").split(" / ") if p),
               "comparable": (tuple(budgets) == reference.get(setting)) if len(budgets) >= 2
               else None,
               "unit": AUC_UNIT, "unit_pct": AUC_PCT_UNIT}
        for name, metric in AUC_METRICS.items():
            seeds = sorted(set.intersection(*(set(c["per_seed"][metric]) for c in cs)), key=str)
            # per_seed figures are in %: MEMO's scale takes fractions
            for key, area, scale in ((name, auc_memo, 100.0), (f"{name}_pct", auc_pct_mib, 1.0)):
                per_seed = {s: area(budgets, [c["per_seed"][metric][s] / scale for c in cs])
                            for s in seeds}
                rec[key] = seed_stats(per_seed.values(), confidence).to_dict()
                rec[key]["per_seed"] = per_seed
                rec[key]["of_means"] = area(budgets, [_div(c["stats"][metric]["mean"], scale)
                                                      for c in cs])
        out.append(rec)
    return out


def _div(value, scale: float):
    return None if value is None else value / scale


CSV_FIGURES = ("last", "average_incremental", "forgetting_chaudhry", "forgetting_clipped",
               "last_task_aware", "relative_time",
               "cost_accuracy",
               "total_cost_bytes", "ledger_strict_bytes", "ledger_memo_bytes",
               "communication_bytes", "wall_s")


def flat_cells(cells) -> list[dict]:
    """Cells as flat records (the CSV export): figure_mean/std/ci_low/ci_high columns."""
    out = []
    for c in cells:
        rec = {"setting": c["setting_label"], "method": c["method"], "series": c["label"],
               "budget_bytes": c["budget_bytes"],
               "budget_mib": None if c["budget_bytes"] is None else c["budget_bytes"] / R.MIB,
               "budgeted": c["budgeted"], "backbone": c["backbone"], "expansion": c["expansion"],
               "recipe": c.get("recipe"), "recipes_differ": c.get("recipes_differ"),
               "n_exemplars": c["n_exemplars"], "n_seeds": c["n_seeds"],
               "seeds": " ".join(map(str, c["seeds"])), "class_order": c.get("class_order"),
               "pareto_cost": c.get("pareto_cost"), "pareto_time": c.get("pareto_time")}
        for f in CSV_FIGURES:
            s = c["stats"][f]
            for k in ("mean", "std", "ci_low", "ci_high"):
                rec[f"{f}_{k}"] = s[k]
        out.append(rec)
    return out
