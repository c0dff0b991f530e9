"""Every registered method on a tiny glyphs stream: the registry-wide contract."""
import math

import pytest

from clbudget.budget.costs import COST_MODELS
from clbudget.experiment.run import prepare, run_experiment, to_device
from clbudget.methods.registry import load_all
from tests.helpers import held_bytes, tiny_spec, tiny_stream

METHODS = sorted(load_all())


def test_every_cost_model_has_a_method_and_back():
    assert set(METHODS) <= set(COST_MODELS)


@pytest.mark.parametrize("name", METHODS)
def test_method_contract(name):
    """Finite losses; ledger == bytes held == cost model; within budget; same seed, same result."""
    spec = tiny_spec(name)
    stream, ctx, method = prepare(spec, tiny_stream())
    tasks = to_device(stream, ctx.device)
    budget = ctx.allocation.budget_bytes
    for task in tasks:
        method.begin_task(task)
        stats = method.learn(task)
        method.end_task(task)
        assert all(math.isfinite(v) for v in stats["loss"]), stats
        ledger = method.ledger("strict")
        assert ledger.total_bytes == held_bytes(method), (task.index, ledger.by_kind())
        if method.budgeted:
            assert ledger.total_bytes <= budget
    if method.budgeted:  # after the last task the ledger is what the cost model predicted
        assert method.ledger("strict").to_dict()["by_kind"] == ctx.allocation.ledger.by_kind()
        assert method.ledger("memo").total_bytes == COST_MODELS[name].cost(
            ctx.stream, ctx.allocation.backbone, ctx.allocation.n_exemplars, "memo").total_bytes

    row = run_experiment(spec, stream=tiny_stream())
    again = run_experiment(spec, stream=tiny_stream())
    T = len(tasks)
    taw = row["accuracy"]["task_aware"]["matrix"]
    assert len(taw) == T and all(len(r) == T for r in taw)
    assert all((taw[t][j] is None) == (j > t) for t in range(T) for j in range(T))
    if row["accuracy"]["matrix"] is not None:
        assert row["accuracy"]["matrix"] == again["accuracy"]["matrix"]
    assert taw == again["accuracy"]["task_aware"]["matrix"]
    assert row["losses"] == again["losses"]
