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


def gain_ratio_figure(result: dict):
    """Reported gain (winner minus runner-up, pp) against memory ratio (winner / runner-up,
    log x): one labelled point a claim, a vertical line at ratio 1 and the tolerance band."""
    from matplotlib.figure import Figure
    pts = figure_points(result)
    tol, conv = result["tolerance"], result["convention"]
    fig = Figure(figsize=(7.5, 5.0), layout="constrained")
    ax = fig.subplots()
    ax.set_xscale("log")
    ax.axvspan(1 - tol, 1 + tol, color="#999999", alpha=0.15, linewidth=0,
               label=f"equal memory (1 \u00b1 {tol:g})")
    ax.axvline(1.0, color="black", linewidth=1)
    ax.axhline(0.0, color="#999999", linewidth=0.8)
    ax.scatter([p["ratio"] for p in pts], [p["gain_pp"] for p in pts], s=36, zorder=3,
               c=[OKABE_BLUE if p["aligned"] else OKABE_VERMILLION for p in pts],
               edgecolors="black", linewidths=0.5)
    for p in pts:
        ax.annotate(p["id"], (p["ratio"], p["gain_pp"]), xytext=(4, 3),
                    textcoords="offset points", fontsize=6)
    if pts:   # room for the band and every point on the log axis
        lo = min([p["ratio"] for p in pts] + [1 - tol])
        hi = max([p["ratio"] for p in pts] + [1 + tol])
        ax.set_xlim(lo / 1.3, hi * 1.3)
    ax.scatter([], [], color=OKABE_VERMILLION, edgecolors="black", label="unequal memory")
    ax.scatter([], [], color=OKABE_BLUE, edgecolors="black", label="equal memory")
    from matplotlib.ticker import FuncFormatter
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.tick_params(axis="x", which="minor", labelsize="x-small")
    ax.set_xlabel(f"memory ratio, winner / runner-up ({conv} convention, log scale)")
    ax.set_ylabel("reported gain, winner - runner-up (pp)")
    ax.set_title(result["headline"], fontsize="small")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small", loc="best")
    return fig


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
            "credited_to": s.get("credited_to") or "", "erratum": s.get("erratum") or ""})
    return out


def _summary_rows(result: dict) -> tuple[list[str], list[list[str]]]:
    conv = result["convention"]
    headers = ["claim", "winner", "runner-up", "gain (pp)", f"{conv} bytes (winner / runner-up)",
               "ratio strict", "ratio memo", "equal memory?", "measured at equal bytes"]
    rows = []
    for c in result["claims"]:
        h = c["headline"]
        rows.append([c["id"], h["winner_label"], h["loser_label"], f"{h['gain_pp']:+.2f}",
                     f"{R.format_mib(h['bytes'][conv]['winner'], 2)} / "
                     f"{R.format_mib(h['bytes'][conv]['loser'], 2)}",
                     _ratio(h["ratio"]["strict"]), _ratio(h["ratio"]["memo"]),
                     "yes" if h["aligned"] else "NO", c["store"]["status"]])
    return headers, rows


def _method_rows(c: dict) -> tuple[list[str], list[list[str]]]:
    headers = ["method", "as the source names it", "accuracy (%)", "backbone", "backbones",
               "exemplars", "teacher", "strict (B)", "memo (B)", "priced", "what the source says"]
    rows = []
    for m in c["methods"]:
        note = m["keeps_note"] + "".join(f" [{n}]" for n in m["notes"])
        rows.append([m["name"], m["label"], f"{m['accuracy']:g}", m["backbone"],
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
    facts.append(("stream", f"{st['dataset']} B{st['init']} Inc{st['inc']}, {tasks}; "
                            f"{st['num_classes']} classes of "
                            f"{'x'.join(map(str, st['image_shape']))} uint8 images; "
                            f"accuracy = {c['metric']}"))
    for p in c["pairs"]:
        facts.append((f"{p['winner_label']} vs {p['loser_label']}",
                      f"{p['gain_pp']:+.2f} pp; {p['aligned_text']}; {p['hold_text']}"))
    facts.append(("at equal bytes", "; ".join([c["store"]["text"]] + [
        f"! {flag}" for flag in c["store"].get("flags", ())])))
    facts.append(("measure it", f"`{c['sweep_command']}`" if c["sweep_command"]
                  else c["status"]))
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
        lines += [f"![reported gain against memory ratio]({figure})", ""]
    lines += ["## Claims", ""] + _md_table(*_summary_rows(result))
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
                     f"</figure>")
    parts += ["<h2>Claims</h2>", _html_table(*_summary_rows(result))]
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
