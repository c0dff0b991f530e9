"""finetune — the lower bound: one network trained on each task in turn.

Retains: the network (backbone + full-width head).
Deviations: none; trained with the recipe `pycil-icarl` (see experiment/recipe_book.py).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from clbudget.methods.base import Method
from clbudget.methods.nets import Classifier, frozen_copy
from clbudget.methods.registry import register


@register("finetune")
class Finetune(Method):
    def __init__(self, ctx, config=None):
        super().__init__(ctx, config)
        s = ctx.stream
        self.net = Classifier.create(ctx.allocation.backbone, s.image_shape,
                                     s.num_classes).to(self.device)

    def training_data(self, task):
        return task.x, task.y

    def learn(self, task):
        x, y = self.training_data(task)

        def step(xb, yb, idx):
            return F.cross_entropy(self.net(xb)[:, :self.seen], yb)
        return self.trainer.fit(self.net.parameters(), x, y, step, self.phase(),
                                f"{self.name} task {task.index}", modules=[self.net])

    def scores(self, x):
        return self.net(x)

    def retained(self):
        return [("net", "params", self.net)]

    def feature_modules(self):
        return [self.net.backbone]


class KeepsTeacher:
    """Mixin for distilling methods (LwF, iCaRL, WA): when a task ends, after the method's own
    end-of-task work, a frozen copy of `self.net` becomes the next task's teacher.  It is
    retained across the boundary (strict ledger kind `old_model`)."""
    old_net = None

    def end_task(self, task):
        super().end_task(task)
        self.old_net = frozen_copy(self.net)

    def teacher_logits(self, xb: torch.Tensor) -> torch.Tensor:
        """(B, old) logits of the old classes by the frozen previous network."""
        with torch.no_grad():
            return self.old_net(xb)[:, :self.old]

    def retained(self):
        kept = super().retained()
        if self.old_net is not None:
            kept.append(("old_model", "old_model", self.old_net))
        return kept
