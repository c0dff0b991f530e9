"""The claims atlas, part 5 of 5: the audit (atlas.py) as Markdown, a self-contained HTML
page, a CSV (one row per claim) and one figure, the reported gain against the memory ratio.
`write_atlas` is the only function here that writes files.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path

from clbudget.analysis import rows as R
from clbudget.analysis.report import render_csv

FIGURE = "atlas_gain_vs_ratio.png"
SCALED_INTRO = ("Claims re-run small (the setting is named with each claim below): every "
                "exemplar count of the source scaled by one factor so the winner's bytes / "
                "the runner-up's stay the claim's ratio on the setting's backbone, then both at "
                "the larger of the two (equal bytes). Accuracy (%, the claim's metric): mean "
                "over seeds [95% t-interval]; the difference winner minus runner-up with the "
                "test over seeds (paired where both ran the same seeds) and its two-sided p. "
                "Verdict at equal bytes: holds (the 95% interval of the difference above 0), "
                "reversed (below 0), not significant (it contains 0).")
OKABE_BLUE, OKABE_VERMILLION = "#0072B2", "#D55E00"


def _n(v) -> str:
    return f"{v:,}"


def _ratio(v: float) -> str:
    return f"{v:.2f}"


# ---------------------------------------------------------------- figure

def figure_points(result: dict) -> list[dict]:
    """One point a claim: its headline pair's memory ratio (the atlas's convention) and
    reported gain (pp)."""
    conv = result["convention"]
    return [{"id": c["id"], "ratio": c["headline"]["ratio"][conv],
             "gain_pp": c["headline"]["gain_pp"], "aligned": c["headline"]["aligned"]}
            for c in result["claims"]]


def place_labels(xy, sizes, bounds, obstacles=(), *, radii=(5, 9, 14, 20, 28, 38),
                 directions=16):
    """Greedy label placement in display units: for each point (in order) the first offset,
    nearest first, whose box overlaps no placed box, no point, no obstacle (x0, y0, x1, y1)
    and stays inside `bounds`; the least-overlapping one where none is free.  Returns
    (dx, dy) per point.  `sizes` are the label boxes' (w, h); points are discs of radius 4."""
    import math

    def overlap(a, b):
        return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * \
            max(0.0, min(a[3], b[3]) - max(a[1], b[1]))

    dots = [(x - 4, y - 4, x + 4, y + 4) for x, y in xy] + list(obstacles)
    placed, out = [], [None] * len(xy)
    candidates = [(r * math.cos(2 * math.pi * k / directions),
                   r * math.sin(2 * math.pi * k / directions))
                  for r in radii for k in range(directions)]
    # the most crowded points first: they need the near slots, lone points find room anywhere
    crowd = [sum(math.dist(p, q) < 40 for q in xy) for p in xy]
    for i in sorted(range(len(xy)), key=lambda i: (-crowd[i], i)):
        (x, y), (w, h) = xy[i], sizes[i]
        best, best_cost = (radii[0], 0.0), float("inf")
        for dx, dy in candidates:
            cx, cy = x + dx + (w / 2 if dx > 0 else -w / 2 if dx < 0 else 0), y + dy
            box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
            outside = (box[0] < bounds[0] or box[1] < bounds[1] or box[2] > bounds[2]
                       or box[3] > bounds[3])
            cost = sum(overlap(box, o) for o in placed + dots) + (1e6 if outside else 0)
            if cost < best_cost:
                best, best_cost, best_box = (dx, dy), cost, box
            if cost == 0:
                break
        placed.append(best_box)
        out[i] = best
    return out


def _panel(ax, pts, tol):
    """Points of `pts` on a log-x axis with the equal-memory band and the lines ratio 1 and
    gain 0."""
    ax.set_xscale("log")
    ax.axvspan(1 - tol, 1 + tol, color="#999999", alpha=0.15, linewidth=0,
               label=f"equal memory (1 \u00b1 {tol:g})")
    ax.axvline(1.0, color="black", linewidth=1)
    ax.axhline(0.0, color="#999999", linewidth=0.8)
    ax.scatter([p["ratio"] for p in pts], [p["gain_pp"] for p in pts], s=30, zorder=3,
               c=[OKABE_BLUE if p["aligned"] else OKABE_VERMILLION for p in pts],
               edgecolors="black", linewidths=0.5)
    ax.grid(alpha=0.3, which="both")
    return ax


