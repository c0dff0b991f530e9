"""Networks methods are built from: a backbone and a full-width linear head.

The head covers every class of the stream from the start and is masked to the
classes seen so far: a network's bytes do not change across tasks and shapes
stay static (no recompiles).  Two initialisations, by reference:
- "pycil" (PyCIL's methods): PyCIL's `IncrementalNet.update_fc` (utils/inc_net.py) builds a
  new `SimpleLinear` (convs/linears.py: Kaiming-uniform weights with a linear gain, bound
  sqrt(3 / D), zero bias) one task wider and copies the old rows in.  Here `init_rows` gives
  the arriving classes' rows exactly that initialisation when their task begins, old rows
  untouched; what weight decay and momentum did to those rows before (they are trained
  parameters, decayed while unseen) is thereby discarded, and the optimiser (momentum buffers)
  is made anew for every task as PyCIL makes it.  With losses over `logits[:, :seen]` this
  equals the growing head.
- "mammoth" (DER++, EWC): Mammoth's backbones have one full-width `nn.Linear` classifier from
  the start with PyTorch's default initialisation (backbone/ResNetBlock.py), trained and
  decayed as a whole: nothing is re-initialised.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from clbudget.nets.backbones import Backbone, create_backbone


@torch.no_grad()
def simple_linear_init_(weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    """PyCIL's `SimpleLinear.reset_parameters` (convs/linears.py) in place: weight (rows, D)
    Kaiming-uniform with a linear gain (bound sqrt(3 / D)), bias zero.  Works on row slices.
    Drawn on the CPU (the global CPU generator) and copied, so a CUDA run draws the same head."""
    if weight.numel() == 0:   # no new rows (a domain-incremental task): nothing to draw
        return
    cpu = torch.empty(weight.shape, dtype=weight.dtype)
    nn.init.kaiming_uniform_(cpu, nonlinearity="linear")
    weight.copy_(cpu)
    if bias is not None:
        nn.init.zeros_(bias)


class Classifier(nn.Module):
    def __init__(self, backbone: Backbone, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.out_dim, num_classes)

    @classmethod
    def create(cls, backbone: str, image_shape, num_classes: int) -> "Classifier":
        return cls(create_backbone(backbone, image_shape), num_classes)

    @torch.no_grad()
    def init_rows(self, lo: int, hi: int) -> None:
        """Rows lo..hi-1 of the head (arriving classes) initialised as PyCIL's SimpleLinear:
        weights Kaiming-uniform with a linear gain over the D inputs (bound sqrt(3 / D)),
        biases zero.  Other rows are left as they are."""
        simple_linear_init_(self.head.weight[lo:hi], self.head.bias[lo:hi])

    def features(self, x):  # (B, C, H, W) -> (B, D)
        return self.backbone(x)

    def forward(self, x):   # (B, C, H, W) -> (B, K)
        return self.head(self.backbone(x))


def frozen_copy(module: nn.Module) -> nn.Module:
    """A detached teacher: eval mode, no gradients."""
    teacher = copy.deepcopy(module).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def mask_unseen(logits: torch.Tensor, seen: int) -> torch.Tensor:
    """Scores of classes not yet seen set to -inf (evaluation over seen classes)."""
    if seen >= logits.shape[1]:
        return logits
    out = logits.clone()
    out[:, seen:] = float("-inf")
    return out


# Task-agnostic inference of task-specific networks (CLR, MIND): each seen task's network
# gives softmax probabilities over its own classes; one task is chosen per image.
TASK_RULES = ("max_prob", "entropy", "top2_entropy")


def choose_task(probs: list[torch.Tensor], rule: str) -> torch.Tensor:
    """(B,) chosen task per image from per-task probabilities [(B, k_j)] by
    - "max_prob": the task whose most likely class is most probable (likelihood);
    - "entropy": the task with the lowest entropy;
    - "top2_entropy": of the two tasks with the highest max probability, the one with the
      lower entropy (MIND's code, test_fn.py `accuracy_e`)."""
    from clbudget.streams.catalog import check_choice
    check_choice("task rule", rule, TASK_RULES)
    conf = torch.stack([p.max(1).values for p in probs])                          # (T, B)
    ent = torch.stack([-(p * p.clamp_min(1e-12).log()).sum(1) for p in probs])    # (T, B)
    if rule == "max_prob":
        return conf.argmax(0)
    if rule == "entropy":
        return ent.argmin(0)
    top = conf.topk(min(2, len(probs)), dim=0).indices                           # (2, B)
    return top.gather(0, ent.gather(0, top).argmin(0, keepdim=True))[0]


def task_agnostic_scores(probs: list[torch.Tensor], offsets, num_classes: int,
                         rule: str) -> torch.Tensor:
    """(B, K): the chosen task's class probabilities at its classes' columns, -inf elsewhere."""
    chosen = choose_task(probs, rule)
    out = torch.full((len(chosen), num_classes), float("-inf"), device=chosen.device)
    for j, p in enumerate(probs):
        rows = chosen == j
        out[rows, offsets[j]:offsets[j] + p.shape[1]] = p[rows].float()
    return out
