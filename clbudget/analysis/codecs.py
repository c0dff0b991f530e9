"""The report's view of storage choices (methods/codecs.py, budget/storage.py): per method,
codec, store dtype and budget, the exemplars bought and held and the accuracy; a figure of
accuracy vs bytes per codec (one panel per method) beside the Pareto front across every
(method, codec, store dtype) series.  Written only when a sweep holds a non-default choice.
"""
from __future__ import annotations

import math
from pathlib import Path

from clbudget.analysis import rows as R
from clbudget.analysis.pareto import pareto_mask
from clbudget.analysis.stats import compare_seeds, seed_stats

MIB = 2 ** 20


def storage_of(row) -> tuple[str, str]:
    s = R.spec_of(row)
    return s.get("codec", "raw"), s.get("store_dtype", "fp32")


def has_storage_choices(rows) -> bool:
    return any(storage_of(r) != ("raw", "fp32") for r in R.finished(rows))


def _raw_bytes_per_exemplar(row):
    """Pixels of one raw exemplar: the ledger's memory.images over the allocated count."""
    n = (row.get("allocation") or {}).get("n_exemplars")
    items = (row.get("ledger") or {}).get("items") or []
    pix = next((i["n_bytes"] for i in items if i.get("name") == "memory.images"), None)
    return pix / n if pix and n else None


def codec_cells(rows) -> list[dict]:
    """One record per (setting, method, codec, store dtype, budget): mean over seeds."""
    groups: dict[tuple, list] = {}
    for r in R.finished(rows):
        key = (R.setting_label(r), r.get("method"), *storage_of(r), r.get("budget_bytes"))
        groups.setdefault(key, []).append(r)
    out = []
    for (setting, method, codec, store, budget), rs in sorted(
            groups.items(), key=lambda kv: tuple(str(k) for k in kv[0][:4]) + (kv[0][4] or 0,)):
        alloc = rs[0].get("allocation") or {}
        last = seed_stats([R.accuracy_pct(r, "last") for r in rs])
        avg = seed_stats([R.accuracy_pct(r, "average_incremental") for r in rs])
        held = [r.get("exemplars_held") for r in rs if r.get("exemplars_held") is not None]
        used = [r["codec_used_bytes"] for r in rs if r.get("codec_used_bytes") is not None]
        out.append({"setting": setting, "method": method, "codec": codec, "store_dtype": store,
                    "budget_bytes": budget, "budget_mib": (budget or 0) / MIB,
                    "n_seeds": len(rs), "exemplars_allocated": alloc.get("n_exemplars"),
                    "exemplars_held": sum(held) / len(held) if held else None,
                    "bytes_per_exemplar": (sum(used) / sum(held) if used and held and sum(held)
                                           else _raw_bytes_per_exemplar(rs[0])),
                    "last": last.mean, "last_ci": last.half_width,
                    "average_incremental": avg.mean, "pareto": False,
                    "_seeds": {R.spec_of(r).get("seed"): R.accuracy_pct(r, "last") for r in rs}})
    _against_raw_fp32(out)
    by_setting: dict[str, list] = {}
    for c in out:
        if c["method"] != "finetune":
            by_setting.setdefault(c["setting"], []).append(c)
    for cs in by_setting.values():
        for c, on in zip(cs, pareto_mask([c["budget_bytes"] for c in cs],
                                         [c["last"] for c in cs])):
            c["pareto"] = on
    return out


def _against_raw_fp32(cells) -> None:
    """Each storage choice's last accuracy minus the same method's raw / fp32 cell at the same
    budget and setting: paired by seed when the seeds match (Welch otherwise), 95% CI."""
    seeds = [c.pop("_seeds") for c in cells]
    ref = {(c["setting"], c["method"], c["budget_bytes"]): i for i, c in enumerate(cells)
           if (c["codec"], c["store_dtype"]) == ("raw", "fp32")}
    for i, c in enumerate(cells):
        j = ref.get((c["setting"], c["method"], c["budget_bytes"]))
        c["vs_raw_fp32"] = None
        if j is not None and j != i:
            cmp = compare_seeds(seeds[i], seeds[j])
            c["vs_raw_fp32"] = {"diff": cmp.diff, "ci_low": cmp.ci_low, "ci_high": cmp.ci_high,
                                "test": cmp.test, "significant": cmp.significant}


def _fmt(v, nd=1):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def _delta(d) -> str:
    if d is None:
        return ""
    return (f"{d['diff']:+.1f} [{_fmt(d['ci_low'])}, {_fmt(d['ci_high'])}]"
            f"{' !' if d['significant'] else ''}")


