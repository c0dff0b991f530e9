"""`evaluate` (experiment/evaluate.py) against a brute-force count on a fake method.

The fake method's scores are a table: test image i (its one pixel holds i) gets row i of a
known score matrix, so every prediction and every hit is counted here by hand, in plain
loops: TAG = argmax over the classes seen so far (a class not seen yet never wins, even with
the largest logit), TAW = argmax within the task's own classes, the seen-class accuracy =
correct images over all images of the seen tasks.  Tasks differ in size (3+1+2 classes,
7, 2 and 5 test images).
"""
from __future__ import annotations

import random

import pytest
import torch

from clbudget.experiment.evaluate import evaluate
from clbudget.methods.base import Context, Method, TaskData
from clbudget.nets.classifier import mask_unseen
from clbudget.train.loop import Pipeline, Trainer

INCREMENTS = (3, 1, 2)          # classes 0-2 | 3 | 4-5
TEST_SIZES = (7, 2, 5)


def make_tasks(seed):
    """Tasks whose test image ids are 0..13 (one pixel = the id) and labels in their classes."""
    rng = random.Random(seed)
    tasks, next_id, lo = [], 0, 0
    for j, (k, n) in enumerate(zip(INCREMENTS, TEST_SIZES)):
        ids = list(range(next_id, next_id + n))
        labels = [lo + rng.randrange(k) for _ in ids]
        x = torch.tensor(ids, dtype=torch.uint8).view(n, 1, 1, 1)
        tasks.append(TaskData(j, tuple(range(lo, lo + k)), x[:0], torch.zeros(0, dtype=torch.long),
                              x, torch.tensor(labels)))
        next_id, lo = next_id + n, lo + k
    return tasks


def image_ids(x):   # normalized inputs (mean 0, std 1: x / 255) -> the ids the pixels hold
    return [int(round(float(v) * 255)) for v in x.flatten()]


class TableMethod(Method):
    """Scores from a table: `table[i]` for image i; `task_table[j][i]` for task-aware ones."""
    name = "table"

    def __init__(self, ctx, table, task_table=None, aware_only=False):
        super().__init__(ctx)
        self.table, self.task_table = table, task_table
        self.task_aware_only = aware_only

    def scores(self, x):
        return torch.tensor([self.table[i] for i in image_ids(x)])

    def retained(self):
        return []


class OwnTaskScores(TableMethod):
    def task_scores(self, x, task):
        return torch.tensor([self.task_table[task][i] for i in image_ids(x)])


def build(cls, seed, t, **kw):
    trainer = Trainer(torch.device("cpu"), Pipeline((0.0,), (1.0,)), torch.Generator())
    ctx = Context(None, INCREMENTS, None, trainer, None)
    rng = random.Random(1000 + seed)
    K, N = sum(INCREMENTS), sum(TEST_SIZES)
    table = [[rng.choice([rng.uniform(-3, 3), 9.0]) for _ in range(K)] for _ in range(N)]
    task_table = [[[rng.uniform(-3, 3) for _ in range(K)] for _ in range(N)]
                  for _ in INCREMENTS]
    method = cls(ctx, table, task_table, **kw)
    method.seen = sum(INCREMENTS[:t + 1])
    return method, table, task_table


def argmax(values, lo, hi):
    """First index of the largest of values[lo:hi] (ties: the lowest, as torch.argmax)."""
    best = lo
    for c in range(lo, hi):
        if values[c] > values[best]:
            best = c
    return best


def brute(tasks, t, table, task_table=None, aware_only=False):
    offsets = [sum(INCREMENTS[:j]) for j in range(len(INCREMENTS))]
    seen = sum(INCREMENTS[:t + 1])
    tag, taw, correct, total = [], [], 0, 0
    for j in range(t + 1):
        ids, ys = image_ids(tasks[j].x_test.float() / 255), tasks[j].y_test.tolist()
        lo, hi = offsets[j], offsets[j] + INCREMENTS[j]
        if not aware_only:
            hits = sum(argmax(table[i], 0, seen) == y for i, y in zip(ids, ys))
            tag.append(hits / len(ys))
            correct, total = correct + hits, total + len(ys)
        rows = task_table[j] if task_table is not None else table
        taw.append(sum(argmax(rows[i], lo, hi) == y for i, y in zip(ids, ys)) / len(ys))
    return {"tag": tag or None, "taw": taw, "seen": correct / total if total else None}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("t", [0, 1, 2])
def test_tag_taw_and_seen_accuracy_match_a_brute_force_count(seed, t):
    tasks = make_tasks(seed)
    method, table, _ = build(TableMethod, seed, t)
    got = evaluate(method, tasks, t)
    want = brute(tasks, t, table)
    assert got["tag"] == pytest.approx(want["tag"]) and got["taw"] == pytest.approx(want["taw"])
    assert got["seen"] == pytest.approx(want["seen"])


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("t", [1, 2])
def test_own_task_scores_give_the_task_aware_row(seed, t):
    """CLR/MIND path: a method with its own `task_scores` is judged task-aware on them, and
    task-agnostically on `scores`."""
    tasks = make_tasks(seed)
    method, table, task_table = build(OwnTaskScores, seed, t)
    got = evaluate(method, tasks, t)
    want = brute(tasks, t, table, task_table)
    assert got["tag"] == pytest.approx(want["tag"]) and got["taw"] == pytest.approx(want["taw"])
    assert got["seen"] == pytest.approx(want["seen"])


@pytest.mark.parametrize("seed", range(3))
def test_task_aware_only_has_no_tag_row(seed):
    tasks = make_tasks(seed)
    method, table, task_table = build(OwnTaskScores, seed, 2, aware_only=True)
    got = evaluate(method, tasks, 2)
    assert got["tag"] is None and got["seen"] is None
    assert got["taw"] == pytest.approx(brute(tasks, 2, table, task_table, aware_only=True)["taw"])


def test_an_unseen_class_never_wins_even_with_the_largest_logit():
    """After task 0 (classes 0-2) every image scores 9 on class 3 (not seen yet) and its true
    class second: every TAG prediction must be the true class."""
    tasks = make_tasks(0)
    trainer = Trainer(torch.device("cpu"), Pipeline((0.0,), (1.0,)), torch.Generator())
    ctx = Context(None, INCREMENTS, None, trainer, None)
    labels = [int(y) for task in tasks for y in task.y_test]
    table = [[5.0 if c == y else (9.0 if c >= 3 else 0.0) for c in range(6)] for y in labels]
    method = TableMethod(ctx, table)
    method.seen = 3
    out = evaluate(method, tasks, 0)
    assert out["tag"] == [1.0] and out["seen"] == 1.0 and out["taw"] == [1.0]
    # after task 1 (classes 0-3 seen), class 3 wins every image of task 0: none correct
    method.seen = 4
    out = evaluate(method, tasks, 1)
    assert out["tag"] == [0.0, 1.0] and out["seen"] == pytest.approx(2 / 9)
    assert out["taw"] == [1.0, 1.0]


def test_mask_unseen_by_hand():
    logits = torch.tensor([[1.0, 2.0, 7.0, 9.0]])
    masked = mask_unseen(logits, 2)
    assert masked[0, :2].tolist() == [1.0, 2.0]
    assert masked[0, 2:].tolist() == [float("-inf")] * 2
    assert logits[0, 3] == 9.0                          # the input is not changed
    assert mask_unseen(logits, 4).tolist() == logits.tolist()
