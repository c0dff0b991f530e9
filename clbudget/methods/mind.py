"""mind — MIND: Multi-Task Incremental Network Distillation (Bonato, Pelosin, Sabetta &
Nicolosi, AAAI 2024), with the authors' code (github.com/Lsabetta/MIND: main.py, mind.py,
pruner.py, models/gated_resnet32.py, test_fn.py, parse.py, cifar100_exp.sh).

One gated network (ResNet32 in the paper) holds a subnetwork per task.  Every convolution
weight carries the index of the task that owns it, or "free" (`masks`: one uint8 per weight,
255 = free, as the code's int8 masks with -1 = free).  Per task t:
1. teacher: a fresh network of the same architecture is trained on the task alone
   (cross-entropy over the task's classes).  With `self_distillation` the teacher is instead
   MIND itself in which only the free weights train (old subnetworks' weights are used, frozen,
   as pruner.ripristinate_weights keeps them; `SelfTeacher`);
2. pruning: in each conv layer, numel // T of the still-free weights are given to task t.
   Which ones (`selection="auto"`, the default, as the seed and pruner.prune do): at random
   with a fresh teacher (`select_random_weights`; the seed: weights are chosen at random),
   by magnitude with self-distillation (`most_important_weights_mask`), the chosen weights
   then starting from the teacher's values.  clbudget scores the self-teacher's trained
   weights (the weights the teacher just learned, the paper's "most important" ones); the
   reference scores the student's (main.py l. 198 `pruner.prune(strategy.model, ...)`,
   pruner.py l. 92 `most_important_weights_mask(module.weight, ...)` with `module` from
   `model.modules()`), whose free weights are at that point the untrained initialisation
   (task 0) or the zeros earlier pruning left, i.e. effectively a random choice: a deviation,
   named below.  "random" / "magnitude" force one rule (magnitude with a fresh teacher
   scores the student's own, untrained weights).
   Weights still free are set to zero (pruner.prune).  Without weight sharing (and a fresh
   teacher) the chosen weights are re-initialised He-normal, randn * sqrt(2 / (k*k*out
   channels)) (pruner.prune, `not args.weight_sharing` branch): the subnetwork computes with
   its own weights only, and those were zeroed by earlier tasks' pruning.  The task's head
   rows (its classes', pruner.prune's fc subset) are redrawn the same way, He-normal with
   n = out * in = K * D (pruner.prune's nn.Linear branch; `he_fan`);
3. distillation into the subnetwork: loss CE(student, y) + beta * L_SD(student, teacher),
   L_SD = 0.5 KL(p_teacher || p_student) + 0.5 KL(p_student || p_teacher) (the paper's
   "Jensen-Shannon" symmetric KL, the code's `get_distill_loss_JS`), over the task's classes.
   Gating: the forward uses the weights of tasks 0..t (weight sharing, the code's default;
   `weight_sharing=False`: task t's only); gradients reach task t's weights only (old tasks'
   weights enter detached), and every weight not owned by t is restored after each optimizer
   step, so no optimizer state can move it (pruner.ripristinate_weights).  The head's rows
   are the task's classes (the code's fc mask), trained only in their task;
4. BatchNorm: the network's BN layers train during the task's distillation and are then
   saved as task t's BN set (affine and running statistics; `save_bn_params`).
Conv biases (only the conv2 backbone has them) are frozen at initialisation: the code trains
no biases (Pruner train_bias=False) and every conv is followed by BN.

Inference.  Task-aware (`task_scores(x, j)`): task j's gated weights (tasks 0..j with weight
sharing) and BN set, logits of task j's classes.  Task-agnostic (`scores(x)`): every seen
task's subnetwork with its BN set; softmax of its logits / temperature over its classes; the
task is chosen by likelihood (`task_selection="max_prob"`: the highest class probability, the
code's `total_acc`) or as the code's entropy variant ("top2_entropy": of the two most likely
tasks the one of lower entropy, `accuracy_e`), or by entropy alone ("entropy").  Both TAG
and TAW accuracies are reported.  The class-incremental path is guarded by
tests/test_paper_methods.py `test_mind_*` (e.g. a subnetwork's own weights count at inference,
a later task's do not) and the mutants mind.* (bench/mutant_catalog/mind.py).

Domain-incremental (`NAME@D0,D1,...` streams, streams/multidomain.py; the paper's Core50
setting): every task is a domain over the same K classes.  clbudget follows the branches the
reference takes for `--dataset CORE50` (get_all_core50_scenario: one task per Core50 session,
all 50 classes each): the output mask of every task is all K classes (main.py
`set_output_mask(i, train_taskset.get_classes())`), so the teacher's CE, the distillation's CE
and L_SD are over all K outputs; pruner.prune gives the head's weights out like a conv's
(numel // T at random: its `args.dataset != 'CORE50'` test skips the class-rows rule), so the
head gets a mask too (`gated_weights`; one uint8 per head weight, in the ledger and the
allocator's preview) and domain t computes with the head weights of domains 0..t; each domain
keeps its BN set.  Inference (test_fn.py `test`, its CORE50 branches): no slice of the
outputs; task-aware = the true domain's subnetwork and BN set, argmax over all K (`y_taw`);
task-agnostic = the subnetwork of highest max softmax(logits / temperature) (`y_hats`), so the
two differ, unlike a shared-head method's (experiment/metrics.py `domain_accuracy`).
Guarded by tests/test_multidomain.py `test_mind_on_a_domain_incremental_stream_as_its_core50_path`
and the mutants multidomain.mind_* (bench/mutant_catalog/multidomain.py).  Deviations there:
the head's bias is zero and frozen (the reference's head has none; a trained bias would be
one domain's change to every domain's outputs); `self_distillation=True` is refused (the
self-teacher copies a task's head rows, and the reference's magnitude pruning of a masked head
is not implemented); the reference itself cannot start that mode: parse.py l. 67 reads
`options.datasset` (a typo) when `--dataset CORE50`, an AttributeError, and no script runs it
(core50ci_exp.sh is the class-incremental CORE50_CI), so these are the code's branches as
written, not a run of it.

Retains (strict ledger): the network (parameters + BN buffers: its BN holds the last task's
set); the masks, one uint8 task index per conv weight (kind `masks`, like the code's one
byte per weight; the head needs none: its rows are owned by their classes' task); T BN sets
(kind `per_task`).  The memo convention counts the masks too (inference cannot pick a
subnetwork without them).  The teacher is deleted after each task: it is transient, not
retained, and reported apart: `teacher_bytes` per task and `peak_task_bytes` = the ledger
during the task + the teacher.  A fresh teacher is a whole network.  The self-distillation
teacher (`SelfTeacher`) holds only what differs from the student: the values of the weights
still free (all, then (T-1)/T, ... of the conv weights), its BN set and its head rows; the old
tasks' weights are the student's own.  So the self-distillation variant's transient memory is
smaller and shrinks task by task, the seed's point ("for memory-constrained settings").  (The
reference code deep-copies the whole model in both variants, main.py `deepcopy(strategy.model)`;
clbudget's self-teacher computes the same function without the copy.)
Cost figures: mask bytes as stored (1 byte per weight) and bit-packed (ceil(log2 T) bits per
weight, `mask_bytes(..., "bits")`), per-task BN bytes, each task's share of the weights, the
teacher's transient bytes and the per-task peak.

Defaults (cifar100_exp.sh, parse.py, main.py): teacher 50 epochs, AdamW lr 0.005, weight
decay 0, MultiStepLR [35] gamma 0.5; distillation 50 epochs, AdamW lr 0.035, weight decay 0,
MultiStepLR [40] gamma 0.5; batch 256; beta (distill_beta) 5; temperature 6.5; dropout 0;
weight sharing on.  With weight decay 0, Adam = AdamW.  The distillation is MIND's task phase
(`task_phases`): `--epochs`/`--lr` change it only; the teacher keeps its 50 epochs unless named
(`--recipe-option teacher.epochs=N`), and under an imposed recipe it keeps the recipe `mind`'s
teacher phase.

Deviations: the code computes CE over all 100 outputs with the other tasks' logits masked to
0; we slice the logits to the task's classes (CE and L_SD).  Self-distillation pruning scores
the teacher's trained weights by magnitude, where the reference scores the student's stale
weights (step 2 above; test `test_mind_self_distillation_prunes_by_the_teachers_magnitude`,
mutant mind.magnitude_scores_the_student).  The head has a bias per class (clbudget's
Classifier), trained in its task like the rows' weights; the reference's head is bias-free
(models/gated_resnet32.py l. 150 `GatedLinear(64*expansion, classes_out, bias=False)`).
The head starts at PyTorch's nn.Linear initialisation (Kaiming-uniform, bound 1 / sqrt(D)),
the reference's at kaiming_normal_ (std sqrt(2 / D), models/gated_resnet32.py l. 166); with
weight sharing the reference's pruner.prune zeroes the head rows no task owns yet, so its
later tasks' rows start from zero, where here they keep that initialisation.
Augmentation: the recipe `mind` follows utils/transforms.py `default_transforms` (random
crop pad 4, horizontal flip, ColorJitter(brightness=63/255)); normalisation is the training
set's mean/std, where the code uses fixed CIFAR-100 constants (0.5071, 0.4865, 0.4409) /
(0.2673, 0.2564, 0.2762) on every data set of that recipe.  Pruning by magnitude is the
paper's self-distillation choice; the code's fresh-teacher path picks at
random (the default `selection="auto"` follows it); with weight sharing the free weights are
zero after the first task, so magnitude selection there breaks ties at random, as the code
does for zero weights.  L_SD is the exact divergence: the code's `get_distill_loss_JS` adds
1e-4 to the logits (no effect) and to the log-probabilities and probabilities it passes to
kl_div, a bias of order K x 1e-4 (tests/test_method_losses.py compares the two).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from clbudget.budget.accountant import mask_bytes
from clbudget.methods.base import Method
from clbudget.methods.losses import symmetric_kl
from clbudget.nets.classifier import TASK_RULES, Classifier, task_agnostic_scores
from clbudget.methods.registry import register
from clbudget.streams.catalog import check_choice


SELECTIONS = ("auto", "magnitude", "random")


@dataclass(frozen=True)
class MINDConfig:
    # training: the recipe `mind` (phases teacher / distill; cifar100_exp.sh, parse.py)
    distill_weight: float = 5.0          # parse.py --distill_beta 5
    temperature: float = 6.5             # parse.py / cifar100_exp.sh --temperature 6.5
    self_distillation: bool = False      # parse.py --self_distillation (off by default)
    weight_sharing: bool = True          # parse.py --weight_sharing (store_false: on)
    selection: str = "auto"              # pruning: "auto" (pruner.prune) | "magnitude" | "random"
    task_selection: str = "max_prob"     # test_fn.py total_acc; "top2_entropy" = accuracy_e

    @property
    def selection_rule(self) -> str:
        """The rule in effect: "auto" = magnitude with self-distillation, else random."""
        if self.selection != "auto":
            return self.selection
        return "magnitude" if self.self_distillation else "random"

    def __post_init__(self):
        check_choice("selection", self.selection, SELECTIONS)
        check_choice("task_selection", self.task_selection, TASK_RULES)


def conv_weights(net: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """(state_dict key, weight) of every convolution, in module order."""
    return [(f"{name}.weight", m.weight) for name, m in net.named_modules()
            if isinstance(m, nn.Conv2d)]


def he_fan(w: torch.Tensor) -> int:
    """n of pruner.prune's He-normal redraw randn * sqrt(2 / n): k*k*out channels for a conv
    weight (out, in, k, k), out * in for a linear one (the head, (K, D))."""
    return w.shape[0] * (w.shape[1] if w.dim() == 2   # Linear: out * in
                         else w.shape[2] * w.shape[3])


def bn_state(net: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every BatchNorm tensor (affine, running statistics, batch counter)."""
    return {f"{name}.{k}": v.detach().clone() for name, m in net.named_modules()
            if isinstance(m, nn.BatchNorm2d) for k, v in m.state_dict().items()}


