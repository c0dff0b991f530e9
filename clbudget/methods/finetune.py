"""finetune — the lower bound: one network trained on each task in turn.

Retains: the network (backbone + full-width head).
Deviations: none; PyCIL's Finetune settings (see PhaseConfig).
"""
from __future__ import annotations

import torch.nn.functional as F

from clbudget.methods.base import Method
from clbudget.methods.nets import Classifier
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