def _number(ax, pts, which, obstacles=(), font=7.5):
    """Number the points `which` (indices into pts) where the numbers overlap nothing."""
    fig = ax.figure
    scale = fig.dpi / 72
    labels = [str(i + 1) for i in which]
    xy = [tuple(ax.transData.transform((pts[i]["ratio"], pts[i]["gain_pp"]))) for i in which]
    others = [tuple(ax.transData.transform((p["ratio"], p["gain_pp"]))) for j, p in
              enumerate(pts) if j not in which]
    sizes = [(0.62 * font * len(t) * scale + 2, font * scale) for t in labels]
    box = ax.get_window_extent()
    bounds = (box.x0 + 2, box.y0 + 2, box.x1 - 2, box.y1 - 2)
    dots = [(x - 4, y - 4, x + 4, y + 4) for x, y in others if box.contains(x, y)]
    for text, i, (dx, dy) in zip(labels, which,
                                 place_labels(xy, sizes, bounds, list(obstacles) + dots)):
        far = (dx * dx + dy * dy) ** 0.5 > 8
        ax.annotate(text, (pts[i]["ratio"], pts[i]["gain_pp"]), xytext=(dx / scale, dy / scale),
                    textcoords="offset points", fontsize=font, zorder=4,
                    ha="left" if dx > 0 else "right" if dx < 0 else "center", va="center",
                    arrowprops=dict(arrowstyle="-", color="#444444", linewidth=0.6,
                                    shrinkA=0, shrinkB=3) if far else None)


def crowded(ax, pts, radius=14.0, least=3) -> list[int]:
    """Indices of the points with at least `least` others within `radius` display units."""
    import math
    xy = [tuple(ax.transData.transform((p["ratio"], p["gain_pp"]))) for p in pts]
    return [i for i, a in enumerate(xy)
            if sum(math.dist(a, b) < radius for b in xy) - 1 >= least]