def render_codec_markdown(cells) -> str:
    lines = ["## Storage choices: exemplars and accuracy per codec", "",
             "Exemplars allocated (the budget over the codec's expected bytes, measured on the "
             "first task's images) and held (after the last task; mean over seeds); bytes per "
             "held exemplar; last accuracy in % (+- 95% CI half-width); * = on the Pareto front "
             "of bytes vs last accuracy across codecs and methods; vs raw/fp32: last accuracy "
             "minus the same method's raw / fp32 cell at the same budget, in pp, [95% CI] of "
             "the paired t-test on matching seeds (Welch otherwise), ! = the CI excludes 0.", "",
             "| setting | method | codec | store | budget MiB | exemplars alloc. | held | "
             "B/exemplar | last % | vs raw/fp32 pp | avg inc % |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in cells:
        lines.append(f"| {c['setting']} | {c['method']} | {c['codec']} | {c['store_dtype']} | "
                     f"{c['budget_mib']:.3f} | {_fmt(c['exemplars_allocated'])} | "
                     f"{_fmt(c['exemplars_held'], 0)} | {_fmt(c['bytes_per_exemplar'], 0)} | "
                     f"{_fmt(c['last'])} +- {_fmt(c['last_ci'])}{' *' if c.get('pareto') else ''}"
                     f" | {_delta(c.get('vs_raw_fp32'))} | {_fmt(c['average_incremental'])} |")
    return "\n".join(lines) + "\n"


def write_codec_figure(cells, path: Path) -> Path:
    """Accuracy vs bytes, one panel per method (a line per codec / store dtype), and a last
    panel with every series and the Pareto front across codecs and methods."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    methods = sorted({c["method"] for c in cells if c["method"] != "finetune"})
    fig, axes = plt.subplots(1, len(methods) + 1, figsize=(4.2 * (len(methods) + 1), 3.6),
                             squeeze=False)
    axes = axes[0]
    series: dict[tuple, list] = {}
    for c in cells:
        if c["method"] != "finetune":
            series.setdefault((c["method"], c["codec"], c["store_dtype"]), []).append(c)
    marker = {m: mk for m, mk in zip(methods, "osD^v<>")}
    for (m, codec, store), cs in sorted(series.items()):
        cs = sorted(cs, key=lambda c: c["budget_bytes"])
        x = [c["budget_mib"] for c in cs]
        y = [c["last"] for c in cs]
        e = [c["last_ci"] if c["last_ci"] is not None and math.isfinite(c["last_ci"]) else 0
             for c in cs]
        name = f"{codec} / {store}"
        ax = axes[methods.index(m)]
        ax.errorbar(x, y, yerr=e, marker=marker[m], capsize=3, label=name)
        for c in cs:
            if c["exemplars_held"] is not None:
                ax.annotate(f"{c['exemplars_held']:.0f}", (c["budget_mib"], c["last"]),
                            textcoords="offset points", xytext=(4, -10), fontsize=7)
        axes[-1].plot(x, y, marker=marker[m], linestyle=":", label=f"{m} {name}", alpha=0.8)
    front = sorted((c for c in cells if c.get("pareto")), key=lambda c: c["budget_bytes"])
    if front:
        axes[-1].plot([c["budget_mib"] for c in front], [c["last"] for c in front], "k-",
                      linewidth=2, label="Pareto front")
    for ax, title in zip(axes, [*methods, "all: Pareto front"]):
        ax.set_title(title)
        ax.set_xlabel("budget (MiB, strict ledger)")
        ax.set_ylabel("last accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("accuracy vs bytes per storage choice: exemplar codec / store dtype of the frozen "
                 "networks (labels: exemplars held)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_codec_report(rows, out_dir: Path, figures_dir: Path | None = None) -> dict:
    """codecs.md, codecs.csv and figures/codecs.png into `out_dir` (nothing without storage
    choices); the PNG is also copied into `figures_dir`."""
    if not has_storage_choices(rows):
        return {}
    import csv
    import shutil
    cells = codec_cells(rows)
    out_dir = Path(out_dir)
    md = out_dir / "codecs.md"
    md.write_text(render_codec_markdown(cells) + "\n![codecs](figures/codecs.png)\n",
                  encoding="utf-8")
    table = out_dir / "codecs.csv"
    flat = []
    for c in cells:           # the paired comparison as columns
        d = c.get("vs_raw_fp32") or {}
        flat.append({**{k: v for k, v in c.items() if k != "vs_raw_fp32"},
                     **{f"vs_raw_fp32_{k}": d.get(k) for k in
                        ("diff", "ci_low", "ci_high", "test", "significant")}})
    with table.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(flat[0]))
        w.writeheader()
        w.writerows(flat)
    png = write_codec_figure(cells, out_dir / "figures" / "codecs.png")
    files = {"codecs_md": str(md), "codecs_csv": str(table), "codecs_png": str(png)}
    if figures_dir is not None:
        Path(figures_dir).mkdir(parents=True, exist_ok=True)
        files["codecs_copied"] = str(shutil.copy2(png, Path(figures_dir) / png.name))
    return files
