"""memo — A Model or 603 Exemplars: Memory-Efficient Expandable Model (Zhou, Wang, Ye &
Zhan, ICLR 2023), as in PyCIL (models/memo.py, utils/inc_net.py `AdaptiveNet`).

The backbone is split into generalized blocks (shallow: conv1 + stage1 + stage2 of
a CIFAR ResNet; the stem + layer1..3 of an ImageNet ResNet) and a specialized block
(deep: stage3 / layer4 + pooling).  One set of generalized blocks is shared by every
task; each task adds a specialized block, initialised from the previous task's one
(`AdaptiveNet.update_fc` loads the last extractor's state dict).  Old specialized
blocks are frozen (no gradients, eval mode: `train_adaptive` false); the
generalized blocks keep training in every task (`train_base` true, both from PyCIL
exps/memo.json).  The specialized blocks' features are concatenated into one linear
head (paper eq. 3); a temporary auxiliary head on the new block's features (new
classes + 1 "old" class) adds an auxiliary CE loss (`alpha_aux` 1); after each
incremental task the new classes' head rows are weight-aligned; the exemplar
memory is rebalanced by class-balanced herding on the concatenated features.
Mechanics shared with DER live in `expanding.py`.

Retains: the generalized blocks (parameters + BN buffers), T specialized blocks
(parameters + BN buffers; the T-1 frozen ones held at the allocation's `store_dtype`, fp32 by
default: nets/stored.py), the head Linear(T*D, K), the exemplar memory (uint8 images, int16
labels, or a codec's bytes).  The auxiliary head is rebuilt every task and deleted after it.

Deviations:
- the head is full-width (K outputs, masked to seen classes) but rebuilt one block
  wider each task as PyCIL's `SimpleLinear` growth: old classes' rows copied into
  the first t*D columns, the rest freshly initialised.
- the project's copy of the paper (a slide summary) gives incremental-task
  milestones 80/150; we use PyCIL exps/memo.json's [80, 120, 150], the authors' code.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from clbudget.nets.backbones import create_backbone, split_backbone  # noqa: F401 (old home)
from clbudget.methods.expanding import ExpandingConfig, ExpandingMethod, ExpandingNet
from clbudget.methods.registry import register


@dataclass(frozen=True)
class MEMOConfig(ExpandingConfig):
    """PyCIL exps/memo.json (scheduler "steplr", lrate_decay 0.1; see ExpandingConfig)."""
    train_generalized: bool = True   # exps/memo.json "train_base": true


@register("memo")
class MEMO(ExpandingMethod):
    Config = MEMOConfig
    specialized_stages: ClassVar[int] = 1   # MEMO's default split (PyCIL memo_resnet_cifar)

    def __init__(self, ctx, config=None):
        super().__init__(ctx, config)
        s = ctx.stream
        backbone = create_backbone(ctx.allocation.backbone, s.image_shape).to(self.device)
        trunk, branch = split_backbone(backbone, self.specialized_stages)
        self.net = ExpandingNet(trunk, branch, backbone.out_dim, s.num_classes)
        self.memory = self.new_memory()

    def trunk_trainable(self) -> bool:
        # PyCIL MEMO.after_task: after the first task the generalized blocks are either
        # kept training (train_base) or frozen for good.
        return self.task == 0 or self.config.train_generalized

    def retained(self):
        return ([("generalized", "params", self.net.trunk),
                 ("specialized", "params", self.net.branches),
                 ("head", "params", self._head_tensors())] + self.memory.retained())

    def feature_modules(self):
        return [self.net.trunk, self.net.branches]


@register("memo2")
class MEMO2(MEMO):
    """MEMO-2: "the last two groups [of residual blocks] as specialized blocks" (the seed's
    definition beside MEMO's last group; a CIFAR ResNet: stage2 and stage3 per task, an
    ImageNet ResNet: layer3 and layer4), the rest shared.  PyCIL's convs/memo_* build the
    one-stage split; this variant moves the split one stage down.  Its allocation is the cost
    model `memo2` (budget/costs.py `memo2_stats`)."""
    specialized_stages = 2
