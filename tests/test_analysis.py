"""analysis/: AUC, Pareto, seed statistics, relative time, cost-accuracy, figures, report.

Everything runs on synthetic result rows built by `make_row` (the shape of
`run_experiment`'s rows), checked against numbers computed by hand.
"""
import hashlib
import json
import math

import pytest
from scipy import stats as sps

from clbudget.analysis import rows as R
from clbudget.analysis.auc import auc_mib, trapezoid
from clbudget.analysis.pareto import pareto_front, pareto_mask
from clbudget.analysis.stats import compare_seeds, paired_test, seed_stats, welch_test
from clbudget.analysis.summary import auc_summary, cell_summary, flat_cells

MIB = 2 ** 20
T975_2 = 4.302652729911275  # t(0.975, df=2), from tables


def make_row(method, budget_bytes, seed, *, last=0.5, aia=None, wall_s=10.0, dataset="cifar100",
             init=0, inc=10, num_classes=None, epochs=None, class_order_seed=1993,
             backbone="resnet32", expansion=1, n_exemplars=0, strict=None, memo=None,
             by_kind=None, comm=0, T=3, device="cpu", convention="strict", budgeted=True,
             spec_backbone=None, class_order=None):
    """A finished result row as `run_experiment` returns it (accuracies as fractions)."""
    strict = budget_bytes if strict is None else strict
    memo = strict if memo is None else memo
    by_kind = by_kind or {"params": strict}
    spec = {"method": method, "dataset": dataset, "budget": str(budget_bytes), "init": init,
            "inc": inc, "epochs": epochs, "seed": seed, "class_order_seed": class_order_seed,
            "backbone": spec_backbone, "convention": convention, "num_classes": num_classes,
            "max_per_class": None, "max_test_per_class": None, "device": device,
            "method_options": {}, "glyphs_options": {}}
    key = hashlib.sha256(json.dumps([spec, last, wall_s], sort_keys=True).encode()).hexdigest()
    matrix = [[(last if t == T - 1 else 0.8) if j <= t else None for j in range(T)]
              for t in range(T)]
    return {
        "run_key": key[:16], "status": "finished", "method": method, "spec": spec,
        "budget_bytes": budget_bytes, "budgeted": budgeted,
        "allocation": {"backbone": backbone, "expansion": expansion, "n_exemplars": n_exemplars,
                       "total_bytes": strict, "budget_bytes": budget_bytes},
        "ledger": {"convention": "strict", "total_bytes": strict, "by_kind": by_kind},
        "ledger_memo": {"convention": "memo", "total_bytes": memo, "by_kind": {"params": memo}},
        "cost_figures": {"communication_bytes": comm} if comm else {},
        "accuracy": {"last": last, "average_incremental": last + 0.1 if aia is None else aia,
                     "forgetting": 0.1, "bwt": -0.1, "matrix": matrix},
        "num_tasks": T, "seed": seed, "class_order_seed": class_order_seed,
        "class_order": class_order or list(range(30)), "wall_s": wall_s,
        "peak_memory_bytes": 1000, "environment": {"device": device, "device_name": device,
                                                   "git_revision": "abc", "torch": "2.13"},
    }


def failed_row(method, seed, reason):
    return {"run_key": f"fail-{method}-{seed}", "status": "failed", "method": method,
            "spec": {"method": method, "dataset": "cifar100", "init": 0, "inc": 10,
                     "budget": "1MiB", "seed": seed}, "reason": reason}


# ---------------------------------------------------------------- AUC (MEMO)