@register("mind")
class MIND(Method):
    Config = MINDConfig
    recipe = "mind"
    phases = ("teacher", "distill")
    task_phases = ("distill",)         # the teacher keeps its recipe's values unless named
    phase_fallbacks = {"distill": "later"}
    FREE: ClassVar[int] = 255          # mask value of a weight no task owns yet

    def __init__(self, ctx, config=None):
        super().__init__(ctx, config)
        s = ctx.stream
        if s.num_tasks >= self.FREE:
            raise ValueError(f"MIND's uint8 masks hold at most {self.FREE - 1} tasks, "
                             f"got {s.num_tasks}")
        # domain-incremental (every task holds all K classes, none new after task 0: run.py
        # `run_increments`): the reference's CORE50 path (see "Domain-incremental" above)
        self.domain = len(ctx.increments) > 1 and not any(ctx.increments[1:])
        if self.domain and self.config.self_distillation:
            raise ValueError(
                "MIND with self_distillation=True does not run on a domain-incremental stream: "
                "there the head is pruned like a conv (pruner.prune's CORE50 branch), which "
                "the self-teacher (SelfTeacher: it copies a task's head rows) does not "
                "implement; use self_distillation=False (the default, as the reference's "
                "Core50 runs)")
        self.net = Classifier.create(ctx.allocation.backbone, s.image_shape,
                                     s.num_classes).to(self.device)
        for m in self.net.modules():   # the code trains no biases (Pruner train_bias=False)
            if isinstance(m, nn.Conv2d) and m.bias is not None:
                m.bias.requires_grad_(False)
        self.bias_free_head(self.net)
        self.masks = [torch.full(w.shape, self.FREE, dtype=torch.uint8, device=self.device)
                      for _, w in self.gated_weights(self.net)]
        self.bn_sets: list[dict[str, torch.Tensor]] = []
        self.teacher_bytes: list[int] = []      # per task: the transient teacher's state
        self.peak_task_bytes: list[int] = []    # per task: ledger + teacher, while both live

    # --- gating ---------------------------------------------------------------------------
    def gated_weights(self, net: nn.Module) -> list[tuple[str, torch.Tensor]]:
        """(state_dict key, weight) of every weight a task can own: each conv's and, on a
        domain-incremental stream, the head's (pruner.prune gives the CORE50 head's weights
        out at random like a conv's, where class-incremental tasks own their classes' rows)."""
        gated = conv_weights(net)
        if self.domain:
            gated = gated + [("head.weight", net.head.weight)]
        return gated

    def bias_free_head(self, net: nn.Module) -> None:
        """On a domain-incremental stream the head's bias is zero and frozen: every task
        shares all K rows, so a trained bias would be one task's change to all tasks' outputs
        (the reference's head has no bias, models/gated_resnet32.py `bias=False`)."""
        if self.domain:
            with torch.no_grad():
                net.head.bias.zero_()
            net.head.bias.requires_grad_(False)

    def uses(self, j: int) -> list[torch.Tensor]:
        """Per conv: the weights subnetwork j computes with (bool, weight-shaped)."""
        if self.config.weight_sharing:
            return [m <= j for m in self.masks]          # FREE (255) > j: never used
        return [m == j for m in self.masks]

    def rows(self, j: int) -> slice:
        if self.domain:   # every task's classes are all K (the CORE50 output mask)
            return slice(0, self.ctx.stream.num_classes)
        lo = self.ctx.offsets[j]
        return slice(lo, lo + self.ctx.increments[j])

    def gated(self, net, train: list, use: list) -> dict:
        """Gated weights for a forward: `use` weights enter, only `train` ones carry gradients."""
        out = {}
        for (key, w), tr, us in zip(self.gated_weights(net), train, use):
            out[key] = w * tr + (w * (us & ~tr)).detach()
        return out

    def subnet_logits(self, x, j):   # (B, k_j): task j's subnetwork with its BN set
        weights = {key: w * us for (key, w), us in zip(self.gated_weights(self.net),
                                                        self.uses(j))}
        return functional_call(self.net, {**weights, **self.bn_sets[j]}, (x,))[:, self.rows(j)]

    # --- training ---------------------------------------------------------------------------
    def fit_gated(self, net, x, y, train: list, use: list, head_rows: slice, loss_fn, phase,
                  desc):
        """Train `net`'s `train` conv weights, its head rows `head_rows` and its BN; every
        other weight is put back before each step and after the last (ripristinate_weights)."""
        convs = [w for _, w in self.gated_weights(net)]
        snap = [w.detach().clone() for w in convs]
        head = net.head
        snap_w, snap_b = head.weight.detach().clone(), head.bias.detach().clone()
        keep_rows = torch.ones(head.weight.shape[0], dtype=torch.bool, device=self.device)
        keep_rows[head_rows] = False

        @torch.no_grad()
        def restore():
            for w, s, tr in zip(convs, snap, train):
                w.copy_(torch.where(tr, w, s))
            head.weight[keep_rows] = snap_w[keep_rows]
            head.bias[keep_rows] = snap_b[keep_rows]

        def step(xb, yb, idx):
            restore()
            logits = functional_call(net, self.gated(net, train, use), (xb,))[:, head_rows]
            return loss_fn(logits, xb, yb)

        params = [p for p in net.parameters() if p.requires_grad]
        out = self.trainer.fit(params, x, y, step, phase, desc, modules=[net])
        restore()
        return out

    def learn(self, task):
        t, rows = task.index, self.rows(task.index)
        lo = rows.start
        ce = lambda logits, yb: F.cross_entropy(logits, yb - lo)
        teacher, teach = self.train_teacher(task)
        teacher.eval().requires_grad_(False)
        self.teacher_bytes.append(teacher.n_bytes() if isinstance(teacher, SelfTeacher)
                                  else _state_bytes(teacher))
        self.peak_task_bytes.append(self.ledger("strict").total_bytes + self.teacher_bytes[-1])
        self.prune(t, teacher)

        beta = self.config.distill_weight

        def distill_loss(logits, xb, yb):
            with torch.no_grad():
                target = teacher(xb)[:, rows]
            return ce(logits, yb) + beta * symmetric_kl(target, logits)
        own = [m == t for m in self.masks]
        out = self.fit_gated(self.net, task.x, task.y, own, self.uses(t), rows, distill_loss,
                             self.phase("distill"), f"mind distillation task {t}")
        self.bn_sets.append(bn_state(self.net))
        return {"loss": teach["loss"] + out["loss"]}

    def train_teacher(self, task):
        """Step 1: the task's teacher, trained on the task alone (CE over its classes); a fresh
        network, or with self-distillation MIND itself whose free weights train
        (`SelfTeacher`: it holds only the free weights' values, its BN set and head rows)."""
        t, rows = task.index, self.rows(task.index)
        lo = rows.start
        ce = lambda logits, yb: F.cross_entropy(logits, yb - lo)
        if self.config.self_distillation:
            teacher = SelfTeacher(self.net, self.masks, self.FREE, t, rows)

            def self_step(xb, yb, idx):
                return ce(teacher(xb)[:, rows], yb)
            teach = self.trainer.fit(teacher.parameters(), task.x, task.y, self_step,
                                     self.phase("teacher"), f"mind self-teacher task {t}",
                                     modules=[self.net])
        else:
            s = self.ctx.stream
            teacher = Classifier.create(self.ctx.allocation.backbone, s.image_shape,
                                        s.num_classes).to(self.device)
            self.bias_free_head(teacher)

            def teacher_step(xb, yb, idx):
                return ce(teacher(xb)[:, rows], yb)
            teach = self.trainer.fit(teacher.parameters(), task.x, task.y, teacher_step,
                                     self.phase("teacher"), f"mind teacher task {t}",
                                     modules=[teacher])
        return teacher, teach

    @torch.no_grad()
    def prune(self, t: int, teacher: nn.Module) -> None:
        """Give numel // T of each gated layer's free weights to task t; zero the rest of the
        free."""
        T = self.ctx.stream.num_tasks
        g = self.trainer.generator
        dense = teacher.dense_weights() if isinstance(teacher, SelfTeacher) else \
            [w for _, w in self.gated_weights(teacher)]
        pairs = zip(self.gated_weights(self.net), dense, self.masks)
        for (_, w), tw, mask in pairs:
            free = (mask == self.FREE).flatten()
            n = min(w.numel() // T, int(free.sum()))
            source = tw if self.config.self_distillation else w
            noise = torch.rand(w.numel(), generator=g).to(w.device)
            if self.config.selection_rule == "random":
                score = noise
            else:   # magnitude; ties (zeros) broken at random, as the code's 1e-5 noise
                score = source.abs().flatten().float() + 1e-6 * noise * (source.flatten() == 0)
            score = torch.where(free, score, torch.full_like(score, -1.0))
            chosen = score.topk(n).indices
            mask.view(-1)[chosen] = t
            if self.config.self_distillation:
                w.view(-1)[chosen] = tw.reshape(-1)[chosen]
            elif not self.config.weight_sharing:   # pruner.prune: He normal, fan_out
                init = torch.randn(len(chosen), generator=g) * math.sqrt(2.0 / he_fan(w))
                w.view(-1)[chosen] = init.to(w.device, w.dtype)
            w[mask == self.FREE] = 0.0
        if not (self.domain or self.config.self_distillation or self.config.weight_sharing):
            # class-incremental: task t owns its classes' head rows (pruner.prune's fc subset)
            # and, without sharing, they are redrawn He-normal as its conv weights are
            head, r = self.net.head.weight, self.rows(t)                    # (K, D), task t
            init = torch.randn(head[r].shape, generator=g) * math.sqrt(2.0 / he_fan(head))
            head[r] = init.to(head.device, head.dtype)
        if self.config.self_distillation:
            r = self.rows(t)
            self.net.head.weight[r] = teacher.head_weight
            self.net.head.bias[r] = teacher.head_bias

    # --- inference --------------------------------------------------------------------------
    def task_scores(self, x, task):
        out = torch.full((len(x), self.ctx.stream.num_classes), float("-inf"), device=x.device)
        out[:, self.rows(task)] = self.subnet_logits(x, task).float()
        return out

    def scores(self, x):
        T = self.config.temperature
        probs = [F.softmax(self.subnet_logits(x, j).float() / T, dim=1)
                 for j in range(len(self.bn_sets))]
        return task_agnostic_scores(probs, [self.rows(j).start for j in range(len(probs))],
                                    self.ctx.stream.num_classes, self.config.task_selection)

    # --- accounting -------------------------------------------------------------------------
    def retained(self):
        return [("net", "params", self.net), ("masks", "masks", self.masks),
                ("bn_per_task", "per_task", [v for s in self.bn_sets for v in s.values()])]

    def feature_modules(self):
        return [self.net.backbone]

    def memo_extra(self):
        affine = sum(v.numel() for s in self.bn_sets for k, v in s.items()
                     if k.endswith(".weight") or k.endswith(".bias"))
        return [("masks", "masks", sum(m.numel() * m.element_size() for m in self.masks)),
                ("bn_per_task", "per_task", 4 * affine)]

    def cost_figures(self):
        T = self.ctx.stream.num_tasks
        n = sum(m.numel() for m in self.masks)
        owned = [sum(int((m == j).sum()) for m in self.masks) for j in range(len(self.bn_sets))]
        return {"mask_bytes": n, "mask_bytes_packed": mask_bytes(n, T, "bits"),
                "mask_bits_per_weight": max(1, math.ceil(math.log2(max(T, 2)))),
                "mask_storage": "one uint8 task index per conv weight"
                                + (" and head weight" if self.domain else "") + " (255 = free)",
                "bn_per_task_bytes": sum(v.numel() * v.element_size()
                                         for s in self.bn_sets for v in s.values()),
                "weights_per_task": owned, "masked_weights": n,
                "teacher": "self" if self.config.self_distillation else "fresh",
                "selection": self.config.selection_rule,
                "teacher_bytes": list(self.teacher_bytes),
                "peak_task_bytes": list(self.peak_task_bytes)}


def _state_bytes(module: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())


class SelfTeacher:
    """MIND itself as its self-distillation teacher (the seed: MIND "trains directly on the
    subnetwork instead of initialising a new model", for memory-constrained settings).

    It holds only what differs from the student: the values of the weights free when the task
    starts (trained; `values`, one 1-D tensor per conv), its own BN set (initialised from the
    network's, trained) and its head rows; the old tasks' weights are the student's own,
    frozen, never copied.  Which weights were free is read from MIND's masks (free then = free
    now or owned by task t), so no mask is copied either.  Its forward is the network's with
    those tensors substituted (`functional_call`), in eval mode once trained."""

    def __init__(self, net: nn.Module, masks: list, free_code: int, t: int, rows: slice):
        self.net, self.masks, self.free_code, self.t, self.rows = net, masks, free_code, t, rows
        self.values = [w.detach()[m == free_code].clone().requires_grad_(True)
                       for (_, w), m in zip(conv_weights(net), masks)]
        self.bn = bn_state(net)
        for k, v in self.bn.items():
            if k.endswith(".weight") or k.endswith(".bias"):
                v.requires_grad_(True)
        self.head_weight = net.head.weight.detach()[rows].clone().requires_grad_(True)
        self.head_bias = net.head.bias.detach()[rows].clone().requires_grad_(True)
        self.training = True

    def parameters(self) -> list:
        return self.values + [v for v in self.bn.values() if v.requires_grad] + \
            [self.head_weight, self.head_bias]

    def free_then(self, mask: torch.Tensor) -> torch.Tensor:
        return (mask == self.free_code) | (mask == self.t)

    def dense_weights(self) -> list[torch.Tensor]:
        """Per conv: the student's weights with the teacher's values where they were free."""
        return [w.detach().masked_scatter(self.free_then(m), v)
                for (_, w), m, v in zip(conv_weights(self.net), self.masks, self.values)]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        keys = [k for k, _ in conv_weights(self.net)]
        W, b, r = self.net.head.weight.detach(), self.net.head.bias.detach(), self.rows
        tensors = {**dict(zip(keys, self.dense_weights())), **self.bn,
                   "head.weight": torch.cat([W[:r.start], self.head_weight, W[r.stop:]]),
                   "head.bias": torch.cat([b[:r.start], self.head_bias, b[r.stop:]])}
        was = self.net.training
        self.net.train(self.training)
        try:
            return functional_call(self.net, tensors, (x,))
        finally:
            self.net.train(was)

    def eval(self) -> "SelfTeacher":
        self.training = False
        return self

    def requires_grad_(self, flag: bool) -> "SelfTeacher":
        for v in self.parameters():
            v.requires_grad_(flag)
        return self

    def n_bytes(self) -> int:
        """What the teacher holds beyond the student: free values, BN set, head rows."""
        return sum(t.numel() * t.element_size()
                   for t in self.values + list(self.bn.values()) + [self.head_weight,
                                                                      self.head_bias])
