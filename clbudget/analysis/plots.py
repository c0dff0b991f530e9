"""Figures over cells (`summary.cell_summary`).  Builders return matplotlib Figures and touch
no file and no global state (no pyplot, no backend switch); `write_figures` saves them as
PNG and PDF.

Readable defaults: axes labelled with units (budget and cost in MiB = 2**20 bytes, accuracy
in %, relative time in x finetune's wall time), the Okabe-Ito colour-blind-safe palette, one
marker per method, 95% CI bands / bars wherever two or more seeds exist.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

from clbudget.analysis import rows as R

# Okabe & Ito (2008), yellow last: it reads poorly as a line on white.
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#000000",
             "#F0E442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p", "8", "d", "H")
GREY = "#B0B0B0"
METHOD_ORDER = tuple(R.DISPLAY_NAMES)


def styles(cells) -> dict:
    """label -> (colour, marker): fixed per method name (DER keeps its colour across reports);
    colours cycle through the palette, markers never repeat within 15 series."""
    labels = sorted({c["label"] for c in cells},
                    key=lambda lab: (_order(lab, cells), lab))
    return {lab: (OKABE_ITO[i % len(OKABE_ITO)], MARKERS[i % len(MARKERS)])
            for i, lab in enumerate(labels)}


def _order(label, cells):
    method = next(c["method"] for c in cells if c["label"] == label)
    return METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)


def _figure(w=6.4, h=4.4, **kw):
    from matplotlib.figure import Figure
    return Figure(figsize=(w, h), layout="constrained", **kw)


def _finite(v) -> bool:
    return v is not None and math.isfinite(v)


def _pct_interval(s) -> tuple[float, float]:
    """A CI of an accuracy, clipped to what an accuracy can be (0-100%): with two seeds the
    Student-t half-width (t = 12.7) easily runs past both ends."""
    return max(0.0, s["ci_low"]), min(100.0, s["ci_high"])


def _pct_axis(ax) -> None:
    ax.set_ylim(-2, 102)


def _series(cells):
    out: dict[str, list] = {}
    for c in cells:
        if c["budgeted"]:
            out.setdefault(c["label"], []).append(c)
    return {k: sorted(v, key=lambda c: c["budget_bytes"]) for k, v in out.items()}


def accuracy_budget_figure(cells, title: str = ""):
    """Average incremental and last accuracy (%) vs budget (MiB), mean over seeds, 95% CI band."""
    fig = _figure(10, 4.2)
    style = styles(cells)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, metric, name in zip(axes, ("average_incremental", "last"),
                                ("average incremental accuracy (%)", "last accuracy (%)")):
        for label, cs in _series(cells).items():
            colour, marker = style[label]
            x = [c["budget_bytes"] / R.MIB for c in cs]
            st = [c["stats"][metric] for c in cs]
            ax.plot(x, [s["mean"] for s in st], marker=marker, color=colour, label=label)
            band = [(xi, s["mean"], *_pct_interval(s)) for xi, s in zip(x, st)
                    if _finite(s["ci_low"])]
            if len(band) >= 2:
                ax.fill_between([b[0] for b in band], [b[2] for b in band],
                                [b[3] for b in band], color=colour, alpha=0.18, linewidth=0)
            for xi, mean, lo, hi in (band if len(band) == 1 else []):
                ax.errorbar([xi], [mean], yerr=[[mean - lo], [hi - mean]], color=colour,
                            capsize=3)
        ax.set_xlabel("memory budget (MiB)")
        ax.set_ylabel(name)
        _pct_axis(ax)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize="small", loc="best")
    fig.suptitle(title or "accuracy vs memory budget (mean over seeds, 95% CI)")
    return fig


def _front_figure(cells, x_fig: str, x_scale, xlabel: str, key: str, title: str,
                  reference_x=None):
    fig = _figure()
    ax = fig.subplots()
    style = styles(cells)
    pts = [c for c in cells if c["budgeted"] and _finite(c["stats"][x_fig]["mean"])
           and _finite(c["stats"]["last"]["mean"])]
    seen = set()
    for c in pts:
        colour, marker = style[c["label"]]
        on = bool(c.get(key))
        x, s = x_scale(c["stats"][x_fig]["mean"]), c["stats"]["last"]
        yerr = None
        if _finite(s["ci_low"]):
            lo, hi = _pct_interval(s)
            yerr = [[s["mean"] - lo], [hi - s["mean"]]]
        label = c["label"] if (on and c["label"] not in seen) else None
        if label:
            seen.add(label)
        ax.errorbar([x], [s["mean"]], yerr=yerr, marker=marker, markersize=7, linestyle="none",
                    color=colour if on else GREY, markeredgecolor="black" if on else GREY,
                    ecolor=colour if on else GREY, capsize=2, zorder=3 if on else 2, label=label)
    front = sorted((c for c in pts if c.get(key)), key=lambda c: c["stats"][x_fig]["mean"])
    if len(front) >= 2:
        ax.step([x_scale(c["stats"][x_fig]["mean"]) for c in front],
                [c["stats"]["last"]["mean"] for c in front], where="post", color="black",
                linewidth=1, alpha=0.6, zorder=1)
    for c in pts:  # series with no front point still appear in the legend, greyed
        if c["label"] not in seen:
            seen.add(c["label"])
            ax.plot([], [], marker=style[c["label"]][1], linestyle="none", color=GREY,
                    label=f"{c['label']} (dominated)")
    if any(not c.get(key) for c in pts):
        ax.plot([], [], marker="o", linestyle="none", color=GREY, label="grey: dominated")
    if reference_x is not None:
        ax.axvline(reference_x, color="#D55E00", linestyle=":", linewidth=1,
                   label="finetune (1.0)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("last accuracy (%)")
    _pct_axis(ax)
    ax.grid(alpha=0.3)
    if pts:
        ax.legend(fontsize="small", loc="best")
    ax.set_title(title, fontsize="medium")
    return fig


def pareto_figure(cells, title: str = ""):
    """Last accuracy (%) vs total cost (MiB: strict ledger + communication); Pareto front in
    colour with its staircase, dominated method-budget means greyed."""
    return _front_figure(cells, "total_cost_bytes", lambda b: b / R.MIB,
                         "total cost (MiB = strict ledger + communication)", "pareto_cost",
                         title or "Pareto front: accuracy vs total cost")


def relative_time_figure(cells, title: str = ""):
    """Last accuracy (%) vs relative time (x finetune's wall time); front in colour."""
    return _front_figure(cells, "relative_time", lambda v: v,
                         "relative time (x finetune wall time, same stream/device/epochs)",
                         "pareto_time", title or "accuracy vs relative wall time", reference_x=1.0)


def heatmap_figure(cells, title: str = ""):
    """Per-task accuracy matrix A[t][j] (%, task-agnostic, mean over seeds) per series at its
    largest budget."""
    chosen = {}
    for c in cells:
        best = chosen.get(c["label"])
        if c.get("matrix") and (best is None
                                or (c["budget_bytes"] or 0) > (best["budget_bytes"] or 0)):
            chosen[c["label"]] = c
    cs = [chosen[k] for k in sorted(chosen, key=lambda lab: (_order(lab, cells), lab))]
    n = max(1, len(cs))
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig = _figure(3.2 * cols + 1.0, 3.0 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    image = None
    import numpy as np
    for ax, c in zip(axes.flat, cs):
        m = np.array([[np.nan if v is None else v for v in row] for row in c["matrix"]])
        image = ax.imshow(np.ma.masked_invalid(m), vmin=0, vmax=100, cmap="viridis",
                          origin="upper", interpolation="nearest")
        budget = "" if c["budget_bytes"] is None else f" @ {R.format_mib(c['budget_bytes'])}"
        ax.set_title(f"{c['label']}{budget}", fontsize="small")
        ax.set_xlabel("task j (evaluated)")
        ax.set_ylabel("after task t")
        T = m.shape[0]
        if T <= 12:
            ax.set_xticks(range(T))
            ax.set_yticks(range(T))
        if T <= 10:  # the numbers themselves, readable without the colour scale
            for t in range(T):
                for j in range(t + 1):
                    if np.isfinite(m[t, j]):
                        ax.text(j, t, f"{m[t, j]:.0f}", ha="center", va="center",
                                fontsize=7 if T > 6 else 9,
                                color="white" if m[t, j] < 60 else "black")
    for ax in list(axes.flat)[len(cs):]:
        ax.axis("off")
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="accuracy on task j (%)")
    fig.suptitle(title or "per-task accuracy (task-agnostic, mean over seeds)")
    return fig


def ledger_figure(cells, title: str = ""):
    """Strict-ledger bytes per series (MiB), stacked: model (params, buffers, per-task modules)
    / exemplars (images, labels, logits) / other (old model, class means, Fisher, masks);
    one panel per budget (at most 6, evenly chosen)."""
    budgets = sorted({c["budget_bytes"] for c in cells if c["budget_bytes"] is not None})
    if len(budgets) > 6:
        budgets = [budgets[round(i * (len(budgets) - 1) / 5)] for i in range(6)]
    n = max(1, len(budgets))
    fig = _figure(max(6.4, 3.0 * n), 4.6)
    axes = fig.subplots(1, n, sharey=True, squeeze=False)[0]
    colours = {"model": OKABE_ITO[0], "exemplars": OKABE_ITO[3], "other": OKABE_ITO[4]}
    hatches = {"model": "", "exemplars": "//", "other": ".."}
    for ax, budget in zip(axes, budgets):
        cs = sorted((c for c in cells if c["budget_bytes"] == budget),
                    key=lambda c: (_order(c["label"], cells), c["label"]))
        x = range(len(cs))
        bottom = [0.0] * len(cs)
        for bar in ("model", "exemplars", "other"):
            h = [c["breakdown"][bar] / R.MIB for c in cs]
            ax.bar(x, h, bottom=bottom, color=colours[bar], hatch=hatches[bar],
                   edgecolor="white", label=bar)
            bottom = [b + v for b, v in zip(bottom, h)]
        ax.axhline(budget / R.MIB, color="black", linestyle="--", linewidth=1, label="budget")
        ax.set_xticks(list(x))
        ax.set_xticklabels([c["label"] for c in cs], rotation=45, ha="right", fontsize="small")
        ax.set_title(f"budget {R.format_mib(budget, 2)}", fontsize="small")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("bytes held after the last task (MiB, strict ledger)")
    axes[0].legend(fontsize="small", loc="best")
    fig.suptitle(title or "ledger breakdown: model / exemplars / other")
    return fig


FIGURE_BUILDERS = {
    "accuracy_vs_budget": accuracy_budget_figure,
    "pareto": pareto_figure,
    "accuracy_vs_relative_time": relative_time_figure,
    "per_task_accuracy": heatmap_figure,
    "ledger_breakdown": ledger_figure,
}


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:60] or "setting"


