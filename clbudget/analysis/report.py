"""The report of a sweep: tables, figures, a self-contained HTML page, a Markdown summary and
a CSV export.  `build_report`, `report_tables` and the `render_*` functions are pure;
`write_report` writes files.

Tables (per setting): accuracy and costs per method and budget (mean over seeds, +- the
half-width of the 95% Student-t CI, "n/a" with one seed), AUC-A / AUC-L (MEMO Table 1's
scale: accuracy fraction x MiB), ledger totals under both conventions, and the failed runs with
their reasons.  Forgetting is shown under one named definition (`forgetting=`: "chaudhry", the
default, or "clipped", PyCIL's and Mammoth's; experiment/metrics.py FORGETTING); the CSV has both.
"""
from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

from clbudget.analysis import rows as R
from clbudget.analysis.auc import AUC_PCT_UNIT, AUC_UNIT
from clbudget.analysis.compute import class_order_scope
from clbudget.experiment.metrics import FORGETTING
from clbudget.analysis.summary import auc_summary, cell_summary, flat_cells

UNITS = {
    "accuracy": "% of test images of all seen classes (task-agnostic)",
    "forgetting": "percentage points (pp), mean over every task but the last",
    "budget": "MiB = 2**20 bytes (MEMO's tables say MB for the same unit)",
    "auc": f"{AUC_UNIT}; trapezoid under accuracy vs budget, MEMO ICLR 2023 section 5 "
           f"(auc.csv also has the areas in {AUC_PCT_UNIT})",
    "relative_time": "wall time / finetune's wall time on the same stream, device, epochs "
                     "(BMC); wall time swings with the machine's load, FLOPs do not; BMC rows: "
                     "relative time (critical path), slowest expert + consolidation per step",
    "flops": "training FLOPs per run and inference FLOPs per test image (FlopCounterMode: "
             "convolutions and matmuls, 2 per multiply-add); GFLOPs = 10^9",
    "cost_accuracy": "% per MiB: last accuracy / total cost (BMC)",
    "total_cost": "strict ledger bytes + communication bytes (BMC)",
    "ci": "95% CI of the mean over seeds, Student t, std with ddof=1; n/a with one seed; "
          "each table and headline says how the class order varied over those seeds (fixed: "
          "one order for every seed, so the interval leaves class-order variance out; "
          "per-seed: each seed its own order, so it includes it)",
}


def build_report(rows, forgetting: str = "chaudhry") -> dict:
    """Everything the report shows, as data (JSON-ready apart from float NaNs).  `forgetting`
    names the definition the tables show (metrics.FORGETTING)."""
    if forgetting not in FORGETTING:
        from clbudget.streams.catalog import nearest
        raise ValueError(f"unknown forgetting definition {forgetting!r}; use one of "
                         f"{', '.join(FORGETTING)} (nearest: {nearest(forgetting, FORGETTING)})")
    cells = cell_summary(rows)
    failed = [{"run_key": r.get("run_key"), "method": r.get("method"),
               "setting": R.setting_label(r), "budget": R.spec_of(r).get("budget"),
               "seed": R.spec_of(r).get("seed", r.get("seed")),
               "reason": r.get("reason") or "(no reason recorded)"} for r in R.failed(rows)]
    finished = R.finished(rows)
    from clbudget.analysis.compute import headlines, mark_bytes_flops_pareto, provenance
    mark_bytes_flops_pareto(cells)
    return {
        "n_runs": len(rows), "n_finished": len(finished), "n_failed": len(failed),
        "settings": sorted({c["setting_label"] for c in cells}),
        "cells": cells, "auc": auc_summary(cells), "failed": failed,
        "forgetting": forgetting,
        "units": {**UNITS, "forgetting": f"{UNITS['forgetting']}; {forgetting_label(forgetting)}"},
        "recipe_warnings": recipe_warnings_of(cells),
        "provenance": provenance(rows), "headlines": headlines(cells),
    }


def recipe_warnings_of(cells) -> list[str]:
    """Per setting whose methods' recipes train differently: which method used which."""
    out = []
    for setting in sorted({c["setting_label"] for c in cells}):
        cs = [c for c in cells if c["setting_label"] == setting and c.get("recipes_differ")]
        if cs:
            used = sorted({f"{c['label']}: {c['recipe']}" for c in cs})
            out.append(f"{setting}: methods trained with different recipes (equal bytes, "
                       f"unequal training): {'; '.join(used)}")
    return out


def _recipe_cell(c) -> str:
    return c.get("recipe", "n/a") + (" (differs)" if c.get("recipes_differ") else "")


