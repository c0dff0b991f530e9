"""der — Dynamically Expandable Representation (Yan, Xie & He, CVPR 2021), as in PyCIL.

Reference: G-U-N/PyCIL models/der.py (loss, aux targets, frozen old convnets, weight_align);
utils/inc_net.py `DERNet.update_fc` (new convnet from the last one's state, head one backbone
wider, SimpleLinear aux head); memory models/base.py as iCaRL's.
Recipe: `pycil-der` (first task 200 epochs, lr 0.1, decay 0.1 at 60/120/170, wd 5e-4; later
tasks 170 epochs, decay at 80/120/150, wd 2e-4; batch 128, SGD momentum 0.9; crop + flip +
brightness 63/255; PyCIL's normalisation constants).

Each task adds a whole backbone, initialised from the previous task's backbone
(PyCIL `DERNet.update_fc` loads the last convnet's state dict); all older backbones
are frozen (no gradients, eval mode, so their BN statistics stay put).  The
backbones' features are concatenated (B, T*D) into one linear head over the
classes seen so far; a temporary auxiliary head over the new backbone's features
(new classes + 1 "old" class) adds an auxiliary CE loss.  After each incremental
task the new classes' head rows are weight-aligned, and the exemplar memory is
rebalanced by class-balanced herding on the concatenated features.  Mechanics
shared with MEMO live in `expanding.py`.

Retains: T backbones (parameters + BN buffers; the T-1 frozen ones held at the allocation's
`store_dtype`, fp32 by default, fp16/bf16/int8 by `--store-dtype`: nets/stored.py), the head
Linear(T*D, K), the exemplar memory (uint8 images, int16 labels, or a codec's bytes).  The auxiliary head is rebuilt every
task and deleted after it (PyCIL keeps the last one around; it serves no purpose
after training, so it is not retained nor counted).

Deviations from the paper:
- no channel-level masks and no pruning (DER's section 3.3 sparsity loss): PyCIL
  does not implement them either ("masking and pruning are not implemented by the
  source repo", models/der.py), and the MEMO paper counts unpruned backbones.  The
  ledger therefore holds T full backbones.
- the paper's classifier-learning stage (re-training the head on class-balanced
  data) is replaced by weight aligning, as in PyCIL (`DER._train` calls
  `weight_align` after every incremental task).
- the head is full-width (K outputs from the start, masked to seen classes) but
  rebuilt one branch wider each task as PyCIL's `SimpleLinear` growth: old classes'
  rows copied into the first t*D columns, the rest freshly initialised as SimpleLinear
  (PyCIL's update_fc does the same; `nets.simple_linear_init_`, one helper for every head).
Guarded by: tests/test_parity.py (test_der_step_aux_labels_and_head_growth_match_the_reference,
test_herding_order_matches_the_reference_formula), tests/test_expanding_methods.py, mutants
der.* (also the mechanics MEMO shares), shared.*.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from clbudget.nets.backbones import create_backbone
from clbudget.methods.expanding import ExpandingConfig, ExpandingMethod, ExpandingNet
from clbudget.methods.registry import register


@dataclass(frozen=True)
class DERConfig(ExpandingConfig):
    """PyCIL models/der.py module constants (see ExpandingConfig)."""


@register("der")
class DER(ExpandingMethod):
    Config = DERConfig

    def __init__(self, ctx, config=None):
        super().__init__(ctx, config)
        s = ctx.stream
        backbone = create_backbone(ctx.allocation.backbone, s.image_shape).to(self.device)
        self.net = ExpandingNet(nn.Identity(), backbone, backbone.out_dim, s.num_classes)
        self.memory = self.new_memory()

    def retained(self):
        return ([("backbones", "params", self.net.branches),
                 ("head", "params", self._head_tensors())] + self.memory.retained())

    def feature_modules(self):
        return [self.net.branches]
