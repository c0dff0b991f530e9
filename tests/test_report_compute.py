"""The report's compute, provenance and headlines; clbudget.load_results."""
from __future__ import annotations

import pytest
from scipy import stats as sps

import clbudget
from clbudget.analysis.compute import headlines, pareto_mask_costs, provenance
from clbudget.analysis.report import build_report, render_markdown
from clbudget.analysis.summary import cell_summary
from tests.helpers import cli
from tests.test_analysis import MIB, make_row


def with_flops(row, train_flops, command="clbudget sweep ..."):
    row = dict(row, train_flops=train_flops, inference_flops_per_image=train_flops // 1000,
               command=command)
    row["environment"] = dict(row["environment"], date_utc="2026-12-01T10:00:00+00:00")
    return row


def test_pareto_over_bytes_and_flops_by_hand():
    # (bytes, flops) -> accuracy; b is dominated by a (same bytes, more flops, lower acc);
    # c costs more bytes but fewer flops: on the front; d ties a exactly: both on it.
    costs = [(1, 10), (1, 20), (2, 5), (1, 10), (3, 30), (None, 1)]
    ys = [50, 40, 45, 50, 60, 99]
    assert pareto_mask_costs(costs, ys) == [True, False, True, True, True, False]


def test_headline_names_the_best_and_the_paired_test():
    lasts = {"icarl": [0.58, 0.59, 0.585], "der": [0.57, 0.60, 0.575], "replay": [0.40, 0.41, 0.42]}
    rows = [with_flops(make_row(m, 8 * MIB, s, last=v), 10 ** 12)
            for m, vals in lasts.items() for s, v in enumerate(vals)]
    [h] = headlines(cell_summary(rows))
    p_der = sps.ttest_rel([100 * v for v in lasts["icarl"]], [100 * v for v in lasts["der"]]).pvalue
    p_rep = sps.ttest_rel([100 * v for v in lasts["icarl"]],
                          [100 * v for v in lasts["replay"]]).pvalue
    assert h["best"] == "iCaRL"
    assert h["text"].startswith("at 8.00 MiB: best iCaRL 58.5 ± 1.2; ")
    assert f"DER not significantly different (p={p_der:.2f})" in h["text"]
    assert f"Replay 17.5 pp lower (p={p_rep:.2g})" in h["text"]


def test_report_opens_with_provenance_and_shows_compute():
    rows = [with_flops(make_row("replay", MIB, 0, last=0.4), 2 * 10 ** 12),
            with_flops(make_row("der", MIB, 0, last=0.5), 8 * 10 ** 12, "clbudget run --x")]
    report = build_report(rows)
    prov = report["provenance"]
    assert prov["commands"] == ["clbudget run --x", "clbudget sweep ..."]
    assert prov["dates"] == ["2026-12-01T10:00:00+00:00"] and prov["git_revisions"] == ["abc"]
    md = render_markdown(report)
    assert md.index("## Provenance") < md.index("## Headlines") < md.index("## Accuracy")
    assert "- **commands**: clbudget run --x; clbudget sweep ..." in md
    compute = next(line for line in md.splitlines() if line.startswith("| DER | 1.00 | 8,000 | 8,000.00 |"))
    assert compute.endswith("| yes |")            # DER: most accurate, so on the front
    assert "relative wall time (x)" in md
    assert provenance([])["commands"] == ["not recorded"]


def test_sweep_report_and_load_results(tmp_path, capsys):
    out = tmp_path / "s"
    argv = ["sweep", "--methods", "replay", "--budgets", "5xconv2+300ex", "--seeds", "0",
            "--glyphs", "num_classes=6", "--glyphs", "train_per_class=40",
            "--glyphs", "test_per_class=12", "--glyphs", "image_size=16", "--init", "0",
            "--inc", "2", "--backbone", "conv2", "--epochs", "1", "--device", "cpu",
            "--out", str(out), "--report", str(tmp_path / "r")]
    code, _, err = cli(capsys, *argv)
    assert code == 0, err
    figures = {p.name for p in (tmp_path / "r" / "figures").iterdir()}
    assert {"accuracy_vs_train_flops.png", "pareto_bytes_flops.png"} <= figures
    html = (tmp_path / "r" / "report.html").read_text()
    assert html.index("Provenance") < html.index("Units")
    assert "clbudget sweep --methods replay" in html

    df = clbudget.load_results(out)
    assert sorted(df["method"]) == ["finetune", "replay"] and len(df) == 2
    r = df.set_index("method").loc["replay"]
    assert r["train_flops"] > 0 and r["spec_seed"] == 0 and r["backbone"] == "conv2"
    assert r["command"].startswith("clbudget sweep --methods replay")
    assert 0 <= r["last"] <= 1 and r["ledger_strict_bytes"] <= r["budget_bytes"]
    with pytest.raises(FileNotFoundError, match="no results store"):
        clbudget.load_results(tmp_path / "nothing")


def test_table_cells_print_the_ci_half_width_in_markdown_and_html():
    # A literal interval in, its half-width out: mean 50.0, 95% CI [46.0, 54.0] is
    # "50.00 ± 4.00" (half of 54 - 46 = 8), never "± 8.00", in both renderings of the tables;
    # training FLOPs 2e12 with CI [1.5e12, 2.5e12] print as "2,000 ± 500" GFLOPs.
    from clbudget.analysis.report import render_html
    rows = [make_row("replay", MIB, s, last=0.5) for s in range(3)]
    report = build_report(rows)
    [cell] = report["cells"]
    cell["stats"]["last"] = {"n": 3, "mean": 50.0, "std": 1.0, "ci_low": 46.0, "ci_high": 54.0}
    cell["stats"]["cost_accuracy"] = {"n": 3, "mean": 0.5, "std": 0.1, "ci_low": 0.25,
                                      "ci_high": 0.75}
    cell["stats"]["train_flops"] = {"n": 3, "mean": 2e12, "std": 1e11, "ci_low": 1.5e12,
                                    "ci_high": 2.5e12}
    md = render_markdown(report)
    accuracy = next(line for line in md.splitlines() if line.startswith("| Replay | 1.00 |")
                    and "50.00" in line)
    assert "| 50.00 ± 4.00 |" in accuracy and "| 0.500 ± 0.250 |" in accuracy
    assert "± 8.00" not in md
    assert "| 2,000 ± 500 |" in md
    page = render_html(report, {})
    assert "<td>50.00 ± 4.00</td>" in page and "<td>0.500 ± 0.250</td>" in page
    assert "<td>2,000 ± 500</td>" in page and "± 8.00" not in page
