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

Inference.  CLR is task-aware (`task_aware_only`): the paper assumes a task oracle, and so
does its evaluation here: `task_scores(x, j)` runs task j's view and head, and the run's
headline accuracy is the task-aware one (row accuracy.setting = "task-aware").  `scores(x)` is
an extension of ours, never used for the headline: every seen task's view, and per image the
task whose softmax is most confident (`task_selection="max_prob"`) or has the lowest entropy
("entropy"); its class probabilities are the scores, every other class -inf.

Pretrained backbone (the premise: a rich frozen backbone; the authors use an ImageNet-pretrained
ResNet at 224x224).  `backbone_weights=FILE` loads a torchvision-format ImageNet ResNet-18/50
state dict (or a clbudget one) with `torch.load(..., weights_only=True)` (methods/pretrained.py,
which names the one command that writes torchvision's file; a file that does not fit is refused
naming its missing / unexpected keys or first wrong shape in the file's own names).
`input_size=S` resizes every input to S x S on the device before the backbone (`resize_inputs`:
bilinear, antialiased, half-pixel centres = PIL's resize, which the reference's
`transforms.Resize((224, 224))` calls; on the normalised floats, where PIL resizes uint8 and
rounds), in the task steps, the pre-training steps and evaluation alike, and the backbone is
built for S (torchvision's 7x7 stem above 64 px, so `input_size=224` takes torchvision's
file); the stream, its exemplars and its budgets keep the stored size (3x32x32 uint8 = 3,072
bytes per CIFAR image).  Without a file (offline default,
`pretrain="glyphs"`) the backbone is pre-trained on `pretrain_classes` procedural glyph classes
disjoint from the stream (recipe `clr`, phase pretrain) and frozen.  Either way every task, the
first included, is learned by reprogramming.  `pretrain="first_task"` is the old protocol
(train the backbone on task 0, B-k style, then freeze; task 0 keeps the identity kernels, the
backbone's BN and its head), kept only for comparison.  The provenance (source, classes,
epochs, file or weights SHA-256) is in the row (`cost_figures()["pretrain"]`), and one label
(`cost_figures()["backbone_provenance"]`: "torchvision resnet18 from FILE (sha256 <12 hex>)",
"glyphs stand-in (20 classes)") in the row and in every report label of the run.
Guarded by tests/test_clr_backbone.py (torchvision's resnet18 layout written out by hand and
checked once against torchvision 0.29.1; a hand-written torchvision forward; PIL's resize) and
the mutants clr.* of bench/mutant_catalog/clr.py (its pretrained-backbone section).

Retains (strict ledger): the backbone (parameters + BN buffers, frozen; held at the allocation's
`store_dtype`, fp32 by default, fp16/bf16/int8 weight-only by `--store-dtype`, computed in
float32: nets/stored.py; stored once pre-training is done); per task: the depthwise
kernels (9 x the output channels of the reprogrammed convs), a BN set (affine + running
statistics + num_batches_tracked per BN layer) and the head (out_dim x classes + biases).
Modules are added task by task, so the ledger grows to the cost model's T-task total.

Per-task overhead, as the paper defines it (trainable parameters added per task, against the
backbone's parameters; `extra_per_task`): kernels + BN affine = 34,560 + 53,120 = 87,680 on
ResNet-50 (23,508,032 parameters) = 0.373%; 35,136 + 9,600 = 44,736 on ResNet-18 (11,176,512)
= 0.400%; 10,224 + 2,272 = 12,496 on the CIFAR ResNet32 (463,504) = 2.70%.  The head adds
(out_dim + 1) x the task's classes.  Stored per task (the ledger) is more: the BN running
statistics too (ResNet32: 3.19%).  The paper's "0.59%" is not reproduced by any of these
counts (kernels + BN affine + running statistics on ResNet-50 happen to give 0.599%).

Defaults (reference main.py): Adam lr 1e-3, 60 epochs, StepLR step 20 (= epochs // 3) gamma
0.1, batch 32, no weight decay, plus an L2 penalty lamda = 1e-5 on the L2 norm of every
trainable tensor (`utils.train`, reg="l2").  Glyph pre-training: PyCIL's first-task schedule
(the recipe `clr`, phase pretrain; `--epochs` leaves it alone, `--recipe-option
pretrain.epochs=N` sets it), 20 classes x 100 images: the first 20 glyph class ids the
stream's tasks do not hold (`ctx.source_classes`, read from the stream: a cut, shuffled or
multi-domain glyphs stream holds a shuffled subset, e.g. glyphs 68, 56, 78, 8 for
`cifar10/4:2+fashion-mnist/4:2+glyphs/4:2`, whose stand-in takes 0-7 and 9-20); 0-19 for a
stream without glyphs (fewer when the 119-character alphabet runs out, the label says so;
refused, saying what to do, when fewer than 2 remain).  Guarded by tests/test_clr_stand_in.py
(every stream form: plain, cut, multi-domain, several class orders; domain-incremental refused)
and the mutants `clr.*stand_in*` of bench/mutant_catalog/clr.py.
Augmentation: none in the task phase, as the reference (dataset/dataloader_reader.py l. 38-41:
Resize((224, 224)) + ToTensor + ImageNet Normalize only); the pre-training phase augments with
random crop + flip (the recipe's policy "crop-flip"; PyCIL's first task would add brightness),
at the stream's size, before any `input_size` resize.

Deviations: the code keeps the epoch with the best validation accuracy (early stopping on a
validation split); we keep the last epoch (no validation split in the protocol).  Images stay
at the stream's size unless `input_size` is given (the reference always resizes to 224x224; the
default 0 keeps the offline glyph stand-in cheap), and are resized after normalisation without
PIL's uint8 rounding (at most 1 of 255 apart, tests/test_clr_backbone.py).  They are normalised
with the training set's statistics by default (the reference: ImageNet's constants, whatever
the data set; `--normalization pycil:imagenet100` applies those: mean 0.485/0.456/0.406, std
0.229/0.224/0.225).  A budget's `Nxresnet18` terms are
model equivalents at the stream's stored size (a budget is the same bytes for every method of
a sweep: the 3x3 stem below 64 px), while the allocation's preview (`predicted_ledger`) and
the ledger price the backbone CLR holds, built for `input_size` (`network_input_shape`: the
7x7 stem above 64 px, 64*3*7*7 - 64*3*3*3 = 7,680 parameters = 30,720 bytes more on
ResNet-18; tests/test_clr_backbone.py `test_the_preview_prices_the_stem_the_run_builds`).  Offline, the backbone is pre-trained on glyphs, not ImageNet (see
above).  The task-agnostic scores are ours.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from clbudget.nets.backbones import create_backbone
from clbudget.methods.base import Method
from clbudget.nets.classifier import TASK_RULES, task_agnostic_scores
from clbudget.nets.stored import is_stored, logical_numel, store_as, unstored_copy
from clbudget.methods.pretrained import (disjoint_glyph_classes, glyph_images,
                                         load_backbone_weights, provenance_label,
                                         weights_sha256)
