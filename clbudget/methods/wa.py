"""wa — Weight Aligning: "Maintaining Discrimination and Fairness in Class Incremental Learning"
(Zhao et al., CVPR 2020), as implemented in PyCIL (Zhou et al.).

Reference: G-U-N/PyCIL models/wa.py; utils/inc_net.py `IncrementalNet.weight_align`; memory
models/base.py as iCaRL's.
Recipe: `pycil-wa` (values below; crop + flip + brightness 63/255; PyCIL's constants).

Mechanism: iCaRL-style training on the new task plus the exemplar memory with
    (1 - lam) * CE(logits[:, :seen], y) + lam * KD_T(logits[:, :old], old_net(x)[:, :old]),
lam = old / seen (paper eq. 3, lambda = n / (n + m); PyCIL `kd_lambda`), T = 2.  After training
an incremental task, Weight Aligning (paper eq. 6-7, `losses.align_weights`) rescales the new
classes' head rows by gamma = mean ||w_old|| / mean ||w_new|| so both groups have the same mean
norm (biases untouched, as PyCIL's `weight_align`).  Inference is the aligned linear head.
Memory: class-balanced herding (`ExemplarMemory.rebalance`, PyCIL `build_rehearsal_memory`).

Retains: the network (aligned head); the old network (kind `old_model`, a frozen copy taken after
alignment, kept for the next task's distillation, at the allocation's `store_dtype`:
nets/stored.py); the exemplar memory.

Defaults (PyCIL models/wa.py): T = 2; first task 200 epochs, lr 0.1, decay 0.1 at 60/120/170,
weight decay 5e-4; later tasks 170 epochs, lr 0.1, decay at 60/100/140, weight decay 2e-4;
batch 128, SGD momentum 0.9 (recipe `pycil-wa`).

Deviations from the paper: the paper also clips the head's weights to be non-negative after
every optimisation step (section 3.3, "weight clipping"); PyCIL does not, so `clip_weights`
defaults to False.  When True, the clip runs at the start of every step (before the forward)
and once after the phase, which is the same as clipping after every step except that the
freshly initialised head is clipped before the first step.  Deviations from PyCIL: the
full-width head (finetune.py; computes the same); PyCIL aligns a second time in `after_task`,
on already aligned rows (gamma = 1 up to rounding): not repeated here.
Guarded by: tests/test_parity.py (test_wa_step_and_weight_aligning_match_the_reference,
test_pycil_heads_initialise_arriving_rows_as_simple_linear,
test_memory_after_a_task_is_the_reference_herding_of_the_networks_features),
tests/test_distillation_methods.py
(test_wa_aligns_new_class_weight_norms_to_old_ones), mutants wa.*, shared.*,
losses.align_weights_noop.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from clbudget.methods.losses import align_weights, kd_loss
from clbudget.methods.finetune import KeepsTeacher
from clbudget.methods.registry import register
from clbudget.methods.replay import Replay


@dataclass(frozen=True)
class WAConfig:
    T: float = 2.0              # PyCIL models/wa.py: T = 2
    clip_weights: bool = False  # paper section 3.3 weight clipping; PyCIL: off


@register("wa")
class WA(KeepsTeacher, Replay):
    Config = WAConfig
    recipe = "pycil-wa"

    def __init__(self, ctx, config=None):
        super().__init__(ctx, config)
        self.last_gamma = 1.0   # the alignment factor of the latest task (a float, not a tensor)

    def clip_head(self) -> None:
        with torch.no_grad():
            self.net.head.weight.clamp_(min=0)

    def learn(self, task):
        x, y = self.training_data(task)
        old, seen, T = self.old, self.seen, self.config.T
        lam = old / seen                                   # paper eq. 3: n / (n + m)
        clip = self.config.clip_weights

        def step(xb, yb, idx):
            if clip:
                self.clip_head()
            logits = self.net(xb)                                        # (B, K)
            ce = F.cross_entropy(logits[:, :seen], yb)
            if not old:
                return ce
            with torch.no_grad():
                teacher = self.teacher_logits(xb)                        # (B, old)
            return (1 - lam) * ce + lam * kd_loss(logits[:, :old], teacher, T)
        stats = self.trainer.fit(self.net.parameters(), x, y, step, self.phase(),
                                 f"{self.name} task {task.index}", modules=[self.net])
        if clip:
            self.clip_head()
        if old:
            self.last_gamma = align_weights(self.net.head.weight, old, seen)
            stats["align_gamma"] = self.last_gamma
        return stats