def gain_ratio_figure(result: dict):
    """Reported gain (winner minus runner-up, pp) against memory ratio (winner / runner-up,
    log x): one point a claim numbered as in the claims table (the numbers placed where they
    overlap nothing; points too crowded for that numbered in a zoomed inset instead), the
    numbers' claim ids in a column beside it, a vertical line at ratio 1 and the tolerance
    band."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter
    pts = figure_points(result)
    tol, conv = result["tolerance"], result["convention"]
    fig = Figure(figsize=(11.0, 6.4), dpi=100)
    FigureCanvasAgg(fig)   # a renderer, to measure the legend the labels keep clear of
    ax = _panel(fig.add_axes((0.065, 0.09, 0.58, 0.82)), pts, tol)
    if pts:   # room for the band and every point on the log axis
        lo = min([p["ratio"] for p in pts] + [1 - tol])
        hi = max([p["ratio"] for p in pts] + [1 + tol])
        ax.set_xlim(lo / 1.4, hi * 1.4)
        gains = [p["gain_pp"] for p in pts] + [0.0]
        pad = 0.08 * (max(gains) - min(gains) or 1)
        ax.set_ylim(min(gains) - pad, max(gains) + pad)
    ax.scatter([], [], color=OKABE_VERMILLION, edgecolors="black", label="unequal memory")
    ax.scatter([], [], color=OKABE_BLUE, edgecolors="black", label="equal memory")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.tick_params(axis="x", which="minor", labelsize="x-small")
    ax.set_xlabel(f"memory ratio, winner / runner-up ({conv} convention, log scale)")
    ax.set_ylabel("reported gain, winner - runner-up (pp)")
    ax.legend(fontsize="small", loc="upper right")
    fig.suptitle(result["headline"], fontsize="medium", x=0.01, ha="left")
    lb = ax.get_legend().get_window_extent(fig.canvas.get_renderer())
    obstacles = [(lb.x0, lb.y0, lb.x1, lb.y1)]
    dense = crowded(ax, pts)
    if dense:   # a zoomed inset numbers the crowd; the main panel frames where it is
        inset = _inset(fig, ax, pts, dense, tol, obstacles)
        ib = inset.get_window_extent()
        obstacles.append((ib.x0 - 4, ib.y0 - 18, ib.x1 + 4, ib.y1 + 4))
    _number(ax, pts, [i for i in range(len(pts)) if i not in dense], obstacles)
    side = fig.add_axes((0.665, 0.09, 0.33, 0.82))
    side.axis("off")
    step = 1 / max(len(pts), 1)
    for i, p in enumerate(pts):
        side.text(0, 1 - (i + 0.5) * step, f"{i + 1:>2}  {p['id']}", fontsize=6.8,
                  va="center", family="monospace",
                  color=OKABE_BLUE if p["aligned"] else OKABE_VERMILLION)
    return fig


def _inset(fig, ax, pts, dense, tol, obstacles):
    """A zoom on the crowded points `dense` (linear axes, its ranges in its title), placed
    where it hides the fewest points and neither the legend nor the crowd."""
    import math
    from matplotlib.ticker import FormatStrFormatter, MaxNLocator
    rs = [pts[i]["ratio"] for i in dense]
    gs = [pts[i]["gain_pp"] for i in dense]
    lr = math.log(max(rs) / min(rs)) or 0.05
    x0, x1 = min(rs) * math.exp(-0.25 * lr), max(rs) * math.exp(0.25 * lr)
    dg = (max(gs) - min(gs)) or 1.0
    y0, y1 = min(gs) - 0.25 * dg, max(gs) + 0.25 * dg
    box = ax.get_window_extent()
    w, h = 0.36, 0.34                     # of the main panel
    xy = [tuple(ax.transAxes.inverted().transform(ax.transData.transform(
        (p["ratio"], p["gain_pp"])))) for p in pts]
    legend = ax.transAxes.inverted().transform([obstacles[0][:2], obstacles[0][2:]])
    frame = ax.transAxes.inverted().transform(ax.transData.transform([(x0, y0), (x1, y1)]))

    def cost(cx, cy):
        hidden = sum(cx - 0.03 <= x <= cx + w + 0.01 and cy - 0.08 <= y <= cy + h + 0.01
                     for x, y in xy)
        clash = (cx < legend[1][0] and cx + w > legend[0][0] and cy < legend[1][1]
                 and cy + h > legend[0][1]) or (cx < frame[1][0] and cx + w > frame[0][0]
                                                and cy < frame[1][1] and cy + h > frame[0][1])
        return hidden + (100 if clash else 0)

    spots = [(cx / 20, cy / 20) for cx in range(2, 13) for cy in range(2, 13)]
    cx, cy = min(spots, key=lambda c: (cost(*c), -c[0], -c[1]))
    inset = ax.inset_axes((cx, cy, w, h))
    _panel(inset, pts, tol)
    inset.set_xscale("linear")
    inset.set_xlim(x0, x1)
    inset.set_ylim(y0, y1)
    inset.xaxis.set_major_locator(MaxNLocator(5))
    inset.xaxis.set_major_formatter(FormatStrFormatter("%.3g"))
    inset.tick_params(labelsize=6, which="both")
    inset.set_title(f"zoom: ratio {x0:.3g} to {x1:.3g}, gain {y0:.2g} to {y1:.2g} pp",
                    fontsize=6.5)
    _number(inset, pts, dense)
    return inset


# ---------------------------------------------------------------- tables

def csv_records(result: dict) -> list[dict]:
    """One record a claim: its headline pair, both conventions, source and measurement."""
    out = []
    for c in result["claims"]:
        h = c["headline"]
        w, l = c["methods"][h["winner"]], c["methods"][h["loser"]]
        s = c["source"]
        out.append({
            "id": c["id"], "claim": c["claim"], "dataset": c["stream"]["dataset"],
            "init": c["stream"]["init"], "inc": c["stream"]["inc"],
            "tasks": c["stream"]["tasks"], "metric": c["metric"],
            "winner": w["name"], "winner_label": w["label"], "winner_accuracy": w["accuracy"],
            "runner_up": l["name"], "runner_up_label": l["label"],
            "runner_up_accuracy": l["accuracy"], "gain_pp": h["gain_pp"],
            "winner_strict_bytes": w["bytes"]["strict"],
            "runner_up_strict_bytes": l["bytes"]["strict"],
            "winner_memo_bytes": w["bytes"]["memo"], "runner_up_memo_bytes": l["bytes"]["memo"],
            "ratio_strict": h["ratio"]["strict"], "ratio_memo": h["ratio"]["memo"],
            "convention": result["convention"], "tolerance": result["tolerance"],
            "aligned": h["aligned"], "cheaper": c["methods"][h["cheaper"]]["name"],
            "extra_bytes": h["extra_bytes"], "extra_exemplars": h["extra_exemplars"],
            "extra_backbones": round(h["extra_backbones"], 3),
            "runnable": c["runnable"], "status": c["status"], "store": c["store"]["status"],
            "sweep_command": c["sweep_command"] or "",
            "citation": c["citation"], "url": s["url"], "commit": s.get("commit") or "",
            "table": s["table"], "row": s["row"], "column": s["column"],
            "credited_to": s.get("credited_to") or "", "erratum": s.get("erratum") or "",
            "flags": "; ".join(method_flags(c)), **_scaled_csv(c.get("scaled"))})
    return out


def _scaled_csv(sc: dict | None) -> dict:
    """The scaled-down measurement's columns (empty without one)."""
    comp = lambda side: ((sc or {}).get(side) or {}).get("comparison") or {}
    out = {"scaled_setting": "", "scaled_verdict": "", "scaled_ratio": "",
           "scaled_winner_exemplars": "", "scaled_loser_exemplars": "",
           "scaled_aligned_bytes": ""}
    for side in ("reported", "aligned"):
        out.update({f"scaled_{side}_{k}": "" for k in ("winner_mean", "loser_mean", "diff_pp",
                                                      "ci_low", "ci_high", "p", "test")})
    out["scaled_commands"] = ""
    if not sc:
        return out
    w, l = sc["methods"]
    out.update(scaled_setting=sc["label"], scaled_verdict=sc["verdict"], scaled_ratio=sc["ratio"],
               scaled_winner_exemplars=w["exemplars"], scaled_loser_exemplars=l["exemplars"],
               scaled_aligned_bytes=sc["aligned_budget_bytes"],
               scaled_commands=" && ".join(sc["commands"]))
    for side in ("reported", "aligned"):
        d, cp = sc.get(side) or {}, comp(side)
        out.update({f"scaled_{side}_winner_mean": (d.get("winner") or {}).get("mean", ""),
                    f"scaled_{side}_loser_mean": (d.get("loser") or {}).get("mean", ""),
                    f"scaled_{side}_diff_pp": cp.get("diff", ""),
                    f"scaled_{side}_ci_low": cp.get("ci_low", ""),
                    f"scaled_{side}_ci_high": cp.get("ci_high", ""),
                    f"scaled_{side}_p": cp.get("p_value", ""),
                    f"scaled_{side}_test": cp.get("test", "")})
    return out


