"""finetune — the lower bound: one network trained on each task in turn (PyCIL "Finetune").

Reference: G-U-N/PyCIL models/finetune.py (network utils/inc_net.py `IncrementalNet`).
Recipe: `pycil-finetune` (first task 200 epochs, lr 0.1, decay 0.1 at 60/120/170, wd 5e-4; later
tasks 80 epochs, decay at 40/70, wd 2e-4; batch 128, SGD momentum 0.9; crop + flip +
brightness 63/255; PyCIL's normalisation constants).
Mechanism: the first task is CE over its classes; a later task is CE over the new classes'
logits only, targets shifted by the number of old classes (PyCIL `logits[:, known:]`,
`targets - known`): old classes' logits get no gradient.  When a task begins, its classes'
head rows are initialised as PyCIL's SimpleLinear (`nets.Classifier.init_rows`, PyCIL
`update_fc`).
Retains: the network (backbone + full-width head).
On a domain-incremental stream (streams/multidomain.py) a later task brings no new classes;
its CE is over every seen class (`classification_loss`), plain fine-tuning of the shared head.
Deviations: the head is full-width from the start instead of grown per task; with arriving
rows re-initialised and every loss over seen columns it computes what the grown head does
(nets/classifier.py).  Backbone initialisation: nets/backbones.py.
Guarded by: tests/test_parity.py (test_finetune_step_is_new_class_ce,
test_pycil_heads_initialise_arriving_rows_as_simple_linear), mutants finetune.*.
"""
from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from clbudget.methods.base import Method
from clbudget.nets.classifier import Classifier, frozen_copy
from clbudget.nets.stored import store_as
from clbudget.methods.registry import register


@register("finetune")
class Finetune(Method):
    recipe = "pycil-finetune"
    head_init: ClassVar[str] = "pycil"   # nets.py: "pycil" re-initialises arriving rows

    def __init__(self, ctx, config=None):
        super().__init__(ctx, config)
        s = ctx.stream
        self.net = Classifier.create(ctx.allocation.backbone, s.image_shape,
                                     s.num_classes).to(self.device)

    def begin_task(self, task):
        super().begin_task(task)
        if self.head_init == "pycil":      # PyCIL update_fc: a fresh SimpleLinear's rows
            self.net.init_rows(self.old, self.seen)

    def training_data(self, task):
        return task.x, task.y

    def classification_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """PyCIL Finetune: CE over the current task's classes, targets shifted.  A task that
        brings no new classes (a domain-incremental stream's tasks 1+, run.py
        `run_increments`) trains on classes all seen before: CE over every seen class, plain
        fine-tuning of the shared head (PyCIL has no domain-incremental setting)."""
        lo = self.old if self.seen > self.old else 0
        return F.cross_entropy(logits[:, lo:self.seen], y - lo)

    def learn(self, task):
        x, y = self.training_data(task)

        def step(xb, yb, idx):
            return self.classification_loss(self.net(xb), yb)
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
    retained across the boundary (strict ledger kind `old_model`), stored at the allocation's
    `store_dtype` and computed in float32 (nets/stored.py)."""
    old_net = None

    def end_task(self, task):
        super().end_task(task)
        self.old_net = store_as(frozen_copy(self.net), self.ctx.allocation.store_dtype)

    def teacher_logits(self, xb: torch.Tensor) -> torch.Tensor:
        """(B, old) logits of the old classes by the frozen previous network."""
        with torch.no_grad():
            return self.old_net(xb)[:, :self.old]

    def retained(self):
        kept = super().retained()
        if self.old_net is not None:
            kept.append(("old_model", "old_model", self.old_net))
        return kept
