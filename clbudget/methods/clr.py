"""clr — Channel-wise Lightweight Reprogramming (Ge, Li, Yan, Zhang, Zhou, Ren & Itti, ICCV 2023,
arXiv 2307.11386), with the authors' code (github.com/gyhandy/Channel-wise-Lightweight-
Reprogramming: network/ReGhos_Block.py, network/utils.py, network/model.py, main.py).

Mechanism: a task-shared backbone is frozen.  Each task gets its own lightweight modules:
- after every k x k convolution with k > 1 of the frozen backbone, a depthwise 3x3 convolution
  (one 3x3 kernel per channel, no bias) initialised to the identity (`nn.init.dirac_`), so a
  new task starts from exactly the backbone's features (`ReGhos_Block`); 1x1 convolutions are
  not reprogrammed (the code's default "Ghost_reduced_v1"); `reprogram_1x1=True` reprograms
  every convolution (the code's "base" variant);
- its own BatchNorm layers (affine and running statistics, initialised from the backbone's and
  trained, `train_BN`);
- its own linear head over the task's classes.
A task's view is the backbone's module tree in which the convolutions are the backbone's own
(shared, frozen) modules and everything per-task is separate, so the backbone's weights are
never touched and a task's modules are never touched after its task: no forgetting.

Inference.  Task-aware (the paper's setting, a task oracle): `task_scores(x, j)` runs task j's
view and head.  Task-agnostic (our added variant, reported as the TAG accuracy): `scores(x)`
runs every seen task's view and picks, per image, the task whose softmax is most confident
(`task_selection="max_prob"`) or has the lowest entropy ("entropy"); its class
probabilities are the scores, every other class -inf.

Pretrained backbone.  The paper uses an ImageNet/SwAV/DINO-pretrained ResNet; nothing can be
downloaded here, so by default the backbone is trained, with a head over the first task's
classes, on the first task (B-k protocols: the base split, e.g. B50), then frozen; the first
task's modules are the identity kernels, the backbone's BN and that head.  `backbone_weights`
loads a user's backbone state_dict instead (`torch.load(..., weights_only=True)`), and then
every task, the first included, is learned by reprogramming.  The choice is in the result row
(`cost_figures()["pretrain"]`).

Retains (strict ledger): the backbone (parameters + BN buffers, frozen); per task: the depthwise
kernels (9 x the output channels of the reprogrammed convs), a BN set (affine + running
statistics + num_batches_tracked per BN layer) and the head (out_dim x classes + biases).
Modules are added task by task, so the ledger grows to the cost model's T-task total.
Cost figures: the extra values per task and their fraction of the backbone's parameters.
Per task, kernels + BN affine + BN running statistics are stored; for a ResNet-50 this is
34,560 + 2 x 26,560 + 2 x 26,560 = 140,800 values = 0.599% of its 23,508,032 parameters,
the paper's "0.59%"; the kernels alone are 0.147%.  Heads are reported apart.

Defaults (reference main.py): Adam lr 1e-3, 60 epochs, StepLR step 20 (= epochs // 3) gamma
0.1, batch 32, no weight decay, plus an L2 penalty lamda = 1e-5 on the L2 norm of every
trainable tensor (`utils.train`, reg="l2").  First-task pre-training: PyCIL's first-task
schedule (the recipe `clr`, phase pretrain).

Deviations: the code keeps the epoch with the best validation accuracy (early stopping on a
validation split); we keep the last epoch (no validation split in the protocol).  The
pretrained backbone is trained on the first task, not ImageNet (see above).  The
task-agnostic variant is ours (the paper assumes a task oracle).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from clbudget.methods.backbones import create_backbone
from clbudget.methods.base import Method
from clbudget.methods.nets import TASK_RULES, task_agnostic_scores
from clbudget.methods.registry import register


@dataclass(frozen=True)
class CLRConfig:
    # training: the recipe `clr` (phases task: reference main.py; pretrain: PyCIL first task)
    l2_reg: float = 1e-5            # reference main.py `lamda`, utils.train reg="l2"
    kernel_size: int = 3            # ReGhos_Block default kernel_size=3
    reprogram_1x1: bool = False     # False = "Ghost_reduced_v1" (the code's default method)
    backbone_weights: str = ""      # a backbone state_dict file; "" = pre-train on task 0
    task_selection: str = "max_prob"   # task-agnostic variant (ours): "max_prob" | "entropy"

    def __post_init__(self):
        if self.task_selection not in TASK_RULES:
            raise ValueError(f"task_selection must be one of {', '.join(TASK_RULES)}, "
                             f"got {self.task_selection!r}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 1, got {self.kernel_size}")


class ReprogrammedConv(nn.Module):
    """A frozen, shared convolution followed by a per-task depthwise kernel (identity init)."""

    def __init__(self, conv: nn.Conv2d, kernel_size: int = 3):
        super().__init__()
        self.conv = conv
        c = conv.out_channels
        self.kernel = nn.Conv2d(c, c, kernel_size, 1, kernel_size // 2, groups=c, bias=False,
                                device=conv.weight.device)
        nn.init.dirac_(self.kernel.weight, groups=c)       # (C, 1, k, k): centre 1, rest 0

    def forward(self, x):
        return self.kernel(self.conv(x))


def reprogram(backbone: nn.Module, kernel_size: int = 3, all_convs: bool = False) -> nn.Module:
    """A task's view of a frozen backbone: the same conv modules (shared, not copied), a
    `ReprogrammedConv` around each k x k (k > 1) conv (every conv if `all_convs`), and trainable
    copies of every BatchNorm layer.  Parameter-free modules are copied."""
    convs = {id(m): m for m in backbone.modules() if isinstance(m, nn.Conv2d)}
    view = copy.deepcopy(backbone, memo=dict(convs))       # convs shared, everything else copied
    for name, m in list(view.named_modules()):
        if isinstance(m, nn.Conv2d) and (all_convs or max(m.kernel_size) > 1):
            parent, _, child = name.rpartition(".")
            setattr(view.get_submodule(parent), child, ReprogrammedConv(m, kernel_size))
        elif isinstance(m, nn.BatchNorm2d):
            m.requires_grad_(True)
    return view


def kernels_of(view: nn.Module) -> list[torch.Tensor]:
    return [m.kernel.weight for m in view.modules() if isinstance(m, ReprogrammedConv)]


def batchnorms_of(view: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in view.modules() if isinstance(m, nn.BatchNorm2d)]


def extra_per_task(backbone: nn.Module, view: nn.Module) -> dict:
    """Per-task values of a view against its backbone's parameters (the paper's 0.59%)."""
    kernels = sum(k.numel() for k in kernels_of(view))
    bn = sum(m.num_features for m in batchnorms_of(view))
    params = sum(p.numel() for p in backbone.parameters())
    stored = kernels + 4 * bn                    # kernels + BN affine + BN running mean/var
    return {"kernel_params": kernels, "bn_affine_params": 2 * bn, "bn_statistics": 2 * bn,
            "backbone_params": params, "kernel_fraction": kernels / params,
            "extra_fraction": stored / params}


@register("clr")
class CLR(Method):
    Config = CLRConfig
    recipe = "clr"
    phases = ("task", "pretrain")
    phase_fallbacks = {"task": "later", "pretrain": "first"}

    def __init__(self, ctx, config=None):
        super().__init__(ctx, config)
        s = ctx.stream
        self.backbone = create_backbone(ctx.allocation.backbone, s.image_shape).to(self.device)
        self.views = nn.ModuleList()      # one reprogrammed view per task
        self.heads = nn.ModuleList()      # one head per task, over its classes
        self.pretrain = f"first task ({ctx.increments[0]} classes, B{ctx.increments[0]} split)"
        if self.config.backbone_weights:
            path = self.config.backbone_weights
            state = torch.load(path, map_location=self.device, weights_only=True)
            state = {k.removeprefix("backbone."): v for k, v in state.items()
                     if not k.startswith("head.")}
            self.backbone.load_state_dict(state)
            self.pretrain = f"weights: {path}"
            self.freeze_backbone()

    def freeze_backbone(self):
        self.backbone.requires_grad_(False)
        self.backbone.eval()

    def new_view(self) -> nn.Module:
        return reprogram(self.backbone, self.config.kernel_size, self.config.reprogram_1x1)

    def learn(self, task):
        lo = self.ctx.offsets[task.index]
        head = nn.Linear(self.backbone.out_dim, len(task.classes)).to(self.device)
        if task.index == 0 and not self.config.backbone_weights:
            return self.pretrain_on(task, head)
        view = self.new_view()
        params = [p for p in list(view.parameters()) + list(head.parameters()) if p.requires_grad]
        lam = self.config.l2_reg

        def step(xb, yb, idx):
            loss = F.cross_entropy(head(view(xb)), yb - lo)
            if lam:
                loss = loss + lam * sum(torch.linalg.vector_norm(p) for p in params)
            return loss
        out = self.trainer.fit(params, task.x, task.y, step, self.phase("task"),
                               f"clr task {task.index}", modules=[view, head])
        self.views.append(view)
        self.heads.append(head)
        return out

    def pretrain_on(self, task, head):
        """No pretrained weights: train the backbone on the first task, then freeze it."""
        def step(xb, yb, idx):
            return F.cross_entropy(head(self.backbone(xb)), yb)
        out = self.trainer.fit(list(self.backbone.parameters()) + list(head.parameters()),
                               task.x, task.y, step, self.phase("pretrain"),
                               f"clr pre-training on task {task.index}",
                               modules=[self.backbone, head])
        self.freeze_backbone()
        self.views.append(self.new_view())       # identity kernels, the backbone's BN
        self.heads.append(head)
        return out

    def task_logits(self, x, j):   # (B, k_j)
        return self.heads[j](self.views[j](x))

    def task_scores(self, x, task):
        lo = self.ctx.offsets[task]
        logits = self.task_logits(x, task)
        out = torch.full((len(x), self.ctx.stream.num_classes), float("-inf"), device=x.device)
        out[:, lo:lo + logits.shape[1]] = logits.float()
        return out

    def scores(self, x):
        probs = [F.softmax(self.task_logits(x, j).float(), dim=1) for j in range(len(self.views))]
        return task_agnostic_scores(probs, self.ctx.offsets, self.ctx.stream.num_classes,
                               self.config.task_selection)

    def retained(self):
        return [("backbone", "params", self.backbone),
                ("clr.kernels", "per_task", [k for v in self.views for k in kernels_of(v)]),
                ("clr.bn", "per_task", [m for v in self.views for m in batchnorms_of(v)]),
                ("clr.heads", "per_task", self.heads)]

    def feature_modules(self):
        return [self.backbone]

    def memo_extra(self):
        kernels = sum(k.numel() for v in self.views for k in kernels_of(v))
        bn = sum(m.weight.numel() + m.bias.numel() for v in self.views for m in batchnorms_of(v))
        return [("clr.kernels", "per_task", 4 * kernels), ("clr.bn_affine", "per_task", 4 * bn)]

    def cost_figures(self):
        view = self.views[0] if len(self.views) else self.new_view()
        figures = extra_per_task(self.backbone, view)
        figures["head_params"] = sum(p.numel() for p in self.heads.parameters())
        figures["pretrain"] = self.pretrain
        figures["task_agnostic"] = f"scores(): task by {self.config.task_selection}"
        figures["task_aware"] = "task_scores(): task oracle (the paper's setting)"
        return figures