@dataclass(frozen=True)
class Table:
    title: str
    caption: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def _ok(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def fmt_ci(s: dict, digits: int = 2) -> str:
    """'71.23 +- 1.05' (CI half-width); 'n/a (1 seed)' for the CI of a single seed."""
    if not _ok(s.get("mean")):
        return "n/a"
    if not _ok(s.get("ci_low")):
        return f"{s['mean']:.{digits}f} (CI n/a, {s['n']} seed)"
    return f"{s['mean']:.{digits}f} ± {(s['ci_high'] - s['ci_low']) / 2:.{digits}f}"


def fmt_bytes(v) -> str:
    return "n/a" if not _ok(v) else f"{int(round(v)):,}"


def fmt_mib(v, digits: int = 2) -> str:
    return "n/a" if not _ok(v) else f"{v / R.MIB:.{digits}f}"


def _front(flag) -> str:
    return {True: "yes", False: "", None: "n/a"}[flag]


def forgetting_label(definition: str) -> str:
    return f"forgetting = {definition}: {FORGETTING[definition]}"


def report_tables(report: dict) -> list[Table]:
    """The report's tables, cell text already formatted (shared by HTML and Markdown)."""
    tables = []
    forgetting = report.get("forgetting", "chaudhry")
    for setting in report["settings"]:
        cells = [c for c in report["cells"] if c["setting_label"] == setting]
        rows = []
        for c in cells:
            s = c["stats"]
            name = c["label"] + ("" if c["budgeted"] else " (not budgeted)")
            rows.append((name, fmt_mib(c["budget_bytes"]), _recipe_cell(c), str(c["n_seeds"]),
                         c.get("class_order", "n/a"), fmt_ci(s["last"]), fmt_ci(s["average_incremental"]),
                         fmt_ci(s[f"forgetting_{forgetting}"]), fmt_ci(s["relative_time"]),
                         fmt_ci(s["cost_accuracy"], 3), fmt_mib(s["total_cost_bytes"]["mean"]),
                         _front(c.get("pareto_cost")), _front(c.get("pareto_time"))))
        tables.append(Table(
            f"Accuracy and cost — {setting}",
            "mean over seeds ± half-width of the 95% CI (Student t) — "
            f"{class_order_scope(c.get('class_order') for c in cells)}; accuracy in %, forgetting "
            f"in pp ({forgetting_label(forgetting)}), relative wall time in x finetune, "
            "cost-accuracy in % per MiB, total cost in MiB "
            "(strict ledger + communication); Pareto: on the front of accuracy vs total cost / "
            "vs relative wall time; recipe: the training recipe and its fingerprint, '(differs)' "
            "when the methods of this setting were trained differently",
            ("method", "budget (MiB)", "recipe [fingerprint]", "seeds", "class order",
             "last acc (%)",
             "avg inc acc (%)", f"forgetting, {forgetting} (pp)", "relative wall time (x)",
             "cost-accuracy (% per MiB)", "total cost (MiB)", "Pareto cost", "Pareto wall time"),
            tuple(rows)))
        from clbudget.analysis.compute import COMPUTE_CAPTION, COMPUTE_HEADERS, compute_rows
        tables.append(Table(f"Compute — {setting}", f"{COMPUTE_CAPTION} — "
                            f"{class_order_scope(c.get('class_order') for c in cells)}",
                            COMPUTE_HEADERS, tuple(compute_rows(cells))))
        aucs = [a for a in report["auc"] if a["setting_label"] == setting]
        if aucs:
            tables.append(Table(
                f"AUC-A and AUC-L — {setting}",
                "area under average-incremental (AUC-A) and last (AUC-L) accuracy vs budget; "
                "x in MiB, y as a fraction, trapezoid rule (MEMO, ICLR 2023): the unit of MEMO's "
                "Table 1, which it writes MB and computes in MiB; mean over seeds that ran every "
                "budget ± 95% CI half-width — "
                + aucs[0].get("class_order_scope", "class order not recorded"),
                ("method", "budgets", "range (MiB)", "AUC-A (MB = MiB x fraction, MEMO Table 1)",
                 "AUC-L (MB = MiB x fraction, MEMO Table 1)", "comparable"),
                tuple((a["label"], str(a["n_budgets"]),
                       f"{fmt_mib(a['budgets_bytes'][0])} – {fmt_mib(a['budgets_bytes'][-1])}",
                       fmt_ci(a["auc_a"], 2), fmt_ci(a["auc_l"], 2),
                       {True: "yes", False: "no: other budgets",
                        None: "n/a (one budget)"}[a["comparable"]])
                      for a in aucs)))
        tables.append(Table(
            f"Ledger totals — {setting}",
            "bytes held after the last task (first seed); strict: every retained tensor at its "
            "dtype; memo: feature-extractor parameters x 4 B + exemplar pixels",
            ("method", "budget (B)", "recipe [fingerprint]", "backbone", "x", "exemplars",
             "strict (B)", "memo (B)", "model (B)", "exemplars (B)", "other (B)",
             "communication (B)"),
            tuple((c["label"], fmt_bytes(c["budget_bytes"]), _recipe_cell(c), str(c["backbone"]),
                   str(c["expansion"]), fmt_bytes(c["n_exemplars"]),
                   fmt_bytes(c["stats"]["ledger_strict_bytes"]["mean"]),
                   fmt_bytes(c["stats"]["ledger_memo_bytes"]["mean"]),
                   fmt_bytes(c["breakdown"]["model"]), fmt_bytes(c["breakdown"]["exemplars"]),
                   fmt_bytes(c["breakdown"]["other"]),
                   fmt_bytes(c["stats"]["communication_bytes"]["mean"])) for c in cells)))
    if report["failed"]:
        tables.append(Table(
            "Failed runs", "runs that did not finish, with the reason recorded by the sweep",
            ("method", "setting", "budget", "seed", "run key", "reason"),
            tuple((f["method"] or "?", f["setting"], str(f["budget"]), str(f["seed"]),
                   str(f["run_key"]), f["reason"]) for f in report["failed"])))
    return tables


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:0.9em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f0f0f0} td:first-child,th:first-child{text-align:left}
caption{caption-side:bottom;text-align:left;font-size:0.85em;color:#555;padding-top:4px}
img{max-width:100%;border:1px solid #eee;margin:0.5em 0}
dt{font-weight:600} code{background:#f4f4f4;padding:0 3px}"""


def render_html(report: dict, images: dict) -> str:
    """A self-contained page: `images` {name: PNG bytes} embedded as base64 data URIs."""
    e = html.escape
    parts = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
             "<title>clbudget report</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>clbudget report</h1>",
             f"<p>{report['n_finished']} finished runs, {report['n_failed']} failed; settings: "
             f"{e(', '.join(report['settings']) or 'none')}.</p>"]
    parts += [f"<p><strong>warning</strong>: {e(w)}</p>" for w in report.get("recipe_warnings", ())]
    parts.append("<h2>Provenance</h2><ul>" + "".join(
        f"<li>{e(k.replace('_', ' '))}: {e('; '.join(map(str, v)))}</li>"
        for k, v in report["provenance"].items()) + "</ul>")
    if report.get("headlines"):
        parts.append("<h2>Headlines</h2><ul>" + "".join(
            f"<li>{e(h['setting'])}: {e(h['text'])}</li>" for h in report["headlines"])
            + "</ul>")
    parts.append("<h2>Units</h2><dl>")
    parts += [f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in report["units"].items()]
    parts.append("</dl>")
    for t in report_tables(report):
        parts.append(f"<h2>{e(t.title)}</h2><table><caption>{e(t.caption)}</caption><thead><tr>"
                     + "".join(f"<th>{e(h)}</th>" for h in t.headers) + "</tr></thead><tbody>")
        parts += ["<tr>" + "".join(f"<td>{e(v)}</td>" for v in row) + "</tr>" for row in t.rows]
        parts.append("</tbody></table>")
    if images:
        parts.append("<h2>Figures</h2>")
    for name, png in images.items():
        data = base64.b64encode(png).decode("ascii")
        parts.append(f"<figure><img alt='{e(name)}' src='data:image/png;base64,{data}'>"
                     f"<figcaption>{e(name.replace('_', ' '))}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _md_cell(v: str) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def render_markdown(report: dict, image_paths: dict | None = None) -> str:
    """A Markdown summary; `image_paths` {name: relative PNG path} are linked."""
    lines = ["# clbudget report", "",
             f"{report['n_finished']} finished runs, {report['n_failed']} failed; settings: "
             f"{', '.join(report['settings']) or 'none'}.", ""]
    lines += [f"**warning**: {w}" for w in report.get("recipe_warnings", ())]
    if report.get("recipe_warnings"):
        lines.append("")
    lines += ["## Provenance", ""]
    lines += [f"- **{k.replace('_', ' ')}**: {'; '.join(map(str, v))}"
              for k, v in report["provenance"].items()]
    if report.get("headlines"):
        lines += ["", "## Headlines", ""]
        lines += [f"- {h['setting']}: {h['text']}" for h in report["headlines"]]
    lines += ["", "Units:", ""]
    lines += [f"- **{k}**: {v}" for k, v in report["units"].items()]
    for t in report_tables(report):
        lines += ["", f"## {t.title}", "", "| " + " | ".join(map(_md_cell, t.headers)) + " |",
                  "|" + "|".join("---" for _ in t.headers) + "|"]
        lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in t.rows]
        lines += ["", f"_{t.caption}_"]
    if image_paths:
        lines += ["", "## Figures", ""]
        lines += [f"![{name}]({path})" for name, path in image_paths.items()]
    return "\n".join(lines) + "\n"


def render_csv(records: list[dict]) -> str:
    """Records as CSV (header from the first record's keys); NaN and None written empty."""
    if not records:
        return ""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(records[0]), lineterminator="\n")
    w.writeheader()
    for rec in records:
        w.writerow({k: ("" if v is None or (isinstance(v, float) and math.isnan(v)) else v)
                    for k, v in rec.items()})
    return buf.getvalue()


def auc_records(report: dict) -> list[dict]:
    out = []
    for a in report["auc"]:
        rec = {"setting": a["setting_label"], "series": a["label"], "method": a["method"],
               "n_budgets": a["n_budgets"],
               "budgets_bytes": " ".join(map(str, a["budgets_bytes"])),
               "comparable": a["comparable"], "unit": a["unit"], "unit_pct": a["unit_pct"]}
        for name in ("auc_a", "auc_l", "auc_a_pct", "auc_l_pct"):   # MEMO scale, then % x MiB
            for k in ("mean", "std", "ci_low", "ci_high", "n"):
                rec[f"{name}_{k}"] = a[name][k]
        out.append(rec)
    return out


def json_safe(obj):
    """NaN/inf -> None, tuples -> lists, non-string keys -> strings: strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_report(rows, out_dir, *, figures_dir=None, forgetting: str = "chaudhry") -> dict:
    """Write figures (PNG + PDF), report.html (self-contained), summary.md, table.csv,
    auc.csv and report.json into `out_dir`; copy the Pareto PNG(s) into `figures_dir` if given.
    Returns {"report": the built report, "files": {...}}."""
    from clbudget.analysis.plots import write_figures
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = build_report(rows, forgetting)
    figures = write_figures(report["cells"], out_dir / "figures") if report["cells"] else {}
    from clbudget.analysis.compute import write_compute_figures
    figures.update(write_compute_figures(report["cells"], out_dir / "figures"))
    pngs = {name: next(p for p in paths if p.suffix == ".png") for name, paths in figures.items()}
    from clbudget.analysis.codecs import codec_cells, render_codec_markdown, write_codec_report
    codec_files = write_codec_report(rows, out_dir, figures_dir)   # storage choices, if any
    if codec_files:
        pngs["codecs_accuracy_vs_bytes"] = Path(codec_files["codecs_png"])
        figures["codecs_accuracy_vs_bytes"] = [Path(codec_files["codecs_png"])]
    files = {"html": out_dir / "report.html", "markdown": out_dir / "summary.md",
             "csv": out_dir / "table.csv", "auc_csv": out_dir / "auc.csv",
             "json": out_dir / "report.json"}
    files["html"].write_text(render_html(report, {n: p.read_bytes() for n, p in pngs.items()}),
                             encoding="utf-8")
    files["markdown"].write_text(render_markdown(
        report, {n: p.relative_to(out_dir).as_posix() for n, p in pngs.items()}), encoding="utf-8")
    if codec_files:   # the per-codec table in the summary too
        with files["markdown"].open("a", encoding="utf-8") as f:
            f.write("\n" + render_codec_markdown(codec_cells(rows)))
    files["csv"].write_text(render_csv(flat_cells(report["cells"])), encoding="utf-8")
    files.update({k: Path(v) for k, v in codec_files.items()})
    files["auc_csv"].write_text(render_csv(auc_records(report)), encoding="utf-8")
    files["json"].write_text(json.dumps(json_safe(report), indent=1), encoding="utf-8")
    copied = []
    if figures_dir is not None:
        figures_dir = Path(figures_dir)
        figures_dir.mkdir(parents=True, exist_ok=True)
        for name, png in pngs.items():
            if name.startswith("pareto"):
                copied.append(Path(shutil.copy2(png, figures_dir / png.name)))
    return {"report": report, "files": {**{k: str(v) for k, v in files.items()},
                                        "figures": {n: [str(p) for p in ps]
                                                    for n, ps in figures.items()},
                                        "copied": [str(p) for p in copied]}}
