"""joint — the upper bound: at every task, a network trained on all data of the tasks seen so far.

Reference: Mammoth models/joint.py (aimagelab/mammoth): its `observe` trains nothing; at the
end of the last task `end_task` trains the network it was built with, never trained before,
on every task's training data for `n_epochs`: joint training from scratch.  PyCIL has no
joint learner (models/ has none); the loss, network and head initialisation are PyCIL Replay's
(models/replay.py: CE over every seen class).
Recipe: `pycil-replay` (first task 200 epochs, decay 0.1 at 60/120/170, wd 5e-4; later tasks
70 epochs, 30/50, wd 2e-4; see replay.py).
Mechanism (`start = "scratch"`, the default): when a task begins, a fresh network (new
backbone and head, initialised as at the start of the run; PyCIL's SimpleLinear rows for
every seen class) replaces the previous one and is trained on the union of every seen task's
training data with the recipe's from-scratch phase ("first": PyCIL's schedule for a network
trained from its initialisation).  Mammoth's joint does this once, after the last task; doing
it at every task gives the upper bound of every row of the accuracy matrix, and its last row
is Mammoth's.  `start = "continue"`: the previous network continues on the union with the
"later" phase (what joint did here before: Replay with an unbounded memory).
Not budgeted: its ledger lists the past data it keeps (as exemplars) so its true
cost is visible, but no budget limits it and the allocator never charges it.
Retains: the network; all past training data.
Deviations: Mammoth trains joint only after the last task (earlier rows of its matrix are an
untrained network's); we train it at every task.  Mammoth's joint uses its dataset's one
schedule; we use the recipe's first-task phase for each fresh network.
Guarded by: tests/test_parity.py (test_joint_trains_on_every_seen_image_with_ce_over_seen),
tests/test_protocol.py (test_joint_trains_a_fresh_network_at_every_task), mutants joint.*.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from clbudget.methods.finetune import Finetune
from clbudget.methods.registry import register
from clbudget.nets.classifier import Classifier


@dataclass(frozen=True)
class JointConfig:
    start: str = "scratch"   # "scratch": a fresh network per task (Mammoth); "continue"

    def __post_init__(self):
        if self.start not in ("scratch", "continue"):
            raise ValueError(f"joint option start must be scratch or continue, got "
                             f"{self.start!r}")


@register("joint")
class Joint(Finetune):
    Config = JointConfig
    recipe = "pycil-replay"
    budgeted = False

    def __init__(self, ctx, config=None):
        super().__init__(ctx, config)
        self.past_x: list[torch.Tensor] = []
        self.past_y: list[torch.Tensor] = []

    @property
    def from_scratch(self) -> bool:
        return self.config.start == "scratch"

    def begin_task(self, task):
        super().begin_task(task)
        if self.from_scratch and task.index > 0:   # a new network, as at the run's start
            s = self.ctx.stream
            self.net = Classifier.create(self.ctx.allocation.backbone, s.image_shape,
                                         s.num_classes).to(self.device)
            if self.head_init == "pycil":         # a fresh SimpleLinear over every seen class
                self.net.init_rows(0, self.seen)

    def phase(self, name=None):
        """A fresh network trains with the from-scratch phase at every task."""
        return super().phase(name or ("first" if self.from_scratch else None))

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
