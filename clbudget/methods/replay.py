"""replay — exemplar replay (PyCIL "Replay"): train on the new task plus the memory.

Retains: the network; the exemplar memory (uint8 images, int16 labels),
class-balanced, selected by herding (as PyCIL's `build_rehearsal_memory`).
Deviations: none.
"""
from __future__ import annotations

import torch

from clbudget.methods.finetune import Finetune
from clbudget.methods.registry import register


@register("replay")
class Replay(Finetune):
    selection = "herding"

    def __init__(self, ctx, config=None):
        super().__init__(ctx, config)
        self.memory = self.new_memory()

    def training_data(self, task):
        mx, my = self.memory.data()
        return torch.cat([task.x, mx]), torch.cat([task.y, my])

    def end_task(self, task):
        self.memory.rebalance(task.x, task.y, self.seen, self.selection,
                              self.features_of(self.net), self.trainer.generator)

    def retained(self):
        return super().retained() + self.memory.retained()