def test_auc_trapezoid_by_hand_in_mib():
    # budgets 1, 2, 4 MiB; accuracy 50, 60, 70 %: 1*(50+60)/2 + 2*(60+70)/2 = 55 + 130
    assert auc_mib([MIB, 2 * MIB, 4 * MIB], [50, 60, 70]) == pytest.approx(185.0)
    assert auc_mib([4 * MIB, MIB, 2 * MIB], [70, 50, 60]) == pytest.approx(185.0)  # any order
    # bytes, not MiB, are the input: 1.5 MiB wide at constant 40 % = 60 % x MiB
    assert auc_mib([MIB // 2, 2 * MIB], [40, 40]) == pytest.approx(60.0)
    assert math.isnan(auc_mib([MIB], [50]))
    assert trapezoid([0, 1, 3], [0, 2, 2]) == pytest.approx(1 + 4)


def test_auc_summary_per_seed_and_of_means():
    rows = [make_row("replay", b * MIB, s, last=acc / 100, aia=(acc + 10) / 100)
            for s, accs in ((0, (50, 60, 70)), (1, (52, 62, 72)))
            for b, acc in zip((1, 2, 4), accs)]
    [a] = auc_summary(cell_summary(rows))
    assert a["unit"].startswith("MB (MiB) as in MEMO Table 1") and a["n_budgets"] == 3
    assert a["unit_pct"].startswith("% x MiB")
    # seed 0: 185 % x MiB; seed 1: 1*(52+62)/2 + 2*(62+72)/2 = 57 + 134 = 191 % x MiB
    assert a["auc_l_pct"]["per_seed"] == {0: pytest.approx(185.0), 1: pytest.approx(191.0)}
    assert a["auc_l_pct"]["mean"] == pytest.approx(188.0)
    assert a["auc_a_pct"]["mean"] == pytest.approx(188.0 + 10 * 3)  # +10 % over 3 MiB
    # MEMO's scale: accuracy as a fraction, so 1/100 of those
    assert a["auc_l"]["per_seed"] == {0: pytest.approx(1.85), 1: pytest.approx(1.91)}
    assert a["auc_l"]["mean"] == pytest.approx(1.88)
    assert a["auc_l"]["of_means"] == pytest.approx(1.88)
    assert a["auc_a"]["mean"] == pytest.approx(1.88 + 0.1 * 3)


# ---------------------------------------------------------------- Pareto

def test_pareto_front_ties_and_dominated_points():
    xs = [1, 2, 2, 3, 1, 4, 1, 5, float("nan")]
    ys = [50, 60, 60, 55, 50, 70, 40, 70, 99]
    # (3,55) dominated by (2,60); (1,40) by (1,50); (5,70) by (4,70); NaN never on the front;
    # duplicates (1,50) x2 and (2,60) x2 dominate neither each other: all kept, input order.
    assert pareto_mask(xs, ys) == [True, True, True, False, True, True, False, False, False]
    assert pareto_front(xs, ys) == [0, 4, 1, 2, 5]
    assert pareto_front([], []) == []
    with pytest.raises(ValueError):
        pareto_mask([1], [1, 2])


def test_cells_pareto_flags_on_cost_and_time():
    rows = [make_row("finetune", MIB, 0, last=0.2, wall_s=10, strict=MIB // 2),
            make_row("replay", MIB, 0, last=0.4, wall_s=12),
            make_row("icarl", MIB, 0, last=0.35, wall_s=20),       # dominated by replay
            make_row("der", 4 * MIB, 0, last=0.6, wall_s=40),
            make_row("joint", MIB, 0, last=0.9, wall_s=5, budgeted=False)]
    cells = {c["method"]: c for c in cell_summary(rows)}
    assert {m: c["pareto_cost"] for m, c in cells.items()} == {
        "finetune": True, "replay": True, "icarl": False, "der": True, "joint": None}
    assert cells["icarl"]["pareto_time"] is False and cells["replay"]["pareto_time"] is True


# ---------------------------------------------------------------- seeds

def test_seed_stats_by_hand():
    s = seed_stats([1, 2, 3])
    assert (s.n, s.mean, s.std) == (3, 2.0, 1.0)
    half = T975_2 * 1 / math.sqrt(3)
    assert s.ci_low == pytest.approx(2 - half) and s.ci_high == pytest.approx(2 + half)
    one = seed_stats([5.0])
    assert one.n == 1 and one.mean == 5.0
    assert math.isnan(one.std) and math.isnan(one.ci_low) and math.isnan(one.ci_high)
    assert seed_stats([None, float("nan")]).n == 0


def test_welch_and_paired_tests_match_scipy():
    a, b = [71.0, 73.5, 72.2, 74.1], [70.2, 70.9, 72.0]
    w = welch_test(a, b)
    ref = sps.ttest_ind(a, b, equal_var=False)
    assert w.test == "Welch's t-test"
    assert w.p_value == pytest.approx(ref.pvalue)
    va, vb = sps.tvar(a) / 4, sps.tvar(b) / 3
    df = (va + vb) ** 2 / (va ** 2 / 3 + vb ** 2 / 2)
    half = sps.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert w.diff == pytest.approx(sum(a) / 4 - sum(b) / 3)
    assert (w.ci_low, w.ci_high) == (pytest.approx(w.diff - half), pytest.approx(w.diff + half))
    assert w.significant == (ref.pvalue < 0.05)

    p = paired_test([3.0, 4.0, 6.0], [2.0, 2.0, 3.0])      # differences 1, 2, 3
    assert p.test == "paired t-test" and p.diff == pytest.approx(2.0)
    assert p.p_value == pytest.approx(sps.ttest_rel([3, 4, 6], [2, 2, 3]).pvalue)
    assert p.ci_low == pytest.approx(2 - T975_2 / math.sqrt(3))
    assert compare_seeds({0: 3.0, 1: 4.0, 2: 6.0}, {0: 2.0, 1: 2.0, 2: 3.0}).test == "paired t-test"
    assert compare_seeds({0: 3.0, 1: 4.0}, {0: 2.0, 5: 2.0}).test == "Welch's t-test"
    assert not compare_seeds({0: 3.0}, {0: 2.0}).testable


# ---------------------------------------------------------------- BMC figures

def test_relative_time_same_seed_else_mean_of_seeds():
    rows = [make_row("finetune", MIB, 0, wall_s=10), make_row("finetune", MIB, 1, wall_s=20),
            make_row("der", MIB, 0, wall_s=15), make_row("der", MIB, 2, wall_s=30),
            make_row("der", MIB, 0, wall_s=15, device="cuda"),        # other device: no ref
            make_row("der", MIB, 0, wall_s=15, epochs=5)]             # other epochs: no ref
    rel = R.relative_times(rows)
    assert rel[rows[0]["run_key"]] == pytest.approx(1.0)
    assert rel[rows[2]["run_key"]] == pytest.approx(1.5)       # 15 / finetune seed 0
    assert rel[rows[3]["run_key"]] == pytest.approx(2.0)       # 30 / mean(10, 20)
    assert rel[rows[4]["run_key"]] is None and rel[rows[5]["run_key"]] is None


def test_bmc_relative_time_is_timed_on_its_critical_path():
    ref = make_row("finetune", MIB, 0, wall_s=10)
    bmc = make_row("bmc", MIB, 0, wall_s=12)
    bmc["task_wall_s"] = [4.0, 4.0, 3.0]                      # 11 s training, 1 s evaluation
    bmc["cost_figures"] = {"critical_path_s": 6.0, "summed_s": 10.5}
    assert R.timed_wall_s(bmc) == pytest.approx(12 - 11 + 6)
    assert R.relative_times([ref, bmc])[bmc["run_key"]] == pytest.approx(0.7)
    assert R.time_basis(bmc) == "critical path" and R.time_basis(ref) == "wall time"


def test_total_cost_and_cost_accuracy_units():
    row = make_row("bmc", 2 * MIB, 0, last=0.5, strict=2 * MIB, comm=2 * MIB)
    assert R.total_cost_bytes(row) == 4 * MIB
    assert R.cost_accuracy(row) == pytest.approx(50 / 4)          # % per MiB
    plain = make_row("replay", MIB, 0, last=0.3, strict=MIB)
    assert R.communication_bytes(plain) == 0 and R.cost_accuracy(plain) == pytest.approx(30.0)


def test_ledger_breakdown_bars():
    row = make_row("icarl", MIB, 0, by_kind={"params": 10, "buffers": 2, "exemplars": 100,
                                             "exemplar_aux": 4, "old_model": 12,
                                             "class_stats": 3})
    assert R.ledger_breakdown(row) == {"model": 12, "exemplars": 104, "other": 15}


# ---------------------------------------------------------------- figures and report

def sweep_rows():
    rows = []
    for s in (0, 1, 2):
        rows.append(make_row("finetune", 4 * MIB, s, last=0.20 + s / 100, wall_s=10 + s,
                             strict=MIB))
        for b in (2, 4, 8):
            rows.append(make_row("replay", b * MIB, s, last=0.30 + b / 50 + s / 100,
                                 wall_s=12 + s, n_exemplars=100 * b,
                                 by_kind={"params": MIB, "exemplars": (b - 1) * MIB}))
            rows.append(make_row("der", b * MIB, s, last=0.28 + b / 40 + s / 90, wall_s=30 + s,
                                 expansion=3, by_kind={"params": MIB, "buffers": MIB // 8,
                                                       "exemplars": (b - 2) * MIB}))
    rows.append(make_row("bmc", 4 * MIB, 0, last=0.5, comm=MIB, wall_s=8))
    rows.append(failed_row("memo", 0, "BudgetError: 1.00 MiB is below memo's minimum"))
    return rows


@pytest.fixture(scope="module")
def cli_report(tmp_path_factory):
    """`clbudget report DIR --figures F --json` on a store of synthetic rows (built once)."""
    from clbudget.cli import main
    from clbudget.experiment.store import ResultStore
    base = tmp_path_factory.mktemp("sweep")
    store = ResultStore(base)
    for row in sweep_rows():
        store.add(row)
    store.close()
    out = {"base": base, "figures": base / "readme_figures"}
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        out["rc"] = main(["report", str(base), "--figures", str(out["figures"]), "--json"])
    out["json"] = json.loads(buf.getvalue())
    return out


def test_report_cli_writes_everything(cli_report):
    assert cli_report["rc"] == 0
    obj = cli_report["json"]
    assert obj["n_finished"] == 22 and obj["n_failed"] == 1
    report_dir = cli_report["base"] / "report"
    for name in ("accuracy_vs_budget", "pareto", "accuracy_vs_relative_time",
                 "per_task_accuracy", "ledger_breakdown"):
        png, pdf = report_dir / "figures" / f"{name}.png", report_dir / "figures" / f"{name}.pdf"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
        assert pdf.read_bytes()[:5] == b"%PDF-"
    assert (cli_report["figures"] / "pareto.png").is_file()
    [auc_der] = [a for a in obj["auc"] if a["method"] == "DER"]
    assert auc_der["unit"].startswith("MB (MiB) as in MEMO Table 1") and auc_der["auc_l"]["n"] == 3
    assert auc_der["auc_l_pct"]["mean"] == pytest.approx(100 * auc_der["auc_l"]["mean"])


def test_report_html_markdown_csv(cli_report):
    report_dir = cli_report["base"] / "report"
    page = (report_dir / "report.html").read_text()
    for text in ("AUC-A and AUC-L", "Ledger totals", "Accuracy and cost", "Failed runs",
                 "BudgetError: 1.00 MiB is below memo", "% per MiB", "relative wall time (x)"):
        assert text in page
    assert page.count("data:image/png;base64,") == 5 and "src='figures/" not in page
    md = (report_dir / "summary.md").read_text()
    assert "| method | budget (MiB) |" in md and "![pareto](figures/pareto.png)" in md
    import csv
    table = list(csv.DictReader((report_dir / "table.csv").open()))
    assert len(table) == 1 + 3 + 3 + 1          # finetune, replay x3, der x3, bmc
    replay8 = next(r for r in table
                   if r["method"] == "replay" and r["budget_bytes"] == str(8 * MIB))
    assert float(replay8["last_mean"]) == pytest.approx(100 * (0.30 + 8 / 50 + 0.01))
    assert float(replay8["last_std"]) == pytest.approx(1.0)
    assert float(replay8["last_ci_high"]) - float(replay8["last_mean"]) == pytest.approx(
        T975_2 / math.sqrt(3))
    bmc = next(r for r in table if r["method"] == "bmc")
    assert bmc["last_ci_low"] == "" and bmc["n_seeds"] == "1"      # one seed: CI undefined
    assert (report_dir / "auc.csv").read_text().startswith("setting,series,method")


def test_flat_cells_and_variants_are_separate_series():
    rows = [make_row("der", MIB, 0), make_row("der", MIB, 0, spec_backbone="resnet20", last=0.4)]
    cells = cell_summary(rows)
    assert sorted(c["label"] for c in cells) == ["DER", "DER [backbone=resnet20]"]
    flat = flat_cells(cells)
    assert {"last_mean", "last_ci_low", "relative_time_mean", "cost_accuracy_mean"} <= set(flat[0])


def test_report_cli_errors(tmp_path, capsys):
    from clbudget.cli import main
    assert main(["report", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("clbudget: error: no results store") and err.count("\n") == 1