from clbudget.methods.registry import register
from clbudget.streams.catalog import check_choice


PRETRAIN_SOURCES = ("glyphs", "first_task")


@dataclass(frozen=True)
class CLRConfig:
    # training: the recipe `clr` (phases task: reference main.py; pretrain: PyCIL first task)
    l2_reg: float = 1e-5            # reference main.py `lamda`, utils.train reg="l2"
    kernel_size: int = 3            # ReGhos_Block default kernel_size=3
    reprogram_1x1: bool = False     # False = "Ghost_reduced_v1" (the code's default method)
    backbone_weights: str = ""      # a torchvision/clbudget state dict file (methods/pretrained.py)
    pretrain: str = "glyphs"        # without a file: "glyphs" (disjoint) | "first_task" (old)
    pretrain_classes: int = 20      # glyph classes of the offline pre-training
    pretrain_per_class: int = 100   # glyph images per class
    pretrain_first_class: int = 0   # first glyph class id tried; the stream's are skipped
    task_selection: str = "max_prob"   # task-agnostic extension (ours): "max_prob" | "entropy"
    input_size: int = 0             # side S: inputs resized to S x S before the backbone, as
    #                                 the reference's Resize((224, 224)); 0 = the stream's size

    def __post_init__(self):
        if self.input_size < 0 or 0 < self.input_size < 8:
            raise ValueError(f"input_size must be 0 (the stream's image size) or a side of at "
                             f"least 8 pixels (the reference's: 224), got {self.input_size}")
        check_choice("task_selection", self.task_selection, TASK_RULES)
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 1, got {self.kernel_size}")
        check_choice("pretrain", self.pretrain, PRETRAIN_SOURCES)
        if self.pretrain_first_class < 0:
            raise ValueError(f"pretrain_first_class must be >= 0 (the first glyph class id the "
                             f"stand-in tries; the stream's own glyph classes are skipped "
                             f"whatever it is), got {self.pretrain_first_class}; nearest: 0")
        if self.pretrain_classes < 2 or self.pretrain_per_class < 1:
            raise ValueError(f"pretrain_classes must be >= 2 and pretrain_per_class >= 1, got "
                             f"{self.pretrain_classes} and {self.pretrain_per_class}")


