"""The cost axes of result rows (analysis/rows.py), checked by hand on built rows.

Definitions (rows.py, DESIGN.md section 2): the bytes a run's budget bound are its
convention's ledger (`held_bytes`); BMC's total cost = communication + the *strict* ledger
total, whatever convention sized the budget; cost-accuracy = last accuracy in % / total cost
in MiB; relative time = wall time / finetune's on the same stream, epochs and device.  Every
expected number below is written out from those definitions.
"""
from __future__ import annotations

import pytest

from clbudget.analysis import rows as R
from clbudget.analysis.summary import cell_summary, run_records
from test_analysis import MIB, make_row


def memo_row(method="icarl", seed=0, comm=0, last=0.5, wall_s=10.0):
    # strict ledger 3 MiB (heads, BN statistics, old model...), memo ledger 2 MiB
    return make_row(method, 2 * MIB, seed, last=last, strict=3 * MIB, memo=2 * MIB,
                    comm=comm, convention="memo", wall_s=wall_s)


def test_a_memo_convention_row_holds_its_memo_ledger_and_costs_its_strict_total():
    row = memo_row()
    assert R.held_bytes(row) == 2 * MIB                 # what its memo-sized budget bound
    assert R.ledger_bytes(row, "memo") == 2 * MIB
    assert R.ledger_bytes(row, "strict") == 3 * MIB
    assert R.total_cost_bytes(row) == 3 * MIB           # strict + 0 communication
    assert R.cost_accuracy(row) == pytest.approx(50 / 3)
    strict = make_row("icarl", 3 * MIB, 0, strict=3 * MIB, memo=2 * MIB)
    assert R.held_bytes(strict) == 3 * MIB and R.total_cost_bytes(strict) == 3 * MIB


def test_communication_is_added_to_the_strict_total_under_both_conventions():
    for convention, held in (("memo", MIB), ("strict", 5 * MIB)):
        row = make_row("bmc", 5 * MIB, 0, last=0.6, strict=5 * MIB, memo=MIB,
                       comm=3 * MIB, convention=convention)
        assert R.communication_bytes(row) == 3 * MIB
        assert R.total_cost_bytes(row) == 8 * MIB        # 5 MiB strict + 3 MiB sent
        assert R.cost_accuracy(row) == pytest.approx(60 / 8)
        assert R.held_bytes(row) == held


def test_records_and_cells_carry_the_same_cost_axis():
    rows = [memo_row(seed=0, comm=MIB, last=0.4), memo_row(seed=1, comm=MIB, last=0.6)]
    recs = run_records(rows)
    assert [r["total_cost_bytes"] for r in recs] == [4 * MIB, 4 * MIB]
    assert [r["ledger_memo_bytes"] for r in recs] == [2 * MIB, 2 * MIB]
    assert [r["ledger_strict_bytes"] for r in recs] == [3 * MIB, 3 * MIB]
    assert [r["cost_accuracy"] for r in recs] == pytest.approx([10.0, 15.0])
    (cell,) = cell_summary(rows)
    assert cell["convention"] == "memo"
    assert cell["stats"]["total_cost_bytes"]["mean"] == 4 * MIB
    assert cell["stats"]["cost_accuracy"]["mean"] == pytest.approx(12.5)


def test_relative_time_by_hand_with_a_memo_convention_row():
    ref = make_row("finetune", 2 * MIB, 0, wall_s=8.0, convention="memo")
    a = memo_row(seed=0, wall_s=20.0)
    b = memo_row(seed=5, wall_s=12.0)                    # no finetune of seed 5: mean of seeds
    other = make_row("finetune", 2 * MIB, 1, wall_s=16.0, convention="memo")
    rel = R.relative_times([ref, other, a, b])
    assert rel[a["run_key"]] == pytest.approx(20 / 8)
    assert rel[b["run_key"]] == pytest.approx(12 / ((8 + 16) / 2))
