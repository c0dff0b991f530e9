"""bmc — Batch Model Consolidation (Fostiropoulos, Zhu & Itti, CVPR 2023), with the authors'
code (github.com/fostiropoulos/stream_benchmark at d50b37a: models/bmc.py, utils/bmc.py,
models/__base_model.py, training.py, hparams/defaults.json).  What the paper says, what the
reference code runs and what clbudget does are kept apart below.  The expert step and where it
runs are in methods/bmc_experts.py.

Variants (`--option variant=NAME`, methods/bmc.py `VARIANTS`; `stability=` and
`distill_weight=` override a variant's lambda and beta):
- "reference" (default): what the reference code runs.  lambda = 0 (models/bmc.py `observe`,
  l. 153-157: the stability term is commented out) and beta = 0 (`_cons_forward`, l. 76-77:
  the batched distillation is commented out), so experts train on L_T alone and the
  consolidation is alpha * L_T.  The experts' optimisation is the reference's (recipe `bmc`,
  phases first / later = train/recipe_book.py BMC_EXPERTS): AdamW lr 0.01 at torch's default
  weight decay 0.01, a new optimizer per task (models/__base_model.py, utils/train.py
  reset_optim_scheduler), batch 64, 20 epochs, ReduceLROnPlateau (patience 10, threshold
  1e-4, factor 0.1) (hparams/defaults.json lr, batch_size, n_epochs, scheduler_*).  Why beta
  is 0 too: the authors' commit 8a1895c ("bug during consolidation", 2023-06-10) commented
  the distillation out in the same change that moved experts and consolidation from SGD (lr
  0.1) to AdamW (lr 0.01); the code has run so since.  clbudget follows the code; the memory
  still keeps the experts' features (the reference's buffers keep them too), counted in the
  ledger, so the variants are compared at the same bytes.
- "paper": the paper's two terms at the equations' unweighted form, lambda = beta = 1, the
  per-layer L2 norm, with the reference's experts (recipe `bmc`): under AdamW the stability
  loss holds the expert near the base (measured below), where under PyCIL's SGD it does not.
- "paper-sgd": clbudget's default before this variant system: lambda = beta = 1 with the
  experts under PyCIL's iCaRL CNN optimisation (recipe `bmc-pycil`: SGD lr 0.1, momentum 0.9,
  batch 128, 200 epochs first / 170 later, multi-step decay), crop + flip without PyCIL's
  brightness jitter, train-set normalisation (not PyCIL's constants).  Kept to reproduce
  earlier rows; its experts end far from the base and near chance on their task (below).
`BMC.variant_recipe` picks the variant's recipe (train/recipes.py `resolve`), except on a
feature stream, whose recipe `bmc-features` stays (below).  The row's cost_figures record the
variant, the lambda and beta in effect, the distance, the consolidation and its phase.
Tests: test_bmc_default_experts_are_the_references_adamw_without_the_stability_term,
test_bmc_default_consolidation_is_the_task_loss_alone, test_bmc_variants_name_their_weights_
and_recipes, test_bmc_stability_loss_pulls_expert_features_toward_the_base (the variant's own
phase); mutants bmc.default_*, bmc.variant_*.

One incremental step of BMC has two phases.
- Regularization (paper): k expert models start from the base model; each learns one task on
  its own (remote) device with
      L_exp = L_T(expert(x), y) + lambda * L_bd(base(x), expert(x)),
  L_bd(t, s) = sum over layers i of ||sg(phi_i^t) - phi_i^s||_2, the interim feature
  distillation (the "stability loss").  clbudget: summed over the backbone's stages and its
  pooled features (`interim_features`), each layer's distance the L2 norm of the difference
  over the sample's whole map (`distance="l2"`, the default, the paper's formula), the batch
  reduced by its mean (the paper's expectation over x; the reference's commented-out
  F.mse_loss also means over the batch, models/bmc.py l. 77 and 157).  `distance="mse"`: the
  mean squared difference per layer (that commented-out code's form, ~10^4 times smaller than
  the L2 norm on a 16x32x32 map).  Test:
  test_bmc_layer_distance_is_the_per_sample_l2_norm_summed_over_layers_by_hand (literals);
  mutants bmc.distance_mse_not_l2, bmc.default_distance_mse, bmc.batch_summed_not_mean.  Both
  networks normalise with the batch's statistics (`batch_statistics`), so L_bd is 0 when the
  expert starts.  The task loss is the cross-entropy over the expert's own task's classes
  (reference `task_loss`, logits sliced to the task).  After training, each expert samples a
  buffer B_i from its task (uint8 images, labels, the expert's own pooled features, reference
  `Buffer._make`: `model.features(x)` of the expert in eval mode) and sends it once to the
  central node; the expert is then discarded.
- Consolidation (paper): the base model is trained once per step on
  D = {memory M, buffers B_i..B_{i+k}} with
      L_base = alpha * L_T(base(x), y) + beta * L_bmc,
      L_bmc  = sum over experts theta_i of E_{x, phi(x; theta_i) ~ D} ||sg(phi(x; theta_i)) - phi_base(x)||,
  each sample distilled toward the features of the expert that sent it (the memory's samples
  toward the features their experts sent in earlier steps).  clbudget: exactly that where beta
  > 0, CE over the seen classes, the pooled features' distance as L_bd's per-layer distance,
  one batched consolidation over the memory and all k buffers of the step; then the buffers
  are merged into the memory (class-balanced, random selection, at the budget's capacity),
  each kept sample keeping its expert's features.

Consolidation regime (the paper states none; `consolidation=`):
- "reference" (default): the authors' code, the recipe's phase consolidation
  (train/recipe_book.py BMC_CONSOLIDATION) run by the shared loop (train/loop.py): AdamW lr
  0.01 at torch's default weight decay 0.01 (models/bmc.py l. 86); ReduceLROnPlateau("min",
  threshold 1e-4, patience 10, factor 0.1) stepped once per epoch on the validation loss
  (l. 87-89, 98-107: the same loss without mixup, the base in eval mode); 20% of D held out
  (utils/bmc.py l. 102-108) and never trained on in that consolidation; mixup 0.4 while
  training (l. 51-52; utils/train.py mixup_data: lam ~ U[0.6, 1], inputs lam * x + (1 - lam)
  * x[perm], CE lam * CE(y) + (1 - lam) * CE(y[perm])); a sampler drawing len(train) samples
  with replacement, each buffer equally likely (utils/bmc.py l. 22-48, 112-120:
  ImbalancedDatasetSampler over buffer ids, drop_last); here a sample's buffer is the task
  (expert) of its class, the memory's samples included, as the reference's memory keeps one
  buffer per expert.  Tests: test_bmc_reference_consolidation_is_adamw_plateau_on_a_
  validation_split_mixup_balanced, test_bmc_mixup_weights_the_two_targets_by_lam,
  test_loop_mixup_plateau_validation_and_balanced_sampler_act_as_the_reference; mutants
  bmc.consolidation_without_mixup / _without_plateau / _mix_ignored, bmc.groups_not_buffers,
  bmc.loop_*.
- "today": clbudget's consolidation before issue 25: Adam without weight decay at a constant
  lr, every sample once per epoch, no validation split, no mixup (TODAY_CONSOLIDATION over the
  recipe phase's epochs, batch and lr).

Steps of k tasks (`experts_per_step`, the reference's `n_experts`).  The stream hands over one
task per `learn` call and the run evaluates after every task.  A step's first k-1 tasks are
queued (`step_queue`: the step's own data, held only until the step ends, like any method's
current task; the queue is empty at every step boundary, so the ledger does not list it); the
k-th task's `learn` (or the stream's last task, as the reference's `end_task`) trains all k
experts *concurrently* from the same base, then consolidates once.  Evaluation rows of queued
tasks therefore score the base before the step's consolidation (it has not learned them yet),
and their `train_images` are 0: the step's k-th task reports every expert's images.
Where experts run (methods/bmc_experts.py): `workers` processes at once (default 0 = one per
expert of the step; 1 = one after another in this process), each a spawned process with one
torch thread and its own seed, so the result equals training the experts one after another
with the same seeds (`train_experts`); `executor="ray"` runs each as a Ray task on whichever
node Ray picks (`train_experts_ray`).  The expert step is the top-level, picklable
`train_expert(base_state, task_arrays, config, seed, spec) -> ExpertResult`; it captures no
Method object.  On Ray the buffer comes back as one torch.save message through the object
store; its length is reported as `communication_bytes_transferred` beside the ledger-accounted
`communication_bytes` (the tensors' bytes; the difference is the zip container's framing, about
2 KiB per buffer).  The inputs shipped to an expert (base weights, task data) are not counted:
the paper's communication cost is the buffers sent to the central node.

Time.  Each expert records its (start, end) wall-clock interval (`expert_intervals_s` in
cost_figures, seconds from the run's first expert, with the task it learned).
`critical_path_s` = sum over steps of (slowest expert of the step + its consolidation): the time
a distributed run with one device per expert takes; `summed_s` = every expert's time plus the
consolidations (one device doing everything).  The analysis computes BMC's relative time vs
finetune from the critical path (analysis/rows.py `relative_times`, labelled "critical path").

Retains (strict ledger): the base network (parameters + BN buffers); the replay memory: uint8
images, int16 labels and float32 expert features (n, out_dim), kind `exemplar_aux`; the memo
convention counts the features too (the distillation targets of the variants with beta > 0;
kept in every variant, as the reference's buffers keep them).  Under `--codec jpeg:Q | png |
down:S` (methods/codecs.py `CodecMemory`, the class-balanced pack): the memory's images are one
encoded byte buffer plus an int64 offset and an int32 length per slot instead of uint8 pixels;
labels and features as raw.  Consolidation trains the base on the decoded memory images (lossy
for jpeg/down), distilled toward the features the experts computed on the original images.
The experts' buffers sent to the central node stay raw (uint8 images): the codec is a choice
of what the base keeps, not of what is communicated.  Experts, the frozen base copy inside an
expert and the buffers are discarded after consolidation.
Cost figures (the paper's Pareto axes): `communication_bytes` = bytes of every buffer actually
sent (images + labels + features), `memory_bytes` = bytes of the replay memory (its ledger
items: pixels or codes + slot arrays, labels, features),
`total_cost_bytes` = both; the times above.

Defaults and sources.  hparams/defaults.json "bmc": task_coef 1 (alpha), distil_coef 1 (beta
of the variants that distil; the code never reads it), memory_size 10000 (here: the budget's
allocation decides the memory), cons_epochs 100 (phase consolidation), n_experts 1 (k).
lambda: not in defaults.json (the term is commented out in the code); 1 in the paper's
variants = the equation's unweighted form.  buffer_fraction 0.1: the reference sends
`buffer_size` 10,000 samples per expert on Stream, about 10% of a Stream task (6,770,722
images / 71 tasks); each buffer holds at least the memory's per-class quota so the memory can
be filled.  Experts: the reference trains an MLP on pre-extracted features (Stream's
`feats_name="default"`); its optimisation (above) is the recipe `bmc` on pixels too, with its
pixel path's crop + flip (datasets/seq_stream.py `transforms`, used when no features are
named).  On a feature stream (`run --features FILE`, streams/features.py) BMC runs as the
reference does: the backbone `resmlp` (nets/mlp.py, MLP.py's ResMLP; L_bd taps its two
residual blocks) and the recipe `bmc-features` (the same experts without augmentation; every
variant keeps it there: the paper variants' regime is measured on pixels only).
Consolidation: the reference's `consolidate` regime (above), batch 64 (defaults.json
minibatch_size), 100 epochs (cons_epochs), no augmentation.  The consolidation is not a task
phase (`task_phases`): `--epochs`/`--lr` change the experts only, and under an imposed recipe
the consolidation stays this recipe's phase (train/recipes.py `resolve`); name it to change it
(`--recipe-option consolidation.epochs=20`).

Measured (bench/bmc_experts.py, BENCHMARKS.md "BMC's experts: the three variants"; CIFAR-10
JPEGs, 3 tasks of 2 classes, 60 training images a class, resnet32, 6 expert and 6
consolidation epochs at batch 32, seeds 0-2, CPU; mean +- 95% t half-width), the experts of
tasks 1-2: L_bd between a trained expert and its base 669 +- 136 (reference, no stability
term), 99 +- 26 (paper: AdamW holds the expert near the base), 407 +- 45 (paper-sgd: the same
term at lambda 1 under SGD lr 0.1 leaves the expert 4x farther than under AdamW); the expert's
accuracy on its own task 69.2 +- 16.6%, 64.2 +- 10.3%, 50.6 +- 16.4% (2 classes: chance 50%);
final task-agnostic accuracy 20.7 +- 11.1%, 20.6 +- 9.3%, 17.4 +- 9.6% (not distinguishable at
3 seeds on this stream).

Deviations (from the reference code; the paper states no optimisation):
- the experts' plateau schedule steps on the mean training loss and every epoch runs; the
  reference (training.py l. 134-150) steps it on the task's *test* loss and stops a task
  after more than 10 bad epochs.  Its train loader drops the last partial batch; the loop
  keeps it.
- the experts' inputs on pixels: the project's crop (pad 4) + flip at the stream's size and
  the training set's per-channel mean / std (the recipe's `train-set`); the reference's pixel
  path resizes to 224 (RandomResizedCrop, Resize + CenterCrop for tests) and normalises with
  ImageNet's constants (datasets/seq_stream.py l. 52-71).  Neither has a brightness or colour
  jitter.  On Stream the reference feeds stored features, untransformed (as `bmc-features`).
- buffers: each class's `per_class` samples drawn at random from the task's un-augmented
  uint8 images, features computed on them; the reference keeps the first `buffer_size` + 1
  samples of its shuffled train loader, as the loader transformed them (augmented,
  normalised floats), with the features of those transformed inputs.
- the memory is balanced by class (the budget's per-class quota, random selection); the
  reference's `Memory.sample` balances by buffer (= by task): ceil(memory_size / buffers) + 1
  random samples of each, which can exceed memory_size by one per buffer (a byte budget
  cannot).  The two agree when every task has the same number of classes.
- task-agnostic accuracy after task t is the argmax over the classes seen so far (the
  project's evaluator masks unseen classes, for every method); the reference's `evaluate`
  (training.py l. 39-45) takes the argmax over the whole head, unseen classes included.  The
  final row (every class seen) is the same either way.
- variants with beta > 0, consolidation under mixup: clbudget weights L_bmc like the CE,
  lam * d(f_i) + (1 - lam) * d(f_perm(i)) (the reference has no active distillation to mix).
  The validation split is drawn from the run's generator (the reference: a fixed seed 42);
  the balanced sampler takes at least one step when D is smaller than a batch (the
  reference's drop_last would take none).
- variants with lambda > 0: the base's features for L_bd use the batch's statistics (the
  commented-out code runs the base in eval mode while the expert trains in train mode, so
  their features differ before any update); the first step's experts are not regularized
  (lambda = 0: the base is still untrained); L_bd uses every stage's interim features, the
  buffers only the pooled ones (storing every map per sample would cost ~100x more bytes).
- on resmlp the expert trains with the reference's dropout (0.3 after each block) and the
  frozen base copy, in eval mode, without it: L_bd is not exactly 0 when the expert starts.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from clbudget.streams.catalog import check_choice
from clbudget.train.loop import LoopConfig, mixed_loss
from clbudget.methods.base import Method
from clbudget.methods.bmc_experts import (ExpertPool, ExpertResult, ExpertSpec, layer_distance,
                                          train_experts)
from clbudget.nets.classifier import Classifier
from clbudget.methods.registry import register

DISTANCES = ("l2", "mse")   # per-layer distance of L_bd, see bmc_experts.layer_distance
CONSOLIDATIONS = ("reference", "today")   # the base's optimisation, see `consolidation_phase`
EXPERT_EXECUTORS = ("local", "ray")
# variant -> (lambda, beta, the recipe of its experts on images); see the module docstring
VARIANTS = {
    "reference": (0.0, 0.0, "bmc"),        # stream_benchmark as it runs: both terms off
    "paper": (1.0, 1.0, "bmc"),            # the paper's terms, the reference's experts
    "paper-sgd": (1.0, 1.0, "bmc-pycil"),  # the default before: paper's terms, PyCIL's SGD
}
# consolidation="today": the regime clbudget ran before issue 25 (Adam, constant lr, every
# sample once per epoch, no validation split, no mixup), over the recipe's epochs/batch/lr
TODAY_CONSOLIDATION = dict(optimizer="adam", weight_decay=0.0, schedule="constant",
                           mixup=0.0, validation=0.0, sampler="shuffle", augment=False)


@dataclass(frozen=True)
class BMCConfig:
    # training: the variant's recipe (experts: phases first / later; the base: consolidation)
    variant: str = "reference"     # VARIANTS: "reference" | "paper" | "paper-sgd"
    stability: float | None = None       # lambda of L_exp; None = the variant's (0 or 1)
    task_weight: float = 1.0       # alpha of L_base (defaults.json bmc.task_coef 1)
    distill_weight: float | None = None  # beta of L_base; None = the variant's (0 or 1)
    experts_per_step: int = 1      # k: tasks (experts) per step (defaults.json bmc.n_experts 1)
    buffer_fraction: float = 0.1   # share of a task's data an expert sends (reference ~10%)
    workers: int = 0               # processes training a step's experts; 0 = k, 1 = in-process
    distance: str = "l2"           # L_bd per layer: "l2" (paper text) | "mse" (authors' code)
    consolidation: str = "reference"   # the base's regime: "reference" (the recipe's
    #                                    consolidation phase) | "today" (TODAY_CONSOLIDATION)
    executor: str = "local"        # where experts train: "local" (this machine) | "ray"

    def __post_init__(self):
        check_choice("variant", self.variant, VARIANTS)
        for name in ("stability", "distill_weight"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0 (or unset: the variant's), got {value}")
        if self.experts_per_step < 1:
            raise ValueError(f"experts_per_step must be >= 1, got {self.experts_per_step}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0 (0 = one per expert), got {self.workers}")
        check_choice("distance", self.distance, DISTANCES)
        if not 0 < self.buffer_fraction <= 1:
            raise ValueError(f"buffer_fraction must be in (0, 1], got {self.buffer_fraction}")
        check_choice("consolidation", self.consolidation, CONSOLIDATIONS)
        check_choice("executor", self.executor, EXPERT_EXECUTORS)

    @property
    def lambda_(self) -> float:
        """The stability weight in effect: `stability`, else the variant's."""
        return VARIANTS[self.variant][0] if self.stability is None else self.stability

    @property
    def beta(self) -> float:
        """The batched distillation weight in effect: `distill_weight`, else the variant's."""
        return VARIANTS[self.variant][1] if self.distill_weight is None else self.distill_weight


