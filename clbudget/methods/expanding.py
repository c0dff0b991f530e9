"""Expanding representations, shared by DER (Yan et al. 2021) and MEMO (Zhou et al. 2023).

Both methods add a feature extractor per task and classify the concatenation of
every extractor's features:

    features(x) = [branch_1(trunk(x)), ..., branch_t(trunk(x))]      # (B, t*D)
    logits      = head(features(x))                                  # (B, K)

DER has no trunk (an identity) and a whole backbone per task; MEMO shares one
trunk (its "generalized" blocks) and adds one "specialized" block per task.
When task t starts (PyCIL `DERNet.update_fc` / `AdaptiveNet.update_fc`):
- the new branch is a copy of the previous one (its weights and BN statistics);
- every older branch is frozen: no gradients, eval mode (BN statistics kept), and held at the
  allocation's `store_dtype` (fp32 by default; fp16/bf16/int8 weight-only rounded once and
  computed in float32, nets/stored.py; the copy above is taken before, at float32);
- the head is rebuilt one branch wider, Linear((t+1)*D, K): the old classes' rows
  are copied into its first t*D columns, everything else is freshly initialised;
- a temporary auxiliary head Linear(D, new classes + 1) on the new branch's
  features sorts new classes apart and lumps all old classes into class 0.
Training minimises CE(head, over seen classes) + aux_weight * CE(aux head); after
training, the new classes' head rows are weight-aligned (Zhao et al. 2020), and
the exemplar memory is rebalanced by herding on the concatenated features.
The auxiliary head lives only inside `learn`: nothing of it is retained.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from clbudget.methods.base import Method
from clbudget.methods.losses import align_weights
from clbudget.nets.classifier import simple_linear_init_
from clbudget.nets.stored import store_as


def simple_linear(in_features: int, out_features: int, device=None) -> nn.Linear:
    """A linear layer initialised as PyCIL's `SimpleLinear` (convs/linears.py): weights
    Kaiming-uniform with a linear gain (bound sqrt(3 / in)), biases zero."""
    fc = nn.Linear(in_features, out_features, device=device)
    simple_linear_init_(fc.weight, fc.bias)
    return fc


def freeze(module: nn.Module, store_dtype: str = "fp32") -> nn.Module:
    """No gradients and eval mode: parameters and BN running statistics stay as they are;
    held at `store_dtype` (nets/stored.py: fp16/bf16/int8 rounded once, computed in float32)."""
    return store_as(module, store_dtype)


@dataclass(frozen=True)
class ExpandingConfig:
    """DER and MEMO's mechanism settings.  Their training is the recipe `pycil-der` (PyCIL
    models/der.py constants = exps/memo.json): first task 200 epochs, lr 0.1, decay 0.1 at
    60/120/170, wd 5e-4; later tasks 170 epochs, decay at 80/120/150, wd 2e-4; batch 128,
    SGD momentum 0.9."""
    aux_weight: float = 1.0      # loss_clf + aux_weight * loss_aux (MEMO: "alpha_aux": 1.0)
    weight_align: bool = True    # weight aligning after each incremental task (both `_train`s)


class ExpandingNet(nn.Module):
    def __init__(self, trunk: nn.Module, first_branch: nn.Module, out_dim: int,
                 num_classes: int):
        super().__init__()
        self.trunk = trunk                                  # shared by all branches
        self.branches = nn.ModuleList([first_branch])       # one per task
        self.out_dim = out_dim                              # D, features of one branch
        self.num_classes = num_classes                      # K
        self.head = simple_linear(out_dim, num_classes, _device_of(first_branch))

    def features(self, x):  # (B, C, H, W) -> (B, t*D)
        h = self.trunk(x)
        return torch.cat([branch(h) for branch in self.branches], 1)

    def forward(self, x):   # (B, C, H, W) -> (B, K)
        return self.head(self.features(x))

    def grow(self, old_classes: int, store_dtype: str = "fp32") -> None:
        """Add a copy of the last branch (taken at float32, before it is stored); freeze every
        older branch, held at `store_dtype`; widen the head by D inputs."""
        new = copy.deepcopy(self.branches[-1]).train()
        for p in new.parameters():
            p.requires_grad_(True)
        for branch in self.branches:
            freeze(branch, store_dtype)
        self.branches.append(new)
        old = self.head
        head = simple_linear(len(self.branches) * self.out_dim, self.num_classes,
                             old.weight.device)
        with torch.no_grad():
            head.weight[:old_classes, :old.in_features] = old.weight[:old_classes]
            head.bias[:old_classes] = old.bias[:old_classes]
        self.head = head


def _device_of(module: nn.Module):
    p = next(module.parameters(), None)
    return p.device if p is not None else None


class ExpandingMethod(Method):
    """DER/MEMO's training; subclasses build `self.net` and name what they retain.

    Config fields used: aux_weight, weight_align; recipe `pycil-der`.
    """
    recipe = "pycil-der"

    def trunk_trainable(self) -> bool:
        """Whether the shared trunk trains in the current task (DER: no trunk)."""
        return True

    def begin_task(self, task):
        super().begin_task(task)
        if task.index > 0:
            self.net.grow(self.old, self.ctx.allocation.store_dtype)
        trunk_trains = self.trunk_trainable()
        for p in self.net.trunk.parameters():
            p.requires_grad_(trunk_trains)
        if not trunk_trains:
            self.net.trunk.eval()

    def learn(self, task):
        net, cfg = self.net, self.config
        mx, my = self.memory.data()
        x, y = torch.cat([task.x, mx.to(task.x.device)]), torch.cat([task.y, my.to(task.y.device)])
        old, seen, D = self.old, self.seen, net.out_dim
        # The auxiliary head: new classes + one "old" class; only from the second task on
        # (PyCIL's `_init_train` uses the plain CE loss).  A local: never retained.
        aux = simple_linear(D, seen - old + 1, self.device) if task.index > 0 else None

        def step(xb, yb, idx):
            f = net.features(xb)                                   # (B, t*D)
            loss = F.cross_entropy(net.head(f)[:, :seen], yb)
            if aux is not None:
                aux_y = torch.where(yb >= old, yb - old + 1, torch.zeros_like(yb))
                loss = loss + cfg.aux_weight * F.cross_entropy(aux(f[:, -D:]), aux_y)
            return loss

        for branch in net.branches[:-1]:   # frozen: BN keeps its running statistics
            branch.eval()
        trainable = [net.branches[-1], net.head] + ([net.trunk] if self.trunk_trainable() else [])
        params = list(net.parameters()) + (list(aux.parameters()) if aux is not None else [])
        stats = self.trainer.fit(params, x, y, step, self.phase(),
                                 f"{self.name} task {task.index}",
                                 modules=trainable + ([aux] if aux is not None else []))
        if task.index > 0 and cfg.weight_align:
            stats["gamma"] = align_weights(net.head.weight, old, seen)
        return stats

    def end_task(self, task):
        self.memory.rebalance(task.x, task.y, self.seen, "herding",
                              self.features_of(self.net), self.trainer.generator)

    def scores(self, x):
        return self.net(x)

    def _head_tensors(self) -> list:
        return [self.net.head.weight, self.net.head.bias]