def resize_inputs(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, size, size), bilinear with antialiasing and half-pixel centres:
    PIL's `Image.resize(..., BILINEAR)`, which the reference's `transforms.Resize((224, 224))`
    calls on its PIL images (tests/test_clr_backbone.py compares with PIL).  Applied to the
    normalised float inputs: bilinear weights sum to 1, so resizing commutes with the
    per-channel normalisation; PIL rounds its resized pixels to uint8, we do not.
    `size` 0 (or the images' own size) returns `x` unchanged."""
    if not size or tuple(x.shape[-2:]) == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=True)


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

    def replace(name: str, module: nn.Module) -> nn.Module:
        parent, _, child = name.rpartition(".")
        setattr(view.get_submodule(parent), child, module)
        return module

    for name, m in list(view.named_modules()):
        if isinstance(m, nn.Conv2d) and (all_convs or max(m.kernel_size) > 1):
            replace(name, ReprogrammedConv(m, kernel_size))
        elif isinstance(m, nn.BatchNorm2d):
            if is_stored(m):      # the task's own BN: float32 values of the stored backbone's
                m = replace(name, unstored_copy(m))
            m.requires_grad_(True)
    return view


def kernels_of(view: nn.Module) -> list[torch.Tensor]:
    return [m.kernel.weight for m in view.modules() if isinstance(m, ReprogrammedConv)]


def batchnorms_of(view: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in view.modules() if isinstance(m, nn.BatchNorm2d)]


def extra_per_task(backbone: nn.Module, view: nn.Module, head_params: int = 0) -> dict:
    """Per-task values of a view against its backbone's parameters.  The paper's measure is
    the trainable parameters added per task (kernels + BN affine, `trainable_fraction`; with
    the task's head `..._with_head`); stored per task adds the BN running statistics."""
    kernels = sum(k.numel() for k in kernels_of(view))
    bn = sum(m.num_features for m in batchnorms_of(view))
    params = logical_numel(backbone)
    trainable = kernels + 2 * bn
    stored = kernels + 4 * bn                    # kernels + BN affine + BN running mean/var
    return {"kernel_params": kernels, "bn_affine_params": 2 * bn, "bn_statistics": 2 * bn,
            "backbone_params": params, "kernel_fraction": kernels / params,
            "trainable_params_per_task": trainable, "trainable_fraction": trainable / params,
            "head_params_per_task": head_params,
            "trainable_fraction_with_head": (trainable + head_params) / params,
            "stored_fraction": stored / params}