# ---------------------------------------------------------------- scaled-down measurements

def _mean_ci(st: dict | None) -> str:
    """'31.2% [25.0, 37.4] (3 seeds)': mean and 95% t-interval over seeds."""
    if not st or not st.get("n"):
        return "not measured"
    if st["n"] < 2:
        return f"{st['mean']:.1f}% (1 seed, no interval)"
    return f"{st['mean']:.1f}% [{st['ci_low']:.1f}, {st['ci_high']:.1f}] ({st['n']} seeds)"


def _test_text(cp: dict | None) -> str:
    """'+3.1 pp, 95% CI [0.4, 5.8], paired t-test, p = 0.041'."""
    if not cp or not R.finite(cp.get("diff")):
        return "not measured"
    if not cp["testable"]:
        return f"{cp['diff']:+.1f} pp, {cp['test']}"
    return (f"{cp['diff']:+.1f} pp, 95% CI [{cp['ci_low']:.1f}, {cp['ci_high']:.1f}], "
            f"{cp['test']}, p = {cp['p_value']:.3g}")


def scaled_side_text(sc: dict, side: str) -> str:
    """One setting of the measurement: each method's mean and interval, their difference."""
    d = sc.get(side)
    w, l = sc["methods"]
    if not d:
        return sc["text"]
    return (f"{w['label']} {_mean_ci(d['winner'])}, {l['label']} {_mean_ci(d['loser'])}; "
            f"{_test_text(d['comparison'])}")


