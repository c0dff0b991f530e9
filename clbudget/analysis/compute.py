"""Compute beside bytes, provenance and headlines in the report.  Pure functions of result
rows and cells (`summary.cell_summary`); figure builders touch no file.

- Training FLOPs (train/flops.py) are device-independent, unlike wall time, which on a
  shared machine swings with the load: accuracy vs training FLOPs is the compute axis the
  report trusts; relative wall time stays beside it, labelled as wall time.
- The (bytes, FLOPs) Pareto front: cells not dominated in (total cost down, training FLOPs
  down, last accuracy up), within a setting.
- Provenance: code revisions, devices, torch versions, recipes, dates and command lines of
  the runs, shown first in report.html / summary.md.
- Headlines, one per budget: the best method by mean last accuracy and, for each other
  method, whether it is significantly worse (paired t-test on matching seeds, else Welch;
  95%), e.g. "at 7.6 MiB: best iCaRL 58.5 ± 0.4; DER not significantly different (p=0.31)".
"""
from __future__ import annotations

import math

from clbudget.analysis import rows as R
from clbudget.analysis.stats import compare_seeds

GFLOP = 1e9


def _ok(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def dominated(costs: list, ys: list, i: int) -> bool:
    """Is point i dominated: another point no worse in every cost (lower) and in y (higher),
    strictly better in at least one?"""
    for j in range(len(ys)):
        if j == i:
            continue
        no_worse = all(cj <= ci for cj, ci in zip(costs[j], costs[i])) and ys[j] >= ys[i]
        better = any(cj < ci for cj, ci in zip(costs[j], costs[i])) or ys[j] > ys[i]
        if no_worse and better:
            return True
    return False


def pareto_mask_costs(costs: list[tuple], ys: list) -> list[bool]:
    """True for each point on the front of several costs (each lower is better) and y
    (higher is better); a point with a missing coordinate is never on it."""
    ok = [all(_ok(c) for c in cs) and _ok(y) for cs, y in zip(costs, ys)]
    idx = [i for i in range(len(ys)) if ok[i]]
    sub_c, sub_y = [costs[i] for i in idx], [ys[i] for i in idx]
    mask = [False] * len(ys)
    for k, i in enumerate(idx):
        mask[i] = not dominated(sub_c, sub_y, k)
    return mask


def mark_bytes_flops_pareto(cells, y: str = "last") -> None:
    """cell['pareto_bytes_flops']: on the front of (total cost, training FLOPs, accuracy)."""
    for setting in {c["setting"] for c in cells}:
        group = [c for c in cells if c["setting"] == setting and c["budgeted"]]
        costs = [(c["stats"]["total_cost_bytes"]["mean"], c["stats"]["train_flops"]["mean"])
                 for c in group]
        mask = pareto_mask_costs(costs, [c["stats"][y]["mean"] for c in group])
        for c, m, cs in zip(group, mask, costs):
            c["pareto_bytes_flops"] = m if all(_ok(v) for v in cs) else None
    for c in cells:
        c.setdefault("pareto_bytes_flops", None)


# ------------------------------------------------------------------------------ provenance

def _recipe(row) -> str | None:
    recipe = row.get("recipe") or R.spec_of(row).get("recipe")
    if isinstance(recipe, dict):
        return recipe.get("name") or str(sorted(recipe.items()))
    return None if recipe is None else str(recipe)


def class_order_text(row) -> str | None:
    """"fixed (seed 1993): 3 8 4 ..." / "per-seed (seed 2): ..." / "unshuffled: 0 1 2 ...";
    None for a row without a recorded order."""
    order = row.get("class_order")
    if not order:
        return None
    protocol = row.get("class_order_protocol") or R.spec_of(row).get("class_order", "fixed")
    shown = " ".join(map(str, order[:20])) + (" ..." if len(order) > 20 else "")
    if protocol == "unshuffled":
        return f"unshuffled: {shown}"
    seed = row.get("class_order_shuffle_seed",
                   row.get("seed") if protocol == "per-seed" else row.get("class_order_seed"))
    return f"{protocol} (seed {seed}): {shown}"


def class_order_protocol(row) -> str:
    """How a run's class order was chosen, short: "fixed (seed 1993)", "per-seed" or
    "unshuffled" (a row from before the protocols existed: fixed)."""
    spec = R.spec_of(row)
    protocol = row.get("class_order_protocol") or spec.get("class_order", "fixed")
    if protocol == "fixed":
        return f"fixed (seed {spec.get('class_order_seed', row.get('class_order_seed', 1993))})"
    return protocol


# What an interval over seeds covers under each protocol (streams/protocol.py CLASS_ORDERS)
CLASS_ORDER_SCOPE = {
    "fixed": "one class order for every seed: the interval leaves class-order variance out",
    "per-seed": "each seed its own class order (PyCIL run with several seeds): the interval "
                "includes class-order variance",
    "unshuffled": "the data set's label order for every seed: the interval leaves class-order "
                  "variance out",
}


def class_order_scope(protocols) -> str:
    """What intervals over runs of these class-order `protocols` (`class_order_protocol`
    labels) cover, one line: "class order fixed (seed 1993): one class order for every seed:
    the interval leaves class-order variance out"; several protocols are each named."""
    found = sorted({p for p in protocols if p})
    if not found:
        return "class order not recorded"
    return "; ".join(f"class order {p}: {CLASS_ORDER_SCOPE[p.split(' ')[0]]}" for p in found)


def normalization_text(row) -> str | None:
    """What normalised the inputs of a run, as its row records it (train/recipes.py
    `Normalization.to_dict`): "constants of pycil for cifar10: mean (...), std (...)" or
    "train-set statistics: mean (...), std (...)"."""
    n = row.get("normalization")
    if not isinstance(n, dict):
        return None
    values = (f"mean ({', '.join(f'{v:.4f}' for v in n['mean'])}), "
              f"std ({', '.join(f'{v:.4f}' for v in n['std'])})")
    if n.get("kind") == "constants":
        return f"constants of {n['source']} for {n['dataset']}: {values}"
    if n.get("kind") == "none":   # a feature stream's vectors as stored (train/features.py)
        return f"none ({n.get('why') or 'inputs as stored'})"
    return f"train-set statistics: {values}"


def headline_text(row) -> str | None:
    """Which classifier a method's headline accuracy is, when it logs two (iCaRL: NME, with
    the CNN's in accuracy.cnn)."""
    acc = row.get("accuracy") or {}
    if not acc.get("headline"):
        return None
    others = ", ".join(k for k in acc.get("also", ()))
    return f"{row.get('method')}: {acc['headline']}" + (f" (also {others})" if others else "")


def provenance(rows) -> dict:
    """Where the results come from: every distinct value among the finished runs."""
    done = R.finished(rows)
    env = [r.get("environment") or {} for r in done]
    dates = sorted(e["date_utc"] for e in env if e.get("date_utc"))
    return {"git_revisions": sorted({e.get("git_revision", "?") for e in env}),
            "devices": sorted({R.device_of(r) for r in done}),
            "torch": sorted({e.get("torch", "?") for e in env}),
            "recipes": sorted({x for x in map(_recipe, done) if x}) or ["the methods' own"],
            "normalization": sorted({x for x in map(normalization_text, done) if x})
            or ["not recorded"],
            "class_orders": sorted({x for x in map(class_order_text, done) if x})
            or ["not recorded"],
            "accuracy_headlines": sorted({x for x in map(headline_text, done) if x})
            or ["every method: its one classifier"],
            "dates": ([dates[0]] if dates[0] == dates[-1] else [f"{dates[0]} to {dates[-1]}"])
            if dates else ["not recorded"],
            "commands": sorted({r["command"] for r in rows if r.get("command")})
            or ["not recorded"]}


# ------------------------------------------------------------------------------ headlines

def _pm(s: dict) -> str:
    mean = s["mean"]
    if not _ok(s.get("ci_low")):
        return f"{mean:.1f}"
    return f"{mean:.1f} ± {(s['ci_high'] - s['ci_low']) / 2:.1f}"


def headlines(cells, metric: str = "last") -> list[dict]:
    """One sentence per (setting, budget) with two or more budgeted methods."""
    out = []
    groups: dict[tuple, list] = {}
    for c in cells:
        if c["budgeted"] and c["budget_bytes"] is not None and _ok(c["stats"][metric]["mean"]):
            groups.setdefault((c["setting_label"], c["budget_bytes"]), []).append(c)
    for (setting, budget), cs in sorted(groups.items()):
        if len(cs) < 2:
            continue
        cs = sorted(cs, key=lambda c: -c["stats"][metric]["mean"])
        best = cs[0]
        parts = [f"at {budget / R.MIB:.2f} MiB: best {best['label']} {_pm(best['stats'][metric])}"]
        others = []
        for c in cs[1:]:
            comp = compare_seeds(best["per_seed"][metric], c["per_seed"][metric])
            gap = best["stats"][metric]["mean"] - c["stats"][metric]["mean"]
            if not comp.testable:
                others.append(f"{c['label']} {gap:.1f} pp lower (untested: one seed)")
            elif comp.significant:
                others.append(f"{c['label']} {gap:.1f} pp lower (p={comp.p_value:.2g})")
            else:
                others.append(f"{c['label']} not significantly different "
                              f"(p={comp.p_value:.2f})")
        text = parts[0] + ("; " + "; ".join(others) if others else "")
        text += f" ({class_order_scope(c.get('class_order') for c in cs)})"
        out.append({"setting": setting, "budget_bytes": budget, "best": best["label"],
                    "text": text})
    return out


# ------------------------------------------------------------------------------ table

def _num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}" if abs(v) >= 1 else f"{v:.3g}"