@register("clr")
class CLR(Method):
    Config = CLRConfig
    recipe = "clr"
    phases = ("task", "pretrain")
    task_phases = ("task",)            # the backbone's pre-training keeps its recipe's values
    phase_fallbacks = {"task": "later"}
    task_aware_only = True       # the paper's setting: a task oracle

    def __init__(self, ctx, config=None):
        super().__init__(ctx, config)
        s = ctx.stream
        # the backbone is built for the images it sees: a 7x7 stem above 64 px (backbones.py)
        self.input_shape = self.network_input_shape(self.config, s.image_shape)
        self.backbone = create_backbone(ctx.allocation.backbone, self.input_shape).to(self.device)
        self.views = nn.ModuleList()      # one reprogrammed view per task
        self.heads = nn.ModuleList()      # one head per task, over its classes
        if self.config.backbone_weights:
            self.pretrain = load_backbone_weights(self.config.backbone_weights, self.backbone,
                                                  self.device)
            self.freeze_backbone()
        elif self.config.pretrain == "first_task":
            self.pretrain = {"source": "first_task", "classes": ctx.increments[0],
                             "note": f"B{ctx.increments[0]} split: the stream's own task 0"}
        else:
            self.pretrain = {"source": "glyphs", "done": False}

    @classmethod
    def network_input_shape(cls, config, image_shape: tuple) -> tuple:
        """(C, S, S) with S = input_size, else the stored shape; the allocator's preview
        prices the backbone built for it (the 7x7 stem above 64 px)."""
        size = config.input_size
        return (image_shape[0], size, size) if size else tuple(image_shape)

    def freeze_backbone(self):
        self.backbone.requires_grad_(False)
        self.backbone.eval()

    def store_backbone(self):
        """Hold the frozen backbone at the allocation's `store_dtype` (nets/stored.py).  Every
        view shares its convolutions, so they compute with the stored values too; a view's BN
        starts from the stored BN's float32 values (`reprogram`)."""
        if self.ctx.allocation.store_dtype != "fp32":
            store_as(self.backbone, self.ctx.allocation.store_dtype)

    def new_view(self) -> nn.Module:
        return reprogram(self.backbone, self.config.kernel_size, self.config.reprogram_1x1)

    def learn(self, task):
        lo = self.ctx.offsets[task.index]
        head = nn.Linear(self.backbone.out_dim, len(task.classes)).to(self.device)
        out = {"loss": []}
        if task.index == 0 and self.pretrain["source"] == "first_task":
            return self.pretrain_on(task.x, task.y, head, f"task {task.index}")
        if self.pretrain["source"] == "glyphs" and not self.pretrain["done"]:
            out = self.pretrain_offline()
        self.store_backbone()        # after pre-training (and its SHA-256); idempotent
        view = self.new_view()
        params = [p for p in list(view.parameters()) + list(head.parameters()) if p.requires_grad]
        lam = self.config.l2_reg

        def step(xb, yb, idx):
            loss = F.cross_entropy(head(view(self.resize(xb))), yb - lo)
            if lam:
                loss = loss + lam * sum(torch.linalg.vector_norm(p) for p in params)
            return loss
        stats = self.trainer.fit(params, task.x, task.y, step, self.phase("task"),
                                 f"clr task {task.index}", modules=[view, head])
        self.views.append(view)
        self.heads.append(head)
        return {**stats, "loss": out["loss"] + stats["loss"]}

    def pretrain_offline(self) -> dict:
        """Pre-train the backbone on glyph classes disjoint from the stream, then freeze it:
        the stream's glyph class ids are those its tasks hold (`ctx.source_classes`, from the
        stream itself: not from its name or class count), whatever its glyphs options."""
        cfg, s = self.config, self.ctx.stream
        if self.ctx.source_classes is None:
            raise ValueError("CLR's glyph stand-in needs the stream's classes "
                             "(Context.source_classes, set by experiment.run.prepare) to keep "
                             "its glyph classes disjoint; or pass backbone_weights=FILE")
        held = self.ctx.source_classes.get("glyphs", ())
        labels = disjoint_glyph_classes(held, cfg.pretrain_classes, cfg.pretrain_first_class)
        x, y = glyph_images(labels, cfg.pretrain_per_class, s.image_shape)
        x, y = x.to(self.device), y.to(self.device)
        head = nn.Linear(self.backbone.out_dim, len(labels)).to(self.device)
        out = self.pretrain_on(x, y, head, f"{len(labels)} disjoint glyph classes")
        from clbudget.streams.glyphs import ALPHABET
        self.pretrain = {"source": "glyphs", "done": True, "glyph_classes": labels,
                         "characters": "".join(ALPHABET[i] for i in labels),
                         "requested_classes": cfg.pretrain_classes,
                         "stream_glyph_classes": list(held),
                         "images": len(y), "epochs": self.phase("pretrain").epochs,
                         "sha256": weights_sha256(self.backbone)}
        return out

    def pretrain_on(self, x, y, head, what: str) -> dict:
        """Train the backbone (+ a head) on (x, y), then freeze it.  For the first-task
        protocol the head is task 0's, with the identity view."""
        def step(xb, yb, idx):
            return F.cross_entropy(head(self.backbone(self.resize(xb))), yb - int(y.min()))
        out = self.trainer.fit(list(self.backbone.parameters()) + list(head.parameters()),
                               x, y, step, self.phase("pretrain"), f"clr pre-training on {what}",
                               modules=[self.backbone, head])
        self.freeze_backbone()
        if self.pretrain["source"] == "first_task":
            self.views.append(self.new_view())       # identity kernels, the backbone's BN
            self.heads.append(head)
        return out

    def resize(self, x):   # (B, C, H, W) normalised -> (B, C, S, S) with S = input_size
        return resize_inputs(x, self.config.input_size)

    def task_logits(self, x, j):   # (B, k_j)
        return self.heads[j](self.views[j](self.resize(x)))

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

    def phases_not_run(self):
        if self.config.backbone_weights:    # the file is the pre-trained backbone
            return {"pretrain": f"backbone weights from {self.config.backbone_weights}"}
        return {}

    def cost_figures(self):
        view = self.views[-1] if len(self.views) else self.new_view()
        head = (self.backbone.out_dim + 1) * self.ctx.increments[len(self.views) - 1 if
                                                                 len(self.views) else 0]
        figures = extra_per_task(self.backbone, view, head)
        figures["head_params"] = sum(p.numel() for p in self.heads.parameters())
        figures["pretrain"] = dict(self.pretrain)
        figures["backbone_provenance"] = provenance_label(self.pretrain, self.backbone.name)
        side = "x".join(map(str, self.input_shape[1:]))
        figures["input_size"] = side + (" (resized on the device, bilinear antialiased)"
                                        if self.config.input_size else " (stream's)")
        figures["evaluation"] = "task-aware (the paper's task oracle); scores() task " \
                                f"selection by {self.config.task_selection} is an extension"
        return figures
