"""replay — exemplar replay (PyCIL "Replay"): train on the new task plus the memory.

Reference: G-U-N/PyCIL models/replay.py; memory models/base.py `build_rehearsal_memory` with
`fixed_memory` false (exps/replay.json): `_reduce_exemplar` keeps each old class's first
memory // seen exemplars, `_construct_exemplar` herds the new classes'.
Recipe: `pycil-replay` (first task 200 epochs, decay 0.1 at 60/120/170, wd 5e-4; later tasks
70 epochs, decay at 30/50, wd 2e-4; lr 0.1, batch 128, SGD momentum 0.9; crop + flip +
brightness 63/255; PyCIL's normalisation constants).
Mechanism: CE over every seen class on the new task's data plus the memory; after each task
the memory is rebalanced class-balanced, capacity // seen per class, new classes chosen by
herding on L2-normalised features of un-augmented images in eval mode (`memory.herding`), old
classes keep a prefix of their herding order.  Arriving head rows initialised as SimpleLinear
(finetune.py, nets.py).  Inference: the linear head (PyCIL's "CNN" accuracy).
Retains: the network; the exemplar memory (uint8 images, int16 labels).
Deviations: the full-width head (see finetune.py; computes the same); features are normalised
with max(norm, 1e-12) where PyCIL adds 1e-8 to the norm (no difference above 1e-8).
Guarded by: tests/test_parity.py (test_replay_step_is_ce_over_seen_classes,
test_herding_order_matches_the_reference_formula,
test_memory_after_a_task_is_the_reference_herding_of_the_networks_features), mutants replay.*,
shared.*.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from clbudget.methods.finetune import Finetune
from clbudget.methods.registry import register


@register("replay")
class Replay(Finetune):
    recipe = "pycil-replay"
    selection = "herding"

    def __init__(self, ctx, config=None):
        super().__init__(ctx, config)
        self.memory = self.new_memory()

    def training_data(self, task):
        mx, my = self.memory.data()
        return torch.cat([task.x, mx]), torch.cat([task.y, my])

    def classification_loss(self, logits, y):
        """PyCIL Replay / iCaRL / WA: CE over every seen class."""
        return F.cross_entropy(logits[:, :self.seen], y)

    def end_task(self, task):
        self.memory.rebalance(task.x, task.y, self.seen, self.selection,
                              self.features_of(self.net), self.trainer.generator)

    def retained(self):
        return super().retained() + self.memory.retained()
