"""Metrics against a second implementation (tests/reference_metrics.py) and by hand.

Expected values come from `reference_metrics` (plain loops written from the definitions) on
random per-image outcomes, and from hand arithmetic on a stream whose tasks differ in size
(5+1+1+1 classes).  The last test runs a real (tiny) stream with unequal tasks and checks the
row's curves, task-agnostic and task-aware, against the per-image definition.
"""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

import reference_metrics as ref
from clbudget.analysis.auc import MIB, auc_memo, auc_pct_mib
from clbudget.experiment import metrics as M


@st.composite
def outcomes(draw, max_tasks=6):
    """(hits, sizes): test sizes per task and correct counts per (step, task) within them."""
    T = draw(st.integers(1, max_tasks))
    sizes = draw(st.lists(st.integers(1, 40), min_size=T, max_size=T))
    hits = [[draw(st.integers(0, sizes[j])) if j <= t else None for j in range(T)]
            for t in range(T)]
    return hits, sizes


@settings(max_examples=150, deadline=None, derandomize=True)
@given(outcomes())
def test_every_metric_matches_the_reference_on_random_matrices(data):
    hits, sizes = data
    A = ref.matrix(hits, sizes)
    curve = ref.seen_accuracy(hits, sizes)
    assert M.forgetting_per_task_chaudhry(A) == pytest.approx(ref.forgetting_chaudhry_per_task(A))
    assert M.forgetting_per_task_clipped(A) == pytest.approx(ref.forgetting_clipped_per_task(A))
    assert M.forgetting_chaudhry(A) == pytest.approx(ref.forgetting_chaudhry(A))
    assert M.forgetting_clipped(A) == pytest.approx(ref.forgetting_clipped(A))
    assert M.bwt(A) == pytest.approx(ref.bwt(A))
    assert all(f >= 0 for f in M.forgetting_per_task_clipped(A))
    # the seen-class curve from the matrix row and the test sizes (the task-aware path)
    assert [M.seen_accuracy(A[t][:t + 1], sizes) for t in range(len(A))] == \
        pytest.approx(curve)
    s = M.summarize(A, curve)
    assert s["last"] == pytest.approx(ref.last(curve))
    assert s["average_incremental"] == pytest.approx(ref.average_incremental(curve))
    assert s["forgetting"] == pytest.approx(ref.forgetting_chaudhry(A))
    assert s["forgetting_clipped"] == pytest.approx(ref.forgetting_clipped(A))
    assert s["bwt"] == pytest.approx(ref.bwt(A))


# 5+1+1+1 classes, 20 test images per class: tasks of 100, 20, 20, 20 test images.
SIZES = [100, 20, 20, 20]
HITS = [[90, None, None, None],
        [60, 18, None, None],
        [50, 10, 20, None],
        [70, 4, 10, 16]]


def test_unequal_tasks_by_hand():
    A = ref.matrix(HITS, SIZES)
    assert A[3] == [0.7, 0.2, 0.5, 0.8]
    # per image: (60+18)/120, (50+10+20)/140, (70+4+10+16)/160
    per_image = [0.9, 78 / 120, 80 / 140, 100 / 160]
    assert ref.seen_accuracy(HITS, SIZES) == pytest.approx(per_image)
    assert [M.seen_accuracy(A[t][:t + 1], SIZES) for t in range(4)] == pytest.approx(per_image)
    # the per-task mean is another number on this stream: 0.625 vs (0.7+0.2+0.5+0.8)/4 = 0.55
    assert ref.task_mean_accuracy(A)[3] == pytest.approx(0.55)
    s = M.summarize(A, per_image)
    assert s["last"] == pytest.approx(0.625)
    assert s["average_incremental"] == pytest.approx((0.9 + 0.65 + 80 / 140 + 0.625) / 4)
    # Chaudhry: task 0: max(0.9, 0.6, 0.5) - 0.7 = 0.2; task 1: max(0.9, 0.5) - 0.2 = 0.7;
    # task 2: 1.0 - 0.5 = 0.5; clipped is the same here (no task rose in the last step)
    assert s["forgetting_per_task"] == pytest.approx([0.2, 0.7, 0.5])
    assert s["forgetting_chaudhry"] == pytest.approx(1.4 / 3)
    # BWT: (0.7-0.9) + (0.2-0.9) + (0.5-1.0) = -1.4, over 3
    assert s["bwt"] == pytest.approx(-1.4 / 3)


def test_forgetting_definitions_differ_when_the_last_step_raises_a_task():
    A = [[0.5, None, None], [0.4, 0.9, None], [0.6, 0.3, 0.8]]
    # Chaudhry: task 0: 0.5 - 0.6 = -0.1, task 1: 0.9 - 0.3 = 0.6; clipped: 0.0 and 0.6
    assert M.forgetting_per_task_chaudhry(A) == pytest.approx([-0.1, 0.6])
    assert M.forgetting_per_task_clipped(A) == pytest.approx([0.0, 0.6])
    assert M.forgetting_chaudhry(A) == pytest.approx(0.25)
    assert M.forgetting_clipped(A) == pytest.approx(0.3)
    assert M.forgetting_chaudhry([[0.7]]) == 0.0 and M.bwt([[0.7]]) == 0.0


def test_seen_accuracy_refuses_missing_sizes():
    with pytest.raises(ValueError, match="test size per task"):
        M.seen_accuracy([0.5, 0.5], [10])


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.integers(1, 64 * MIB), st.floats(0, 1)), min_size=2, max_size=8,
                unique_by=lambda p: p[0]))
def test_auc_is_the_trapezoid_over_mib_in_any_input_order(points):
    budgets, accs = [b for b, _ in points], [a for _, a in points]
    assert auc_memo(budgets, accs) == pytest.approx(ref.trapezoid_area_mib(budgets, accs))
    pct = [100 * a for a in accs]
    assert auc_pct_mib(budgets, pct) == pytest.approx(100 * ref.trapezoid_area_mib(budgets, accs))


def test_auc_by_hand():
    # budgets 1, 3, 4 MiB (given out of order), accuracies 0.2, 0.6, 0.5:
    # (3-1)*(0.2+0.6)/2 + (4-3)*(0.6+0.5)/2 = 0.8 + 0.55 = 1.35
    assert auc_memo([4 * MIB, MIB, 3 * MIB], [0.5, 0.2, 0.6]) == pytest.approx(1.35)
    assert auc_memo([MIB], [0.3]) != auc_memo([MIB], [0.3])   # NaN with one point


def test_a_run_on_unequal_tasks_weighs_both_curves_by_images():
    """3+1+1+1 glyph classes, 12 test images each: tasks of 36, 12, 12, 12 images.  The
    row's curves (task-agnostic and task-aware) are the per-image accuracy of the seen
    classes, recomputed here from the row's matrices and the test sizes."""
    from helpers import tiny_spec
    from clbudget.experiment.run import run_experiment
    row = run_experiment(tiny_spec("replay", init=3, inc=1))
    sizes = [36, 12, 12, 12]
    for acc in (row["accuracy"], row["accuracy"]["task_aware"]):
        A = acc["matrix"]
        hits = [[round(A[t][j] * sizes[j]) if j <= t else None for j in range(4)]
                for t in range(4)]
        curve = ref.seen_accuracy(hits, sizes)
        assert acc["per_step"] == pytest.approx(curve, abs=1e-6)
        assert acc["last"] == pytest.approx(curve[-1], abs=1e-6)
        assert acc["average_incremental"] == pytest.approx(sum(curve) / 4, abs=1e-6)
