"""ewc — online Elastic Weight Consolidation (Schwarz et al., ICML 2018, "Progress & Compress",
section 2.3; EWC: Kirkpatrick et al., PNAS 2017), as implemented in Mammoth (Buzzega et al.).

Reference: aimagelab/mammoth models/ewc_on.py; hyper-parameters per data set from Mammoth's
best-args files at e75a491c (methods/best_args.py: the yaml where it lists the data set, else
utils/best_args.py; `BEST_ARGS`: e_lambda and gamma here, lr/batch/epochs in the recipe):
  cifar10       seq-cifar10, models/config/ewc_on.yaml: e_lambda 10, gamma 1, lr 0.1, 50
                epochs; batch 32, constant lr (datasets/seq_cifar10.py;
                `mammoth-seq-cifar10-ewc_on`).  utils/best_args.py and the DER paper's table
                have lr 0.03; the yaml is what Mammoth's scripts/reproduce.json runs
                (`--lr=0.1 --e_lambda=10 --gamma=1`); pass --lr 0.03 for the older value
  tinyimagenet  seq-tinyimg, utils/best_args.py: e_lambda 25, gamma 1.0, lr 0.03, batch 32,
                100 epochs (`mammoth-seq-tinyimg-ewc_on`)
  mnist         seq-mnist, utils/best_args.py: e_lambda 90, gamma 1.0, lr 0.03, batch 10,
                1 epoch, no augmentation, no normalisation (`mammoth-seq-mnist-ewc_on`)
Mammoth lists no ewc_on on seq-cifar100: cifar100 (or a tree declared so by
`--normalization mammoth:cifar100`) takes the Config defaults (seq-cifar10's) with
`mammoth-seq-cifar100-ewc_on` (datasets/seq_cifar100.py: 50 epochs, batch 32, decay x0.1 at
35/45, at seq-cifar10's lr 0.1); every other data set the defaults with
`mammoth-seq-cifar10-ewc_on` (lr 0.1, batch 32, 50 epochs, SGD without momentum or weight
decay, constant lr; crop + flip; Mammoth's normalisation constants).  The row's
`recipe_source` (printed by `clbudget run`) and `best_args` say which applied.

Mechanism: after each task, a diagonal Fisher of the network's parameters is estimated on the
task's training data and folded into one running Fisher, F <- gamma * F + F_new, and the
current parameters become the anchor theta*.  While learning later tasks the loss is
    CE(logits, y) + e_lambda * sum_i F_i (theta_i - theta*_i)^2,
Mammoth's parameterisation (e_lambda is the paper's lambda / 2; Mammoth adds the penalty's
gradient 2 e_lambda F (theta - theta*) to CE's, the same thing).  The Fisher estimate is
Mammoth's (`fisher = "mammoth"`, `fisher_mammoth`): its end_task iterates the task's
shuffled, augmented training loader with the network in train mode, one image at a time:
for each, the squared gradient of log p(y|x) at its label, weighted by p(y|x)
(`exp_cond_prob`), summed and divided by (batches x batch size) of the loader.  BatchNorm
runs in train mode on single images, so its running statistics move during the pass, as
Mammoth's do.  `fisher = "eval"` (`fisher_diagonal`): the same formula on un-augmented
images with BatchNorm in eval mode, divided by the number of examples (per-example gradients
by `torch.func.vmap`): an estimate that does not move the network, a named alternative.
CE and log p(y|x) are over all K outputs of the full-width head, unmasked, as Mammoth's class-IL training is (its `self.loss` =
F.cross_entropy on every output).  Fisher and anchor cover every parameter, head included.
Head: Mammoth's full-width `nn.Linear` with PyTorch's default initialisation, never
re-initialised (`head_init = "mammoth"`, nets/classifier.py).

Retains: the network; the running Fisher and the anchor parameters (one float32 copy of every
parameter each, ledger kind `importance`).

Deviations from Mammoth: none in the default Fisher pass (its random crop/flip draws come
from the run's generator, not torchvision's).  Backbone: the run's (`--backbone`, resnet32
on CIFAR-sized images by default), not Mammoth's ResNet18 (seq-mnist: MNISTMLP, which
clbudget has not) for which the best args were tuned; pass `--backbone mammoth-resnet18` for
Mammoth's (backbone/ResNetBlock.py resnet18).
Guarded by: tests/test_parity.py (test_ewc_step_is_ce_over_all_classes_plus_penalty,
test_ewc_fisher_matches_the_reference_formula),
tests/test_protocol.py (test_ewc_fisher_is_mammoths_train_mode_augmented_per_image_pass),
mutants ewc.*, protocol.ewc_*; the best-args tables by tests/test_best_args.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad_and_value, vmap

from clbudget.methods.best_args import Entry, Table
from clbudget.methods.finetune import Finetune
from clbudget.methods.registry import register

@dataclass(frozen=True)
class EWCConfig:
    # Mammoth seq-cifar10 (models/config/ewc_on.yaml = utils/best_args.py); the data sets
    # Mammoth lists take `BEST_ARGS` instead
    e_lambda: float = 10.0         # penalty weight (= paper lambda / 2)
    gamma: float = 1.0             # Fisher decay
    fisher_batch_size: int = 32    # examples per vmap batch of the "eval" Fisher (memory only)
    # "mammoth": models/ewc_on.py end_task (train mode, augmented, shuffled, one image at a
    # time); "eval": the same formula with BN in eval mode on un-augmented images (vmap)
    fisher: str = "mammoth"

    def __post_init__(self):
        if self.fisher not in ("mammoth", "eval"):
            raise ValueError(f"ewc option fisher must be mammoth or eval, got {self.fisher!r}")


def _entry(e_lambda: float, gamma: float, recipe: str) -> Entry:
    return Entry(None, (("e_lambda", e_lambda), ("gamma", gamma)), recipe)


# Mammoth at e75a491c; the values as the files write them (see the module docstring)
BEST_ARGS = {
    "cifar10": Table("ewc_on", "seq-cifar10", "models/config/ewc_on.yaml", (
        _entry(10, 1, "mammoth-seq-cifar10-ewc_on"),)),
    "tinyimagenet": Table("ewc_on", "seq-tinyimg", "utils/best_args.py", (
        _entry(25, 1.0, "mammoth-seq-tinyimg-ewc_on"),)),
    "mnist": Table("ewc_on", "seq-mnist", "utils/best_args.py", (
        _entry(90, 1.0, "mammoth-seq-mnist-ewc_on"),)),
}


@torch.no_grad()
def fisher_diagonal(net, x: torch.Tensor, y: torch.Tensor, seen: int, trainer,
                    batch_size: int = 32) -> list[torch.Tensor]:
    """Mammoth's online-EWC Fisher: mean over examples of p(y|x) * (d log p(y|x) / d theta)^2.

    x uint8 (N, C, H, W), y (N,); log-softmax over the first `seen` logits (EWC passes K).
    Returns one float32 tensor per parameter of `net`, shaped like it.  BatchNorm in eval mode.
    """
    was_training = net.training
    net.eval()
    names = [n for n, _ in net.named_parameters()]
    params = {n: p.detach() for n, p in net.named_parameters()}
    buffers = {n: b for n, b in net.named_buffers()}

    def log_lik(p, xi, yi):                           # one example: (C, H, W), ()
        logits = functional_call(net, (p, buffers), (xi.unsqueeze(0),))[0, :seen]
        ll = F.log_softmax(logits.float(), 0).gather(0, yi.unsqueeze(0))[0]
        return ll, ll

    per_example = vmap(grad_and_value(log_lik, has_aux=True), in_dims=(None, 0, 0))
    fisher = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
    y = y.to(trainer.device).long()
    for b in range(0, len(x), batch_size):
        xb = trainer.inputs(x[b:b + batch_size])      # normalised, not augmented
        with torch.enable_grad():
            grads, (_, ll) = per_example(params, xb, y[b:b + batch_size])
        w = ll.exp()                                  # (B,) p(y|x), Mammoth's exp_cond_prob
        for n in names:
            g = grads[n].float()                      # (B, *shape)
            fisher[n] += torch.einsum("b,b...->...", w, g * g)
    net.train(was_training)
    return [fisher[n] / max(len(x), 1) for n in names]


def fisher_mammoth(net, x: torch.Tensor, y: torch.Tensor, trainer, batch_size: int,
                   augment: bool = True) -> list[torch.Tensor]:
    """Mammoth models/ewc_on.py `end_task`, line by line: iterate the task's training loader
    (shuffled, `batch_size` per batch, the train transform when `augment`) with the network
    in train mode; for each image alone: log p(y|x) = -nll(log_softmax(net(x))) over all
    outputs, its gradient, fish += p(y|x) * grad^2; finally fish /= (batches * batch_size).
    Train mode with one image means BatchNorm normalises by that image's own statistics and
    updates its running statistics once per image, as Mammoth's pass does.
    x uint8 (N, C, H, W), y (N,); one float32 tensor per parameter of `net`."""
    was_training = net.training
    net.train()
    params = list(net.parameters())
    fisher = [torch.zeros_like(p, dtype=torch.float32) for p in params]
    n = len(x)
    order = torch.randperm(n, generator=trainer.generator)            # the shuffled loader
    for b in range(0, n, batch_size):
        idx = order[b:b + batch_size]
        xb = trainer.pipeline(x[idx.to(x.device)].to(trainer.device), augment, trainer.generator)
        for ex, lab in zip(xb, y[idx.to(y.device)].to(trainer.device)):
            out = net(ex.unsqueeze(0))                                  # (1, K)
            ll = F.log_softmax(out.float(), 1)[0, int(lab)]              # log p(y|x)
            grads = torch.autograd.grad(ll, params, allow_unused=True)
            w = float(ll.detach().exp())                                 # exp_cond_prob
            for f, g in zip(fisher, grads):
                if g is not None:
                    f += w * g.float() ** 2
    batches = -(-n // batch_size)                # len(dataset.train_loader)
    net.train(was_training)
    return [f / (batches * batch_size) for f in fisher]


@register("ewc")
class EWC(Finetune):
    Config = EWCConfig
    recipe = "mammoth-seq-cifar10-ewc_on"                 # data sets Mammoth does not list
    best_args = BEST_ARGS
    best_args_defaults = "Mammoth's seq-cifar10 (models/config/ewc_on.yaml)"
    # cifar100: Mammoth lists no configuration; its data set's schedule (train/recipe_book.py)
    dataset_recipes = {"cifar100": "mammoth-seq-cifar100-ewc_on",
                       **{d: t.entry(None).recipe for d, t in BEST_ARGS.items()}}
    head_init = "mammoth"

    def __init__(self, ctx, config=None):
        super().__init__(ctx, config)
        # allocated once: the ledger is constant from the first task on
        self.fisher = [torch.zeros_like(p) for p in self.net.parameters()]
        self.anchor = [p.detach().clone() for p in self.net.parameters()]

    def penalty(self) -> torch.Tensor:
        """e_lambda * sum F (theta - theta*)^2: zero at the anchor."""
        total = torch.zeros((), device=self.device)
        for p, f, a in zip(self.net.parameters(), self.fisher, self.anchor):
            total = total + (f * (p.float() - a).pow(2)).sum()
        return self.config.e_lambda * total

    def learn(self, task):
        regularize = self.task > 0

        def step(xb, yb, idx):
            loss = F.cross_entropy(self.net(xb), yb)            # all K outputs (Mammoth)
            return loss + self.penalty() if regularize else loss
        return self.trainer.fit(self.net.parameters(), task.x, task.y, step, self.phase(),
                                f"{self.name} task {task.index}", modules=[self.net])

    def task_fisher(self, task) -> list[torch.Tensor]:
        if self.config.fisher == "mammoth":
            phase = self.phase()
            return fisher_mammoth(self.net, task.x, task.y, self.trainer, phase.batch_size,
                                  phase.augment)
        return fisher_diagonal(self.net, task.x, task.y, self.ctx.stream.num_classes, self.trainer,
                               self.config.fisher_batch_size)

    def end_task(self, task):
        new = self.task_fisher(task)
        with torch.no_grad():
            self._fold(new)

    def _fold(self, new):
        for f, fn, a, p in zip(self.fisher, new, self.anchor, self.net.parameters()):
            f.mul_(self.config.gamma).add_(fn)       # F <- gamma * F_old + F_new
            a.copy_(p.detach())                      # theta* <- current parameters

    def retained(self):
        return super().retained() + [("fisher", "importance", self.fisher),
                                     ("anchor_params", "importance", self.anchor)]