# --------------------------------------------------------------------------- the method
@register("bmc")
class BMC(Method):
    Config = BMCConfig
    recipe = "bmc"
    dataset_recipes = {"features": "bmc-features"}   # the reference's setting: feature vectors
    phases = ("first", "later", "consolidation")
    task_phases = ("first", "later")   # the experts; the consolidation keeps its recipe's values
    rebuilt = Method.rebuilt + ("_pool",)          # worker processes: started again on demand

    @classmethod
    def variant_recipe(cls, own: str, config=None) -> str:
        """The variant's recipe (VARIANTS), given the data set's `own` (train/recipes.py
        `reference_recipe`); a data set with a recipe of its own (features) keeps it."""
        if config is None or own != cls.recipe:
            return own
        return VARIANTS[config.variant][2]

    def __init__(self, ctx, config=None):
        super().__init__(ctx, config)
        s = ctx.stream
        self.base = Classifier.create(ctx.allocation.backbone, s.image_shape,
                                      s.num_classes).to(self.device)
        self.memory = self.new_memory(logits_dim=self.base.backbone.out_dim)
        self.consolidated = False     # has the base learned anything yet
        self.step_queue: list[tuple] = []   # (task index, x, y, seed) of the step's tasks
        self.sent_bytes: list[int] = []
        self.transferred_bytes: list[int] = []   # executor "ray": serialized buffer messages
        self.wall = {"experts_s": 0.0, "consolidation_s": 0.0, "critical_path_s": 0.0}
        self.intervals: list[list[float]] = []   # [task, started_at, ended_at] per expert
        self._pool = None

    def expert_spec(self, task) -> ExpertSpec:
        return self.spec_for(task.index, len(task.classes), len(task.y))

    def spec_for(self, index: int, n_classes: int, n_samples: int) -> ExpertSpec:
        lo = self.ctx.offsets[index]
        quota = self.memory.capacity // self.seen
        per_class = max(quota, math.ceil(self.config.buffer_fraction * n_samples / n_classes))
        t = self.trainer
        return ExpertSpec(self.ctx.allocation.backbone, tuple(self.ctx.stream.image_shape),
                          self.ctx.stream.num_classes, lo, lo + n_classes, t.pipeline,
                          per_class, first=not self.consolidated, device=str(self.device),
                          amp=t.amp, phase=self.phase("first" if not self.consolidated
                                                      else "later"))

    @property
    def workers(self) -> int:
        return self.config.workers or self.config.experts_per_step

    def learn(self, task):
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=self.trainer.generator))
        self.step_queue.append((task.index, task.x, task.y, seed))
        last = task.index == self.ctx.stream.num_tasks - 1
        if len(self.step_queue) < self.config.experts_per_step and not last:
            return {"loss": [], "images_processed": 0, "queued": True}
        state = self.base.state_dict()
        jobs = [(state, (x, y), self.config, sd,
                 self.spec_for(i, self.ctx.increments[i], len(y)))
                for i, x, y, sd in self.step_queue]
        results = [r.to(self.device) for r in self.train_step(jobs)]
        tasks = [i for i, *_ in self.step_queue]
        self.step_queue = []
        losses = [v for r in results for v in r.stats["loss"]]
        for i, r in zip(tasks, results):
            self.sent_bytes.append(r.n_bytes)
            if "transferred_bytes" in r.stats:
                self.transferred_bytes.append(r.stats["transferred_bytes"])
            self.wall["experts_s"] += r.stats["wall_s"]
            self.intervals.append([i, r.stats["started_at"], r.stats["ended_at"]])
        slowest = max(r.stats["wall_s"] for r in results)
        out = self.consolidate(results)
        self.wall["critical_path_s"] += slowest + out["wall_s"]
        self.consolidated = True
        self.memory.rebalance(torch.cat([r.images for r in results]),
                              torch.cat([r.labels for r in results]).long(), self.seen,
                              "random", generator=self.trainer.generator,
                              aux_new=torch.cat([r.features for r in results]))
        if last:
            self.close()
        return {"loss": losses + out["loss"],
                "images_processed": sum(r.stats["images_processed"] for r in results),
                "experts": [{k: v for k, v in r.stats.items() if k != "loss"} for r in results]}

    def train_step(self, jobs: list[tuple]) -> list[ExpertResult]:
        """The step's experts, concurrently where `workers` > 1 (a pool kept across steps)."""
        if self.config.executor == "ray" or self.workers <= 1 or len(jobs) <= 1:
            return train_experts(jobs, 1, self.config.executor)
        if self._pool is None:
            self._pool = ExpertPool(min(self.workers, len(jobs)))
        return self._pool.run(jobs)

    def close(self) -> None:
        """Stop the worker processes (after the last task; started again if needed)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def consolidation_phase(self) -> LoopConfig:
        """The base's optimisation: the recipe's consolidation phase (recipe `bmc`: the
        reference's AdamW, plateau schedule on a 20% validation split, mixup 0.4, sampler
        balanced by buffer), or under `consolidation="today"` the same epochs, batch and lr
        with TODAY_CONSOLIDATION's fields (Adam, constant lr, no validation, no mixup)."""
        phase = self.phase("consolidation")
        if self.config.consolidation == "today":
            return dataclasses.replace(phase, **TODAY_CONSOLIDATION)
        return phase

    def consolidate(self, results: list[ExpertResult]) -> dict:
        """Train the base once on D = memory + every buffer of the step with
        alpha * CE + beta * L_bmc, each sample distilled toward its own expert's features."""
        mx, my = self.memory.data()
        mf = self.memory.logits[:len(self.memory)]
        x = torch.cat([mx] + [r.images.to(self.device) for r in results])          # (n,C,H,W)
        y = torch.cat([my] + [r.labels.to(self.device).long() for r in results])   # (n,)
        target = torch.cat([mf] + [r.features.to(self.device) for r in results])   # (n, D)
        # the buffer each sample came from = the task (expert) of its class: the balanced
        # sampler's groups (utils/bmc.py: one label per buffer of the ConcatDataset)
        starts = torch.tensor(self.ctx.offsets[1:], device=self.device)
        buffer_of = torch.bucketize(y, starts, right=True)                         # (n,)
        seen, a, b = self.seen, self.config.task_weight, self.config.beta
        kind = self.config.distance

        def step(xb, yb, idx, mix=None):
            feats = self.base.backbone(xb)                                         # (B, D)
            logits = self.base.head(feats)[:, :seen]

            def loss_of(targets, at):   # mixup: once per target set, lam-weighted
                loss = a * F.cross_entropy(logits, targets)
                if b > 0:
                    loss = loss + b * layer_distance(target[at], feats, kind).mean()
                return loss
            return mixed_loss(loss_of, yb, idx, mix)

        t0 = time.perf_counter()
        out = self.trainer.fit(self.base.parameters(), x, y, step, self.consolidation_phase(),
                               f"bmc consolidation task {self.task}", modules=[self.base],
                               groups=buffer_of)
        dt = time.perf_counter() - t0
        self.wall["consolidation_s"] += dt
        return {**out, "wall_s": dt}

    def scores(self, x):
        return self.base(x)

    def retained(self):
        return ([("base", "params", self.base)]
                + self.memory.retained(logits_name="memory.features"))

    def feature_modules(self):
        return [self.base.backbone]

    def memo_extra(self):
        """The expert features kept with the memory: the distillation targets."""
        return [("memory.features", "exemplar_aux", _tensor_bytes(self.memory.logits))]

    def cost_figures(self):
        memory_bytes = sum(_tensor_bytes(t) for _, _, t in self.memory.retained())
        comm = sum(self.sent_bytes)
        transferred = {"communication_bytes_transferred": sum(self.transferred_bytes)} \
            if self.config.executor == "ray" else {}
        t0 = min((s for _, s, _ in self.intervals), default=0.0)
        summed = self.wall["experts_s"] + self.wall["consolidation_s"]
        return {"communication_bytes": comm, **transferred, "memory_bytes": memory_bytes,
                "total_cost_bytes": comm + memory_bytes, "buffers_sent": len(self.sent_bytes),
                "experts_per_step": self.config.experts_per_step, "workers": self.workers,
                "variant": self.config.variant, "stability_weight": self.config.lambda_,
                "distill_weight": self.config.beta,
                "losses": f"L_exp = CE + {self.config.lambda_:g} * L_bd; L_base = "
                f"{self.config.task_weight:g} * CE + {self.config.beta:g} * L_bmc",
                "distance": self.config.distance, "consolidation": self.config.consolidation,
                "consolidation_phase": dataclasses.asdict(self.consolidation_phase()),
                "expert_wall_s": self.wall["experts_s"],
                "consolidation_wall_s": self.wall["consolidation_s"],
                "expert_intervals_s": [[int(i), s - t0, e - t0] for i, s, e in self.intervals],
                "critical_path_s": self.wall["critical_path_s"], "summed_s": summed,
                "time_basis": "critical path: slowest expert of each step + its consolidation"
                + ("" if self.workers > 1 or self.config.executor == "ray" or
                   self.config.experts_per_step == 1 else
                   " (experts ran one after another here: the path one device per expert "
                   "would take)")}


def _tensor_bytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()
