"""joint — the upper bound: every task trained on all data of the tasks seen so far.

Reference: none in PyCIL (it has no joint learner); joint is PyCIL's Replay (models/replay.py)
with an unbounded memory holding every past training image: the same loss (CE over every seen
class), the same network and head initialisation, the same recipe.
Recipe: `pycil-replay` (later tasks 70 epochs, decay 0.1 at 30/50, wd 2e-4; first task 200
epochs; see replay.py).
Not budgeted: its ledger lists the past data it keeps (as exemplars) so its true
cost is visible, but no budget limits it and the allocator never charges it.
Retains: the network; all past training data.
Deviations: each task continues training the previous network on the union (as Replay does)
instead of training a fresh network on all data from scratch, the other common meaning of
"joint"; with Replay's recipe, joint and replay differ in their training data alone.
Guarded by: tests/test_parity.py (test_joint_trains_on_every_seen_image_with_ce_over_seen),
mutants joint.*.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from clbudget.methods.finetune import Finetune
from clbudget.methods.registry import register


@register("joint")
class Joint(Finetune):
    recipe = "pycil-replay"
    budgeted = False

    def __init__(self, ctx, config=None):
        super().__init__(ctx, config)
        self.past_x: list[torch.Tensor] = []
        self.past_y: list[torch.Tensor] = []

    def training_data(self, task):
        return torch.cat(self.past_x + [task.x]), torch.cat(self.past_y + [task.y])

    def classification_loss(self, logits, y):
        """Replay's: CE over every seen class."""
        return F.cross_entropy(logits[:, :self.seen], y)

    def end_task(self, task):
        self.past_x.append(task.x)
        self.past_y.append(task.y)

    def retained(self):
        return super().retained() + [("past_images", "exemplars", self.past_x),
                                     ("past_labels", "exemplar_aux", self.past_y)]
