"""Runs under the MEMO convention (issue 17): the budget binds the ledger of the convention the
allocation was sized under, so a memo-sized budget, filled exactly, runs through every task."""
import dataclasses
import json

import pytest

from clbudget.experiment.run import BudgetExceeded, check_budget, prepare, to_device
from clbudget.experiment.store import ResultStore
from tests.helpers import TINY_GLYPHS, cli, tiny_spec, tiny_stream

GLYPHS = [a for key, value in TINY_GLYPHS for a in ("--glyphs", f"{key}={value}")]
TINY = ["--init", "0", "--inc", "2", "--backbone", "conv2", "--epochs", "1",
        "--batch-size", "32", "--device", "cpu", *GLYPHS]


@pytest.mark.parametrize("convention", ["strict", "memo"])
def test_check_budget_binds_the_allocations_convention(convention):
    """At a budget of exactly the convention's ledger the run goes on; one byte less, it stops,
    naming the convention.  The other ledger never decides."""
    spec = tiny_spec("replay", budget="1xconv2+100ex", convention=convention)
    stream, ctx, method = prepare(spec, tiny_stream())
    task = to_device(stream, ctx.device)[0]
    method.begin_task(task)
    method.learn(task)
    method.end_task(task)
    held = method.ledger(convention).total_bytes
    assert method.ledger("memo").total_bytes < method.ledger("strict").total_bytes
    exact = dataclasses.replace(ctx.allocation, budget_bytes=held)
    check_budget(method, exact, 0)
    with pytest.raises(BudgetExceeded, match=f"{convention} convention"):
        check_budget(method, dataclasses.replace(exact, budget_bytes=held - 1), 0)


def test_issue_command_finishes_every_task_under_the_memo_convention(capsys):
    """`run --budget 1xconv2+200ex --convention memo` is filled exactly by the allocator (slack
    0 B), holds more than that in the strict ledger, and finishes all three tasks."""
    code, out, err = cli(capsys, "run", "--method", "replay", "--budget", "1xconv2+200ex",
                         "--convention", "memo", *TINY, "--json")
    assert code == 0, err
    row = json.loads(out)
    assert row["num_tasks"] == 3 and len(row["task_wall_s"]) == 3
    assert row["allocation"]["slack_bytes"] == 0 and row["allocation"]["convention"] == "memo"
    assert row["ledger_memo"]["total_bytes"] == row["budget_bytes"]
    assert row["ledger"]["total_bytes"] > row["budget_bytes"]   # strict: recorded, not binding


def test_memo_fair_sweep_under_the_memo_convention_finishes_every_cell(capsys, tmp_path):
    code, out, err = cli(capsys, "sweep", "--methods", "replay,icarl,der,memo",
                         "--protocol", "memo-fair", "--convention", "memo", *TINY,
                         "--out", str(tmp_path / "sweep"))
    assert code == 0, err
    rows = ResultStore(tmp_path / "sweep").rows()
    assert len(rows) == 5 and all(r["status"] == "finished" for r in rows), \
        [r.get("reason") for r in rows]
    der = next(r for r in rows if r["method"] == "der")
    assert der["allocation"]["backbone"] == "resnet32"           # MEMO's fair point: T x ResNet32
    budgets = {r["budget_bytes"] for r in rows}
    assert len(budgets) == 1                                     # one budget for every method
    assert all(r["ledger_memo"]["total_bytes"] <= r["budget_bytes"] for r in rows)
