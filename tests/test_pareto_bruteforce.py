"""Pareto fronts against an O(n^2) brute-force dominance check (tests/reference_metrics.py).

Points come from a small grid so that ties and duplicates are frequent, with None, NaN and
infinities mixed in.  Checked: `pareto_mask` / `pareto_front` (accuracy vs bytes and vs
relative time), `compute.pareto_mask_costs` (several costs), and the flags `cell_summary`
puts on cells (pareto_cost over total cost, pareto_time over relative time).
"""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings, strategies as st

import reference_metrics as ref
from clbudget.analysis.compute import pareto_mask_costs
from clbudget.analysis.pareto import pareto_front, pareto_mask
from clbudget.analysis.summary import cell_summary
from test_analysis import MIB, make_row

coordinate = st.one_of(st.integers(0, 4).map(float), st.integers(0, 4),
                       st.sampled_from([None, math.nan, math.inf, -math.inf]))
points = st.lists(st.tuples(coordinate, coordinate), max_size=12)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(points)
def test_pareto_mask_is_the_brute_force_front(pts):
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    want = ref.front_brute(xs, ys)
    assert pareto_mask(xs, ys) == want
    front = pareto_front(xs, ys)
    assert sorted(front) == [i for i, m in enumerate(want) if m]
    assert front == sorted(front, key=lambda i: (xs[i], -ys[i], i))


def brute_multi(costs, ys):
    """Finite and not dominated: no other finite point <= in every cost, >= in y, and strictly
    better somewhere."""
    ok = [all(ref.finite(c) for c in cs) and ref.finite(y) for cs, y in zip(costs, ys)]
    out = []
    for i in range(len(ys)):
        dominated = False
        for j in range(len(ys)):
            if j == i or not ok[j] or not ok[i]:
                continue
            no_worse = all(costs[j][k] <= costs[i][k] for k in range(len(costs[i]))) \
                and ys[j] >= ys[i]
            better = any(costs[j][k] < costs[i][k] for k in range(len(costs[i]))) \
                or ys[j] > ys[i]
            dominated = dominated or (no_worse and better)
        out.append(ok[i] and not dominated)
    return out


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.tuples(coordinate, coordinate, coordinate), max_size=10))
def test_pareto_over_several_costs_is_the_brute_force_front(pts):
    costs, ys = [(a, b) for a, b, _ in pts], [y for _, _, y in pts]
    assert pareto_mask_costs(costs, ys) == brute_multi(costs, ys)


def test_one_cost_fronts_agree():
    xs, ys = [3, 1, 2, 2, 5, 1], [0.5, 0.2, 0.6, 0.6, 0.7, 0.2]
    assert pareto_mask_costs([(x,) for x in xs], ys) == pareto_mask(xs, ys) == \
        [False, True, True, True, True, True]


def test_cell_flags_are_the_brute_force_front_of_the_cell_means():
    """Six methods, two seeds each: the cell's flags equal the brute-force front of the cell
    means (last accuracy vs total cost; vs relative time), computed here by hand."""
    spec = {  # method: (strict bytes, communication bytes, (last, last), (wall_s, wall_s))
        "finetune": (MIB, 0, (0.20, 0.22), (10.0, 10.0)),
        "replay": (2 * MIB, 0, (0.40, 0.42), (12.0, 12.0)),
        "icarl": (2 * MIB, 0, (0.35, 0.39), (11.0, 11.0)),     # cheaper in time than replay
        "der": (4 * MIB, 0, (0.60, 0.62), (40.0, 40.0)),
        "bmc": (MIB, 3 * MIB, (0.50, 0.50), (30.0, 30.0)),    # 4 MiB total: dominated by der
        "wa": (3 * MIB, 0, (0.40, 0.42), (13.0, 13.0)),       # dominated by replay
    }
    rows = [make_row(m, 4 * MIB, seed, last=last[seed], wall_s=wall[seed], strict=strict,
                     comm=comm)
            for m, (strict, comm, last, wall) in spec.items() for seed in (0, 1)]
    cells = {c["method"]: c for c in cell_summary(rows)}
    methods = list(spec)
    cost = [spec[m][0] + spec[m][1] for m in methods]
    acc = [100 * sum(spec[m][2]) / 2 for m in methods]
    rel = [sum(spec[m][3]) / 2 / 10.0 for m in methods]
    assert [cells[m]["pareto_cost"] for m in methods] == ref.front_brute(cost, acc) == \
        [True, True, False, True, False, False]
    assert [cells[m]["pareto_time"] for m in methods] == ref.front_brute(rel, acc) == \
        [True, True, True, True, True, False]
    assert [cells[m]["stats"]["total_cost_bytes"]["mean"] for m in methods] == cost
    assert [cells[m]["stats"]["relative_time"]["mean"] for m in methods] == pytest.approx(rel)
