"""Every registered method on a tiny glyphs stream: the registry-wide contract, under both
accounting conventions."""
import dataclasses
import math

import pytest

from clbudget.budget.costs import COST_MODELS, StreamShape
from clbudget.experiment.run import prepare, run_experiment, to_device
from clbudget.methods.registry import load_all
from tests.helpers import held_bytes, tiny_spec, tiny_stream

METHODS = sorted(load_all())
EXEMPLARS = 60   # 10 per class of the 6: fewer than the 40 per class the stream has


def test_every_cost_model_has_a_method_and_back():
    assert set(METHODS) <= set(COST_MODELS)


def exactly_filled_spec(name: str, convention: str):
    """A tiny spec whose budget is exactly the method's cost under `convention` with
    EXEMPLARS exemplars (none for a method without them): the allocator's slack is 0 B."""
    stream = tiny_stream()
    shape = StreamShape(stream.num_tasks, tuple(stream.image_shape), stream.num_classes)
    model = COST_MODELS[name]
    n = EXEMPLARS if model.uses_exemplars else 0
    budget = model.cost(shape, "conv2", n, convention).total_bytes
    return tiny_spec(name, budget=str(budget), convention=convention), n


@pytest.mark.parametrize("convention", ["strict", "memo"])
@pytest.mark.parametrize("name", METHODS)
def test_method_contract(name, convention):
    """Finite losses; strict ledger == bytes held; the convention's ledger within an exactly
    filled budget after every task and == its cost model (the other convention's too); the run
    finishes every task; same seed, same result."""
    spec, n = exactly_filled_spec(name, convention)
    other = "memo" if convention == "strict" else "strict"
    stream, ctx, method = prepare(spec, tiny_stream())
    tasks = to_device(stream, ctx.device)
    budget = ctx.allocation.budget_bytes
    if method.budgeted:
        assert ctx.allocation.slack_bytes == 0 and ctx.allocation.n_exemplars == n
        assert ctx.allocation.ledger.convention == convention
    for task in tasks:
        method.begin_task(task)
        stats = method.learn(task)
        method.end_task(task)
        assert all(math.isfinite(v) for v in stats["loss"]), stats
        ledger = method.ledger("strict")
        assert ledger.total_bytes == held_bytes(method), (task.index, ledger.by_kind())
        if method.budgeted:
            assert method.ledger(convention).total_bytes <= budget, (task.index, convention)
    if method.budgeted:  # after the last task each ledger is what its cost model predicted
        assert method.ledger(convention).to_dict()["by_kind"] == ctx.allocation.ledger.by_kind()
        assert method.ledger(other).total_bytes == COST_MODELS[name].cost(
            ctx.stream, ctx.allocation.backbone, ctx.allocation.n_exemplars, other).total_bytes
        if convention == "memo":  # the strict ledger (heads, BN buffers, labels) is over it
            assert method.ledger("strict").total_bytes > budget

    row = run_experiment(spec, stream=tiny_stream())
    T = len(tasks)
    assert row["status"] == "finished" and len(row["task_wall_s"]) == T
    assert row["ledger"]["convention"] == "strict" and row["ledger_memo"]["convention"] == "memo"
    taw = row["accuracy"]["task_aware"]["matrix"]
    assert len(taw) == T and all(len(r) == T for r in taw)
    assert all((taw[t][j] is None) == (j > t) for t in range(T) for j in range(T))
    if convention == "memo":   # determinism does not depend on the convention: checked once
        return
    again = run_experiment(spec, stream=tiny_stream())
    if row["accuracy"]["matrix"] is not None:
        assert row["accuracy"]["matrix"] == again["accuracy"]["matrix"]
    assert taw == again["accuracy"]["task_aware"]["matrix"]
    assert row["losses"] == again["losses"]