def fmt_gflops(s: dict) -> str:
    if not _ok(s.get("mean")):
        return "n/a"
    if not _ok(s.get("ci_low")):
        return _num(s["mean"] / GFLOP)
    half = (s["ci_high"] - s["ci_low"]) / 2
    return _num(s["mean"] / GFLOP) + (f" ± {_num(half / GFLOP)}" if half else "")


def compute_rows(cells) -> list[tuple]:
    mib = lambda v: "n/a" if not _ok(v) else f"{v / R.MIB:.1f}"
    flag = lambda v: {True: "yes", False: "", None: "n/a"}[v]
    return [(c["label"], f"{c['budget_bytes'] / R.MIB:.2f}" if c["budget_bytes"] else "n/a",
             fmt_gflops(c["stats"]["train_flops"]),
             "n/a" if not _ok(c["stats"]["inference_flops_per_image"]["mean"]) else
             f"{c['stats']['inference_flops_per_image']['mean'] / 1e6:,.2f}",
             mib(c["stats"]["peak_memory_bytes"]["mean"]),
             "n/a" if not _ok(c["stats"]["wall_s"]["mean"]) else
             f"{c['stats']['wall_s']['mean']:.1f}",
             flag(c.get("pareto_bytes_flops"))) for c in cells]


COMPUTE_HEADERS = ("method", "budget (MiB)", "training GFLOPs", "inference MFLOPs / image",
                   "peak memory (MiB)", "wall time (s)", "Pareto bytes+FLOPs")
