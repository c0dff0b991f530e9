"""joint — the upper bound: every task trained on all data of the tasks seen so far.

Not budgeted: its ledger lists the past data it keeps (as exemplars) so its true
cost is visible, but no budget limits it and the allocator never charges it.
Retains: the network; all past training data.
"""
from __future__ import annotations

import torch

from clbudget.methods.finetune import Finetune
from clbudget.methods.registry import register


@register("joint")
class Joint(Finetune):
    budgeted = False

    def __init__(self, ctx, config=None):
        super().__init__(ctx, config)
        self.past_x: list[torch.Tensor] = []
        self.past_y: list[torch.Tensor] = []

    def training_data(self, task):
        return torch.cat(self.past_x + [task.x]), torch.cat(self.past_y + [task.y])

    def end_task(self, task):
        self.past_x.append(task.x)
        self.past_y.append(task.y)

    def retained(self):
        return super().retained() + [("past_images", "exemplars", self.past_x),
                                     ("past_labels", "exemplar_aux", self.past_y)]
