"""lwf — Learning without Forgetting (Li & Hoiem, ECCV 2016 / TPAMI 2017), class-incremental,
as implemented in PyCIL (Zhou et al.).

Reference: G-U-N/PyCIL models/lwf.py (loss, `_KD_loss`, constants).
Recipe: `pycil-lwf` (values below; crop + flip + brightness 63/255; PyCIL's constants).

Mechanism: no exemplars.  The first task is plain cross-entropy.  On a later task the loss is
    CE(logits[:, old:seen], y - old) + lamda * KD_T(logits[:, :old], old_net(x)[:, :old])
on the new task's (augmented) images: the cross-entropy covers the new classes' logits only
(PyCIL restricts it so), and knowledge distillation (Hinton et al. 2015, `losses.kd_loss`)
keeps the old classes' softened outputs close to those of the network frozen at the end of
the previous task.

Retains: the network; the old network (a frozen copy made at the end of each task and kept
for the next task's distillation, ledger kind `old_model`; held at the allocation's
`store_dtype`, fp32 by default: nets/stored.py).

Defaults (PyCIL models/lwf.py): T = 2, lamda = 3; first task 200 epochs, lr 0.1, decay 0.1 at
60/120/160, weight decay 5e-4; later tasks 250 epochs, lr 0.1, decay at 60/120/180/220,
weight decay 2e-4; batch 128, SGD momentum 0.9 (recipe `pycil-lwf`).

Deviations from the paper, all PyCIL's: lamda = 3 (the paper's lambda_o is 1); one shared
full-width head instead of one head per task (class-incremental, task-agnostic inference);
no warm-up phase training the new head alone; the teacher's outputs are computed on the fly
on each augmented batch instead of recorded once before training.  Deviations from PyCIL:
the full-width head (finetune.py; arriving rows initialised as SimpleLinear, computes the
same).
Guarded by: tests/test_parity.py (test_lwf_step_is_new_class_ce_plus_three_kd,
test_pycil_heads_initialise_arriving_rows_as_simple_linear), mutants lwf.*, shared.*.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from clbudget.methods.finetune import Finetune, KeepsTeacher
from clbudget.methods.losses import kd_loss
from clbudget.methods.registry import register


@dataclass(frozen=True)
class LwFConfig:
    T: float = 2.0        # distillation temperature (paper section 3; PyCIL T = 2)
    lamda: float = 3.0    # KD weight (PyCIL lamda = 3; the paper's lambda_o = 1)


@register("lwf")
class LwF(KeepsTeacher, Finetune):
    Config = LwFConfig
    recipe = "pycil-lwf"

    def learn(self, task):
        old, seen, T, lamda = self.old, self.seen, self.config.T, self.config.lamda

        def step(xb, yb, idx):
            logits = self.net(xb)                                        # (B, K)
            if old == 0:
                return F.cross_entropy(logits[:, :seen], yb)
            ce = F.cross_entropy(logits[:, old:seen], yb - old)          # new classes only
            return ce + lamda * kd_loss(logits[:, :old], self.teacher_logits(xb), T)
        return self.trainer.fit(self.net.parameters(), task.x, task.y, step, self.phase(),
                                f"{self.name} task {task.index}", modules=[self.net])
