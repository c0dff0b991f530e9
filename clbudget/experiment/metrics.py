"""Continual-learning metrics over accuracy matrices.  Pure functions of numbers.

A[t][j] is the accuracy (in [0, 1]) on task j's test classes after learning tasks
0..t; entries with j > t are absent (None).  `acc_seen[t]` is the accuracy on the
test data of all classes seen after task t (sample-weighted), the number most CIL
papers plot.
"""
from __future__ import annotations

import math


def seen_accuracy(accuracies, sizes) -> float:
    """Accuracy on every test image of the tasks seen, from their accuracies (a row of an
    accuracy matrix, tasks 0..t) and their numbers of test images: sum_j a_j n_j / sum_j n_j.
    A task with more test images weighs more (B50Inc5: task 0 is half the images), as the
    task-agnostic `acc_seen`, which counts correct images directly."""
    accuracies, sizes = list(accuracies), list(sizes)[:len(accuracies)]
    if len(sizes) != len(accuracies):
        raise ValueError(f"seen_accuracy needs a test size per task, got {len(sizes)} sizes "
                         f"for {len(accuracies)} accuracies")
    total = sum(sizes)
    return sum(a * n for a, n in zip(accuracies, sizes)) / total if total else float("nan")


def average_incremental(acc_seen) -> float:
    """Mean over tasks of the accuracy on all seen classes (Rebuffi et al. 2017)."""
    return sum(acc_seen) / len(acc_seen)


# Forgetting: two definitions in use, both reported (rows: forgetting_chaudhry,
# forgetting_clipped; `clbudget report --forgetting chaudhry|clipped` picks the one tables show).
FORGETTING = {
    "chaudhry": "max over the rows before the last (Chaudhry et al. 2018); can be negative",
    "clipped": "max over all rows, the last included, so never below 0 (PyCIL, Mammoth)",
}


def forgetting_per_task_chaudhry(A) -> list[float]:
    """For each task j < T-1: its best accuracy after any task *before the last*, minus its
    final accuracy: max_{j <= t < T-1} A[t][j] - A[T-1][j] (Chaudhry et al., "Riemannian
    Walk", ECCV 2018: f_j^k = max over l < k of a_{l,j} - a_{k,j}).  Negative when the last task raised task j above its earlier
    best (backward transfer).  Works for any increment, task by task."""
    T = len(A)
    return [max(A[t][j] for t in range(j, T - 1)) - A[T - 1][j] for j in range(T - 1)]


def forgetting_per_task_clipped(A) -> list[float]:
    """For each task j < T-1: max over *all* rows t >= j, the last included, minus the final
    accuracy, hence never below 0 (= max(chaudhry_j, 0)).  As PyCIL computes it
    (trainer.py: np.max(acctable, axis=1) - acctable[:, task], over the rows of
    tasks [:task], with PyCIL's rows being blocks of 10 classes) and Mammoth
    (utils/metrics.py `forgetting`: np.max(results, axis=0)[i] - results[-1][i], i < T-1)."""
    T = len(A)
    return [max(A[t][j] for t in range(j, T)) - A[T - 1][j] for j in range(T - 1)]


def _mean(values) -> float:
    return sum(values) / len(values) if values else 0.0


def forgetting_chaudhry(A) -> float:
    """Mean over j < T-1 of `forgetting_per_task_chaudhry` (0 with one task)."""
    return _mean(forgetting_per_task_chaudhry(A))


def forgetting_clipped(A) -> float:
    """Mean over j < T-1 of `forgetting_per_task_clipped`: PyCIL's and Mammoth's number."""
    return _mean(forgetting_per_task_clipped(A))


# the names before both definitions were reported: Chaudhry's (rows' "forgetting" key)
forgetting_per_task = forgetting_per_task_chaudhry
forgetting = forgetting_chaudhry


def bwt(A) -> float:
    """Backward transfer (Lopez-Paz & Ranzato 2017): mean of A[T-1][j] - A[j][j], j < T-1."""
    T = len(A)
    vals = [A[T - 1][j] - A[j][j] for j in range(T - 1)]
    return sum(vals) / len(vals) if vals else 0.0


def summarize(A, acc_seen) -> dict:
    return {"last": acc_seen[-1], "average_incremental": average_incremental(acc_seen),
            "forgetting": forgetting_chaudhry(A),            # the old key: Chaudhry's
            "forgetting_per_task": forgetting_per_task_chaudhry(A),
            "forgetting_chaudhry": forgetting_chaudhry(A),
            "forgetting_clipped": forgetting_clipped(A),
            "forgetting_per_task_clipped": forgetting_per_task_clipped(A),
            "bwt": bwt(A), "per_step": list(acc_seen)}


def is_finite(x) -> bool:
    return x is not None and math.isfinite(x)


# --- domain-incremental streams (streams/multidomain.py) ---

def domain_accuracy(predictions, labels) -> dict:
    """Accuracies of a domain-incremental run from predicted labels.

    predictions[t][j]: (N_j,) labels predicted for domain j's test images after task t
    (j <= t); labels[j]: their true labels.  The label space is fixed, so a class-incremental
    head sees all K classes from task 0 on and never grows; the argmax is over all K classes
    for every domain, and knowing the task (domain) does not narrow the classes: the
    task-aware accuracy *is* the task-agnostic one (reported once, as "matrix").  A method
    whose task identity picks a network (MIND: a subnetwork and BN set per domain) has a
    task-aware accuracy of its own, `task_scores(x, j)` with the true domain j, reported as the
    row's "task_aware" beside the task-agnostic "matrix" (methods/mind.py).
    A[t][j] = mean(predictions[t][j] == labels[j]); seen[t] = accuracy over every test image of
    domains 0..t (sample-weighted); last = seen[T-1]; forgetting: Chaudhry's per-domain
    `forgetting_per_task_chaudhry` mean.
    """
    import numpy as np
    T = len(predictions)
    A = [[None] * T for _ in range(T)]
    seen = []
    for t in range(T):
        if len(predictions[t]) != t + 1:
            raise ValueError(f"predictions[{t}] must hold domains 0..{t}, got "
                             f"{len(predictions[t])}")
        hits = total = 0
        for j in range(t + 1):
            p, y = np.asarray(predictions[t][j]), np.asarray(labels[j])
            if p.shape != y.shape:
                raise ValueError(f"predictions[{t}][{j}] has shape {p.shape}, labels[{j}] "
                                 f"{y.shape}")
            A[t][j] = float((p == y).mean())
            hits, total = hits + int((p == y).sum()), total + len(y)
        seen.append(hits / total)
    return {"matrix": A, "seen": seen, "last": seen[-1],
            "average_incremental": sum(seen) / T, "forgetting": forgetting_chaudhry(A)}