COMPUTE_CAPTION = ("training FLOPs: FlopCounterMode on one step of every training phase x its "
                   "steps (forward + backward, teacher and replay forwards included; matmul and "
                   "convolution work, 2 per multiply-add); inference FLOPs: the method's "
                   "scores per test image; peak memory: CUDA, the run's peak allocated; CPU, the "
                   "process's peak resident set (a sweep's grows run to run); peak memory and "
                   "wall time depend on the device and its load, FLOPs do not; Pareto bytes+FLOPs: not dominated in (total cost, "
                   "training FLOPs, last accuracy)")


# ------------------------------------------------------------------------------ figures

def accuracy_flops_figure(cells, title: str = ""):
    """Last accuracy (%) vs training FLOPs (log x), one line per series over its budgets."""
    from clbudget.analysis.plots import _figure, _pct_axis, _pct_interval, _series, styles
    fig = _figure()
    ax = fig.subplots()
    style = styles(cells)
    for label, cs in _series(cells).items():
        cs = [c for c in cs if _ok(c["stats"]["train_flops"]["mean"])]
        if not cs:
            continue
        colour, marker = style[label]
        x = [c["stats"]["train_flops"]["mean"] for c in cs]
        st = [c["stats"]["last"] for c in cs]
        yerr = [[s["mean"] - _pct_interval(s)[0] if _ok(s["ci_low"]) else 0 for s in st],
                [_pct_interval(s)[1] - s["mean"] if _ok(s["ci_low"]) else 0 for s in st]]
        ax.errorbar(x, [s["mean"] for s in st], yerr=yerr, marker=marker, color=colour,
                    capsize=2, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("training FLOPs per run (FlopCounterMode; device-independent)")
    ax.set_ylabel("last accuracy (%)")
    _pct_axis(ax)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small", loc="best")
    ax.set_title(title or "accuracy vs training compute (points: budgets)", fontsize="medium")
    return fig


def bytes_flops_figure(cells, title: str = ""):
    """Training FLOPs vs total cost (MiB), marker size ~ accuracy; front in colour."""
    from clbudget.analysis.plots import GREY, _figure, styles
    fig = _figure()
    ax = fig.subplots()
    style = styles(cells)
    seen = set()
    for c in cells:
        x, y = c["stats"]["total_cost_bytes"]["mean"], c["stats"]["train_flops"]["mean"]
        acc = c["stats"]["last"]["mean"]
        if not (c["budgeted"] and _ok(x) and _ok(y) and _ok(acc)):
            continue
        colour, marker = style[c["label"]]
        on = bool(c.get("pareto_bytes_flops"))
        label = c["label"] if c["label"] not in seen else None
        seen.add(c["label"])
        ax.scatter([x / R.MIB], [y], s=20 + 3 * acc, marker=marker,
                   color=colour if on else GREY, edgecolors="black" if on else GREY,
                   label=label, zorder=3 if on else 2)
        ax.annotate(f"{acc:.0f}%", (x / R.MIB, y), textcoords="offset points", xytext=(5, 4),
                    fontsize="x-small", color="#333333" if on else GREY)
    ax.set_yscale("log")
    ax.set_xlabel("total cost (MiB = strict ledger + communication)")
    ax.set_ylabel("training FLOPs per run")
    ax.grid(alpha=0.3, which="both")
    if seen:
        ax.legend(fontsize="small", loc="best", title="colour: on the front; label: last acc.",
                  title_fontsize="x-small")
    ax.set_title(title or "Pareto front over (bytes, FLOPs, accuracy)", fontsize="medium")
    return fig


COMPUTE_FIGURES = {"accuracy_vs_train_flops": accuracy_flops_figure,
                   "pareto_bytes_flops": bytes_flops_figure}


def write_compute_figures(cells, out_dir, formats=("png", "pdf")) -> dict:
    """Save the compute figures of every setting whose runs carry FLOPs; {name: [paths]}."""
    from clbudget.analysis.plots import write_per_setting
    return write_per_setting(  # settings of rows from before FLOPs were counted: none
        cells, out_dir, COMPUTE_FIGURES, formats,
        lambda name, cs: any(_ok(c["stats"]["train_flops"]["mean"]) for c in cs))