def scaled_memory_text(sc: dict) -> str:
    w, l = sc["methods"]
    bb = lambda m: f"{m['backbones']} backbones, " if m["backbones"] > 1 else ""
    return (f"{w['label']} {bb(w)}{_n(w['exemplars'])} exemplars ({_n(w['bytes'])} B) vs "
            f"{l['label']} {bb(l)}{_n(l['exemplars'])} ({_n(l['bytes'])} B): ratio "
            f"{sc['ratio']:.4f} (the claim's {sc['claim_ratio']:.4f}; every exemplar count of "
            f"the source x {sc['factor']:.4g}); at equal bytes both at "
            f"{_n(sc['aligned_budget_bytes'])} B" + "".join(f"; {n}" for n in sc["notes"]))


def scaled_facts(sc: dict) -> list[tuple[str, str]]:
    w, l = sc["methods"]
    cells = "; ".join(f"{m} at {', '.join(_n(b) for b in bs)} B" for m, bs in sc["cells"].items())
    return [("scaled-down setting", f"{sc['setting']} ({sc['label']})"),
            ("scaled memory", scaled_memory_text(sc)),
            ("measured at the reported memories", scaled_side_text(sc, "reported")),
            ("measured at equal bytes", scaled_side_text(sc, "aligned")),
            ("verdict", f"{sc['verdict']} ({sc['label']})"
             + "".join(f"; ! {f}" for f in sc["flags"])),
            ("cells read", cells + " (budgets within 1% of each other are one cell)"),
            ("reproduce", " && ".join(f"`{c}`" for c in sc["commands"]))]


def _scaled_rows(result: dict) -> tuple[list[str], list[list[str]]]:
    headers = ["claim", "winner vs runner-up", "exemplars (scaled)", "reported memories",
               "at equal bytes", "verdict"]
    rows = []
    for c in result["claims"]:
        sc = c.get("scaled")
        if not sc:
            continue
        w, l = sc["methods"]
        rows.append([c["id"], f"{w['label']} vs {l['label']}",
                     f"{_n(w['exemplars'])} / {_n(l['exemplars'])}",
                     scaled_side_text(sc, "reported"), scaled_side_text(sc, "aligned"),
                     sc["verdict"]])
    return headers, rows


def scaled_lines(result: dict) -> list[str]:
    """The verdicts as text lines, for the command line."""
    out = []
    for c in result["claims"]:
        sc = c.get("scaled")
        if sc and not sc.get("aligned"):
            out.append(f"{c['id']}: {sc['verdict']}")
        elif sc:
            out += [f"{c['id']}: {sc['verdict']} ({sc['label']})",
                    f"  at equal bytes: {scaled_side_text(sc, 'aligned')}",
                    f"  at the reported memories: {scaled_side_text(sc, 'reported')}"]
    return out


def method_flags(c: dict) -> list[str]:
    """What a reader must know about how a claim's methods were priced: unstated backbones."""
    return [f"{m['label']}: {m['backbone_flag']}" for m in c["methods"] if m["backbone_flag"]]


def _paper(m: dict) -> str:
    return f"arXiv {m['paper_arxiv']}" if m["paper_arxiv"] else m["paper_url"]


def _extra_text(m: dict) -> str:
    e = m["extra_params"]
    if not e:
        return ""
    where = ("inside the feature extractor: both conventions" if e["in_features"] else
             "class statistics: strict only")
    return f" [extra_params: {e['count']:,} {e['dtype']} ({where})]"