def write_figures(cells, out_dir, formats=("png", "pdf")) -> dict:
    """Save every figure of every setting as PNG and PDF; returns {name: [paths]}.

    With one setting names are plain (`pareto.png`); with several, the setting's slug is
    appended (`pareto__cifar100-b0inc10.png`).
    """
    def wanted(name, cs):
        # no finetune reference: no relative time to plot
        return name != "accuracy_vs_relative_time" or any(
            _finite(c["stats"]["relative_time"]["mean"]) for c in cs)
    return write_per_setting(cells, out_dir, FIGURE_BUILDERS, formats, wanted)


def write_per_setting(cells, out_dir, builders: dict, formats=("png", "pdf"),
                      wanted=lambda name, cells: True) -> dict:
    """Save `builders` {name: cells -> figure} for every setting of `cells` (those `wanted`
    allows) as `formats`; returns {name[__setting-slug]: [paths]}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings: dict[str, list] = {}
    for c in cells:
        settings.setdefault(c["setting"], []).append(c)
    written = {}
    for setting, cs in sorted(settings.items(), key=lambda kv: kv[1][0]["setting_label"]):
        label = cs[0]["setting_label"]
        suffix = "" if len(settings) == 1 else f"__{slug(label)}"
        for name, build in builders.items():
            if not wanted(name, cs):
                continue
            fig = build(cs)
            orders = sorted({c["class_order"] for c in cs if c.get("class_order")})
            fig.text(0.005, 0.005, label + (f"; class order {' / '.join(orders)} (intervals "
                                            f"over seeds)" if orders else ""),
                     fontsize="x-small", color="#555555")
            paths = []
            for fmt in formats:
                path = out_dir / f"{name}{suffix}.{fmt}"
                fig.savefig(path, dpi=150 if fmt == "png" else None)
                paths.append(path)
            written[name + suffix] = paths
    return written
