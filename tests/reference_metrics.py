"""A second, plainly written implementation of the continual-learning metrics, for tests.

Written from the definitions (DESIGN.md section 4, the papers cited below), with plain loops
and no numpy, without reading the code under test's expressions.  Inputs are per-image
outcomes where the definition is per image, so a weighting mistake in the code shows.

- `hits[t][j]`: number of task j's test images classified correctly after learning tasks 0..t
  (j <= t); `sizes[j]`: number of task j's test images.
- accuracy matrix A[t][j] = hits[t][j] / sizes[j].
"""
from __future__ import annotations


def matrix(hits, sizes):
    """A[t][j] = hits[t][j] / sizes[j] for j <= t, None above the diagonal."""
    T = len(hits)
    out = []
    for t in range(T):
        row = []
        for j in range(T):
            row.append(hits[t][j] / sizes[j] if j <= t else None)
        out.append(row)
    return out


def seen_accuracy(hits, sizes):
    """Per step t: correct images over all images of tasks 0..t (every seen test image counts
    once; a task with more test images weighs more).  Rebuffi et al. 2017's curve."""
    out = []
    for t in range(len(hits)):
        correct = 0
        total = 0
        for j in range(t + 1):
            correct += hits[t][j]
            total += sizes[j]
        out.append(correct / total)
    return out


def task_mean_accuracy(A):
    """Per step t: the plain mean of A[t][0..t] (each task weighs the same): what a curve
    looks like when it is NOT weighted by images (Mammoth's per-task mean)."""
    out = []
    for t in range(len(A)):
        s = 0.0
        for j in range(t + 1):
            s += A[t][j]
        out.append(s / (t + 1))
    return out


def last(curve):
    return curve[len(curve) - 1]


def average_incremental(curve):
    s = 0.0
    for v in curve:
        s += v
    return s / len(curve)


def forgetting_chaudhry_per_task(A):
    """f_j = max over l in [j, T-2] of A[l][j], minus A[T-1][j], for j < T-1 (Chaudhry et al.
    2018: the best accuracy before the final step, minus the final one)."""
    T = len(A)
    out = []
    for j in range(T - 1):
        best = None
        for l in range(j, T - 1):
            if best is None or A[l][j] > best:
                best = A[l][j]
        out.append(best - A[T - 1][j])
    return out


def forgetting_clipped_per_task(A):
    """f_j = max over l in [j, T-1] (the final row included) of A[l][j] - A[T-1][j]: never
    negative (PyCIL, Mammoth)."""
    T = len(A)
    out = []
    for j in range(T - 1):
        best = A[T - 1][j]
        for l in range(j, T):
            if A[l][j] > best:
                best = A[l][j]
        out.append(best - A[T - 1][j])
    return out


def _mean_or_zero(values):
    if not values:
        return 0.0
    s = 0.0
    for v in values:
        s += v
    return s / len(values)


def forgetting_chaudhry(A):
    return _mean_or_zero(forgetting_chaudhry_per_task(A))


def forgetting_clipped(A):
    return _mean_or_zero(forgetting_clipped_per_task(A))


def bwt(A):
    """Lopez-Paz & Ranzato 2017: mean over j < T-1 of A[T-1][j] - A[j][j]."""
    T = len(A)
    vals = []
    for j in range(T - 1):
        vals.append(A[T - 1][j] - A[j][j])
    return _mean_or_zero(vals)


def trapezoid_area_mib(budgets_bytes, accuracies):
    """Area under accuracy vs budget in MiB, trapezoid rule over the points sorted by budget."""
    pts = []
    for b, a in zip(budgets_bytes, accuracies):
        pts.append((b / 1048576.0, a))
    pts.sort()
    area = 0.0
    for i in range(1, len(pts)):
        x0, y0 = pts[i - 1]
        x1, y1 = pts[i]
        area += (x1 - x0) * 0.5 * (y0 + y1)
    return area


def dominated_brute(xs, ys, i):
    """Is point i dominated by another point (x lower is better, y higher is better)?  Points
    with a missing or non-finite coordinate dominate nothing."""
    for j in range(len(xs)):
        if j == i or not finite(xs[j]) or not finite(ys[j]):
            continue
        if xs[j] <= xs[i] and ys[j] >= ys[i] and (xs[j] < xs[i] or ys[j] > ys[i]):
            return True
    return False


def front_brute(xs, ys):
    """O(n^2) Pareto mask: finite and not dominated."""
    out = []
    for i in range(len(xs)):
        out.append(finite(xs[i]) and finite(ys[i]) and not dominated_brute(xs, ys, i))
    return out


def finite(v):
    return v is not None and v == v and v not in (float("inf"), float("-inf"))