def _summary_rows(result: dict) -> tuple[list[str], list[list[str]]]:
    conv = result["convention"]
    headers = ["#", "claim", "winner", "runner-up", "gain (pp)",
               f"{conv} bytes (winner / runner-up)", "ratio strict", "ratio memo",
               "equal memory?", "measured at equal bytes"]
    rows = []
    for i, c in enumerate(result["claims"], 1):
        h = c["headline"]
        rows.append([str(i), c["id"], h["winner_label"], h["loser_label"], f"{h['gain_pp']:+.2f}",
                     f"{R.format_mib(h['bytes'][conv]['winner'], 2)} / "
                     f"{R.format_mib(h['bytes'][conv]['loser'], 2)}",
                     _ratio(h["ratio"]["strict"]), _ratio(h["ratio"]["memo"]),
                     "yes" if h["aligned"] else "NO", _measured(c)])
    return headers, rows


def _measured(c: dict) -> str:
    if c.get("scaled"):
        return f"{c['scaled']['verdict']} (scaled-down)"
    return c["store"]["status"]


def _method_rows(c: dict) -> tuple[list[str], list[list[str]]]:
    headers = ["method", "as the source names it", "paper", "accuracy (%)", "backbone",
               "backbones", "exemplars", "teacher", "strict (B)", "memo (B)", "priced",
               "what the source says"]
    rows = []
    for m in c["methods"]:
        note = m["keeps_note"] + _extra_text(m) + "".join(f" [{n}]" for n in m["notes"])
        backbone = m["backbone"] + (f" ({m['backbone_flag']})" if m["backbone_flag"] else "")
        rows.append([m["name"], m["label"], _paper(m), f"{m['accuracy']:g}", backbone,
                     str(m["backbones"]), _n(m["n_exemplars"]), "yes" if m["teacher"] else "no",
                     _n(m["bytes"]["strict"]), _n(m["bytes"]["memo"]),
                     "priced, not runnable here" if m["priced_only"] else "clbudget's cost model",
                     note])
    return headers, rows


def _claim_facts(c: dict) -> list[tuple[str, str]]:
    s, st = c["source"], c["stream"]
    where = f"{s['table']}; row: {s['row']}; column: {s['column']}"
    facts = [("source", c["citation"]),
             ("address", s["url"] + (f" (commit {s['commit']})" if s.get("commit") else "")),
             ("read from", where)]
    if s.get("credited_to"):
        facts.append(("credited to", s["credited_to"]))
    if s.get("erratum"):
        facts.append(("erratum", s["erratum"]))
    tasks = (f"{st['tasks']} tasks as the source states it"
             + (f" ({st['num_tasks']} with the base task)"
                if st["num_tasks"] != st["tasks"] else ""))
    split = (f"{st['dataset']} B{st['init']} Inc{st['inc']}, {tasks}" if st["init"] is not None
             else f"{st['dataset']}, a stream of {st['tasks']} tasks (one data set each)")
    shape = "x".join(map(str, st["image_shape"]))
    items = (f"{shape} uint8 images" if len(st["image_shape"]) == 3 else
             f"{shape}-d {st.get('input_dtype', 'float32')} feature vectors")
    facts.append(("stream", f"{split}; {st['num_classes']} classes of {items}; "
                            f"accuracy = {c['metric']}"))
    for flag in method_flags(c):
        facts.append(("flag", flag))
    for p in c["pairs"]:
        facts.append((f"{p['winner_label']} vs {p['loser_label']}",
                      f"{p['gain_pp']:+.2f} pp; {p['aligned_text']}; {p['hold_text']}"))
    facts.append(("at equal bytes", "; ".join([c["store"]["text"]] + [
        f"! {flag}" for flag in c["store"].get("flags", ())])))
    facts.append(("measure it", f"`{c['sweep_command']}`" if c["sweep_command"]
                  else c["status"]))
    if c.get("scaled"):
        facts += scaled_facts(c["scaled"])
    return facts


def _preamble(result: dict) -> list[str]:
    return [f"Memory ratio = the winner's bytes / the runner-up's (the other method with the "
            f"highest reported accuracy), {result['convention']} convention; equal memory = "
            f"ratio within 1 \u00b1 {result['tolerance']:g}. strict: every tensor kept across a "
            f"task boundary at its dtype (heads, BN statistics, teachers, exemplars and labels, "
            f"prompts, masks, class statistics); memo: feature-extractor parameters x 4 B + "
            f"exemplar pixels (MEMO, ICLR 2023). MiB = 2**20 bytes. Accuracies are the "
            f"sources' own numbers. Produced by `clbudget atlas`."]


