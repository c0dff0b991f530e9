"""Accuracy of a method on the tasks seen so far, task-agnostic and task-aware."""
from __future__ import annotations

import torch

from clbudget.methods.base import Method, TaskData
from clbudget.nets.classifier import mask_unseen


@torch.no_grad()
def evaluate(method: Method, tasks: list[TaskData], t: int, scores=None) -> dict:
    """Row t of the accuracy matrices.

    TAG (task-agnostic): argmax over every class seen so far.
    TAW (task-aware): argmax within task j's own classes, with the task's own
    scores when the method has task-specific inference (CLR, MIND).
    `scores`: another classifier of the method (iCaRL's `cnn_scores`, `Method.also_scores`)
    instead of its headline `method.scores`; its TAW uses it too.
    """
    method.eval()
    trainer = method.trainer
    offsets = method.ctx.offsets
    own_task_scores = type(method).task_scores is not Method.task_scores and scores is None
    scores = scores or method.scores
    tag, taw, correct, total = [], [], 0, 0
    for j in range(t + 1):
        task = tasks[j]
        y = task.y_test.to(trainer.device)
        lo, hi = offsets[j], offsets[j] + len(task.classes)
        if hi == lo:   # a domain-incremental task (no new classes): its classes are all seen
            lo, hi = 0, method.seen
        if not method.task_aware_only:
            s = trainer.predict(scores, task.x_test)
            hits = int((mask_unseen(s, method.seen).argmax(1) == y).sum())
            tag.append(hits / len(y))
            correct, total = correct + hits, total + len(y)
        if own_task_scores or method.task_aware_only:
            s = trainer.predict(lambda x: method.task_scores(x, j), task.x_test)
        taw.append(float(((s[:, lo:hi].argmax(1) + lo) == y).float().mean()))
    return {"tag": tag or None, "taw": taw,
            "seen": correct / total if total else None}
