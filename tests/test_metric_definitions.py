"""Forgetting under both published definitions, and AUC on MEMO's published scale (issue 11,
items 8 and 10): hand-computed matrices and areas."""
import csv

import numpy as np
import pytest

from clbudget.analysis import rows as R
from clbudget.analysis.auc import MIB, auc_memo, auc_pct_mib
from clbudget.experiment.metrics import (forgetting, forgetting_chaudhry, forgetting_clipped,
                                         forgetting_per_task_chaudhry,
                                         forgetting_per_task_clipped, summarize)
from clbudget.analysis.report import build_report, render_markdown
from tests.helpers import cli
from tests.test_analysis import make_row

# task 0 peaks after task 0 and is forgotten; task 1 likewise: both definitions agree
SAME = [[0.9, None, None], [0.5, 0.8, None], [0.3, 0.6, 0.7]]
# task 0: 0.5, 0.4, then 0.7 after the last task, its max in the last row
DIFFER = [[0.5, None, None], [0.4, 0.6, None], [0.7, 0.3, 0.9]]


def test_forgetting_definitions_by_hand():
    assert forgetting_per_task_chaudhry(SAME) == pytest.approx([0.6, 0.2])
    assert forgetting_per_task_clipped(SAME) == pytest.approx([0.6, 0.2])
    # Chaudhry: max over rows before the last: task 0 0.5 - 0.7 = -0.2, task 1 0.6 - 0.3
    assert forgetting_per_task_chaudhry(DIFFER) == pytest.approx([-0.2, 0.3])
    assert forgetting_chaudhry(DIFFER) == pytest.approx(0.05)
    # PyCIL / Mammoth: max over all rows, the last included: task 0 0.7 - 0.7 = 0
    assert forgetting_per_task_clipped(DIFFER) == pytest.approx([0.0, 0.3])
    assert forgetting_clipped(DIFFER) == pytest.approx(0.15)
    assert forgetting is forgetting_chaudhry          # the old name keeps its meaning
    assert forgetting_clipped([[0.4]]) == forgetting_chaudhry([[0.4]]) == 0.0   # one task


@pytest.mark.parametrize("A", [SAME, DIFFER, [[1.0, None], [0.25, 0.5]],
                               [[0.2, None, None, None], [0.9, 0.1, None, None],
                                [0.3, 0.8, 0.5, None], [0.95, 0.4, 0.6, 0.7]]])
def test_clipped_is_the_toolkits_formula(A):
    """Mammoth utils/metrics.py: zero-pad the rows, max over axis 0 (every row), minus the
    last row, tasks 0..T-2; PyCIL trainer.py computes the same on the transposed table."""
    T = len(A)
    padded = np.array([[0.0 if v is None else v for v in row] for row in A])
    toolkit = np.mean(padded.max(axis=0)[:T - 1] - padded[-1, :T - 1])
    assert forgetting_clipped(A) == pytest.approx(toolkit)
    per_chaudhry = forgetting_per_task_chaudhry(A)
    assert forgetting_per_task_clipped(A) == pytest.approx([max(0.0, f) for f in per_chaudhry])


def differing_row(method="replay", budget=MIB, seed=0):
    row = make_row(method, budget, seed)
    row["accuracy"] = {**summarize(DIFFER, [0.5, 0.5, 0.633]), "matrix": DIFFER}
    return row


def test_rows_keep_both_and_old_rows_are_read_from_their_matrix():
    row = differing_row()
    acc = row["accuracy"]
    assert acc["forgetting"] == acc["forgetting_chaudhry"] == pytest.approx(0.05)
    assert acc["forgetting_clipped"] == pytest.approx(0.15)
    old = make_row("replay", MIB, 0)             # a row stored before: "forgetting" only
    old["accuracy"]["matrix"] = DIFFER
    assert "forgetting_clipped" not in old["accuracy"]
    assert R.accuracy_pct(old, "forgetting_clipped") == pytest.approx(15.0)
    assert R.accuracy_pct(old, "forgetting_chaudhry") == pytest.approx(5.0)


def test_report_shows_the_chosen_forgetting_labelled():
    rows = [differing_row()]
    chaudhry = render_markdown(build_report(rows))
    clipped = render_markdown(build_report(rows, forgetting="clipped"))
    assert "forgetting, chaudhry (pp)" in chaudhry and "| 5.00 (CI n/a" in chaudhry
    assert "forgetting, clipped (pp)" in clipped and "| 15.00 (CI n/a" in clipped
    assert "PyCIL, Mammoth" in clipped and "Chaudhry et al. 2018" in chaudhry
    with pytest.raises(ValueError, match="nearest: clipped"):
        build_report(rows, forgetting="clipt")


def test_report_cli_forgetting_flag_and_csv_has_both(capsys, tmp_path):
    from clbudget.experiment.store import ResultStore
    store = ResultStore(tmp_path)
    for b in (1, 2):
        store.add(differing_row(budget=b * MIB))
    store.close()
    code, _, err = cli(capsys, "report", str(tmp_path), "--forgetting", "clipped")
    assert code == 0, err
    md = (tmp_path / "report" / "summary.md").read_text()
    assert "forgetting, clipped (pp)" in md
    [first, _] = list(csv.DictReader((tmp_path / "report" / "table.csv").open()))
    assert float(first["forgetting_clipped_mean"]) == pytest.approx(15.0)
    assert float(first["forgetting_chaudhry_mean"]) == pytest.approx(5.0)


def test_auc_on_memos_scale_by_hand():
    """Accuracy 0.5 at 7.63 MiB and 0.6 at 12.42 MiB: (12.42 - 7.63) x (0.5 + 0.6) / 2 =
    4.79 x 0.55 = 2.6345 "MB" as MEMO's Table 1 prints it; in % x MiB, 263.45."""
    budgets = [round(7.63 * MIB), round(12.42 * MIB)]
    assert auc_memo(budgets, [0.5, 0.6]) == pytest.approx(2.6345, abs=1e-6)
    assert auc_pct_mib(budgets, [50, 60]) == pytest.approx(263.45, abs=1e-4)
    # MEMO's CIFAR-100 range 7.6-23.5 MiB at a flat 68 %: about its reported AUC-A of 10.85
    assert auc_memo([7.6 * MIB, 23.5 * MIB], [0.68, 0.68]) == pytest.approx(10.81, abs=0.01)


def test_report_auc_table_is_on_memos_scale(capsys, tmp_path):
    rows = [make_row("replay", b * MIB, 0, last=acc, aia=acc) for b, acc in ((1, 0.5), (3, 0.7))]
    report = build_report(rows)
    [a] = report["auc"]
    assert a["auc_l"]["mean"] == pytest.approx(2 * 0.6)         # 2 MiB x 0.6
    assert a["auc_l_pct"]["mean"] == pytest.approx(2 * 60)
    md = render_markdown(report)
    assert "AUC-L (MB = MiB x fraction, MEMO Table 1)" in md and "| 1.20 (CI n/a" in md