# ---------------------------------------------------------------- Markdown, HTML

def _md(v) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def _md_table(headers, rows) -> list[str]:
    return (["| " + " | ".join(map(_md, headers)) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
            + ["| " + " | ".join(map(_md, r)) + " |" for r in rows])


def render_markdown(result: dict, figure: str | None = FIGURE) -> str:
    lines = ["# Claims atlas", "", f"**{result['headline']}**", ""] + _preamble(result) + [""]
    if figure:
        lines += [f"![reported gain against memory ratio]({figure})", "",
                  "The figure numbers each claim as the first column (#) of the claims table "
                  "below.", ""]
    lines += ["## Claims", ""] + _md_table(*_summary_rows(result))
    headers, rows = _scaled_rows(result)
    if rows:
        lines += ["", "## Scaled-down measurements", "", SCALED_INTRO, ""]
        lines += _md_table(headers, rows)
    for c in result["claims"]:
        lines += ["", f"## {c['id']}", "", c["claim"], ""]
        lines += [f"- **{k}**: {v}" for k, v in _claim_facts(c)]
        lines += [""] + _md_table(*_method_rows(c))
    return "\n".join(lines) + "\n"


_CSS = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:0.5em 0 1.5em}th,td{border:1px solid #ccc;"
        "padding:3px 8px;vertical-align:top}th{background:#f0f0f0}"
        "img{max-width:100%;border:1px solid #eee}code{background:#f4f4f4;padding:0 3px}")


def _html_table(headers, rows) -> str:
    e = html.escape
    return ("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in headers)
            + "</tr></thead><tbody>"
            + "".join("<tr>" + "".join(f"<td>{e(str(v))}</td>" for v in r) + "</tr>" for r in rows)
            + "</tbody></table>")


def render_html(result: dict, png: bytes | None = None) -> str:
    """A self-contained page: the figure embedded as a data URI."""
    e = html.escape
    parts = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
             "<title>clbudget claims atlas</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>Claims atlas</h1>", f"<p><strong>{e(result['headline'])}</strong></p>"]
    parts += [f"<p>{e(p)}</p>" for p in _preamble(result)]
    if png:
        data = base64.b64encode(png).decode("ascii")
        parts.append(f"<figure><img alt='reported gain against memory ratio' "
                     f"src='data:image/png;base64,{data}'><figcaption>{FIGURE}</figcaption>"
                     f"</figure><p>The figure numbers each claim as the first column (#) of "
                     f"the claims table below.</p>")
    parts += ["<h2>Claims</h2>", _html_table(*_summary_rows(result))]
    headers, rows = _scaled_rows(result)
    if rows:
        parts += ["<h2>Scaled-down measurements</h2>", f"<p>{e(SCALED_INTRO)}</p>",
                  _html_table(headers, rows)]
    for c in result["claims"]:
        parts += [f"<h2 id='{e(c['id'])}'>{e(c['id'])}</h2>", f"<p>{e(c['claim'])}</p>", "<ul>"]
        for k, v in _claim_facts(c):
            v = e(v)
            if k == "address":
                v = f"<a href='{e(c['source']['url'])}'>{v}</a>"
            parts.append(f"<li><strong>{e(k)}</strong>: {v.replace('`', '')}</li>")
        parts += ["</ul>", _html_table(*_method_rows(c))]
    parts.append("</body></html>")
    return "\n".join(parts)


# ---------------------------------------------------------------- files

def write_atlas(result: dict, out_dir) -> dict:
    """atlas.html, atlas.md, atlas.csv and atlas_gain_vs_ratio.png into `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"html": out_dir / "atlas.html", "markdown": out_dir / "atlas.md",
             "csv": out_dir / "atlas.csv", "figure": out_dir / FIGURE}
    gain_ratio_figure(result).savefig(files["figure"], dpi=150)
    files["html"].write_text(render_html(result, files["figure"].read_bytes()), encoding="utf-8")
    files["markdown"].write_text(render_markdown(result), encoding="utf-8")
    files["csv"].write_text(render_csv(csv_records(result)), encoding="utf-8")
    return {k: str(v) for k, v in files.items()}
