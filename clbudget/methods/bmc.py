"""bmc — Batch Model Consolidation (Fostiropoulos, Zhu & Itti, CVPR 2023), with the authors'
code (github.com/fostiropoulos/stream_benchmark: models/bmc.py, utils/bmc.py) for details.

One incremental step of BMC has two phases.
- Regularization: k expert models start from the base model; each learns one task with
      L_exp = L_T(expert(x), y) + lambda * L_bd(base(x), expert(x)),
  L_bd(t, s) = sum over layers i of ||sg(phi_i^t) - phi_i^s||, the interim feature
  distillation (the "stability loss"), summed over the backbone's stages and its pooled
  features (`interim_features`), averaged over the batch.  Each layer's distance is the mean
  squared difference, as the authors' code computes it (F.mse_loss); `distance="l2"` takes
  the L2 norm the paper writes.  Both networks normalise with the batch's statistics
  (`batch_statistics`), so L_bd is 0 when the expert starts.  The task loss is the
  cross-entropy over the expert's own task's classes (reference `task_loss`, logits sliced to
  the task).  After training, each expert samples a buffer B_i from its task (uint8 images,
  labels, its own pooled features) and sends it once to the central node; the expert is then
  discarded.
- Consolidation: the base model is trained on D = {memory M, buffers B_i..B_{i+k}} with
      L_base = alpha * CE(base(x)[:, :seen], y) + beta * L_bmc,
      L_bmc  = E_{x, phi(x; theta_i) ~ D} ||sg(phi(x; theta_i)) - phi_base(x)||,
  each sample distilled toward the features of the expert that sent it.  The buffers are then
  merged into the memory (class-balanced, random selection, at the budget's capacity), each
  kept sample keeping its expert's features, so later steps keep distilling toward them.

The expert step is the top-level, picklable `train_expert(base_state, task_arrays, config,
seed, spec) -> ExpertResult`: it rebuilds the expert and a frozen copy of the base from
`base_state`, owns its own generator and trainer, and captures no Method object, so an
executor can ship it: `executor="local"` runs it in this process (threads via
`train_experts`), `executor="ray"` as a Ray task (`train_experts_ray`) on whichever node
Ray picks.  On Ray the expert's buffer comes back as one message, the three tensors
serialized by `torch.save` (`pack_buffer`), through the object store; its length is the
communication actually transferred, reported as `communication_bytes_transferred` beside
the ledger-accounted `communication_bytes` (the tensors' bytes; the difference is the
framing of torch.save's zip container, about 2 KiB per buffer).  The inputs shipped to an expert
(base weights, task data) are not counted: the paper's communication cost is the buffers
sent to the central node.

Steps of k tasks (`experts_per_step`).  The stream hands over one task per `learn` call, and a
class-incremental run evaluates the base after every task, so the default k = 1 consolidates
after every task: the base (the deployed model, which the paper evaluates) has consolidated
every task it is tested on, so each row of the accuracy matrix is meaningful.  With k > 1 every
expert of a step starts from the same base (not updated within the step), each buffer is merged
into the memory on arrival (the central node can keep nothing outside its budget across a task
boundary), and the base is consolidated after the k-th task of the step (and after the last
task, as the reference's `end_task`) on the memory plus the current buffer; in between, the base
has not yet learned the step's tasks.  Experts of one step could run concurrently only if their
tasks arrived together; here they arrive one per call, so one expert trains per call.

Retains (strict ledger): the base network (parameters + BN buffers); the replay memory: uint8
images, int16 labels and float32 expert features (n, out_dim), kind `exemplar_aux`.
Experts, the frozen base copy inside an expert and the buffers are discarded after
consolidation (the brief's rule: what is discarded is not retained).
Cost figures (the paper's Pareto axes): `communication_bytes` = bytes of every buffer actually
sent (images + labels + features), `memory_bytes` = bytes of the replay memory,
`total_cost_bytes` = both; wall times of the expert and consolidation phases, and the critical
path a distributed run would take (slowest expert of each step + its consolidation).  Relative
time vs finetune is computed by analysis/ from the rows' `wall_s`.

Defaults and sources.  The paper's text available here (a poster summary) gives no values for
lambda, alpha, beta, k or the buffer size, and the reference's hparams/defaults.json has no
"bmc" entry: lambda = alpha = beta = 1 (the equations' unweighted form).  buffer_fraction 0.1:
the reference sends `buffer_size` 10,000 samples per expert on Stream, about 10% of a Stream
task (6,770,722 images / 71 tasks); each buffer holds at least the memory's per-class quota so
the memory can be filled.  Experts: the reference trains an MLP on pre-extracted features with
AdamW; on pixels we use the project's PyCIL CNN optimisation (recipe `bmc`) for experts, so BMC
is compared with other methods at the same expert cost.  Consolidation: AdamW lr 0.01 in the
reference (`consolidate`), here Adam lr 0.01 without weight decay, constant rate, batch 64
(defaults.json minibatch_size), 20 epochs (defaults.json n_epochs; `cons_epochs` is not
published), no augmentation (the stored features are of the un-augmented images).

Deviations:
- per-layer distance: mean squared difference (the authors' code) rather than the paper's
  unsquared L2 norm, whose gradient has unit size however close the expert is: an expert
  that starts exactly at the base is kicked away from it (measured on glyphs: with SGD lr
  0.1 and lambda 1 the L2 form ended ~50x farther from the base than lambda 0; MSE ends
  closer, as intended).
- the base's features for L_bd use the batch's statistics (the code runs the base in eval
  mode while the expert trains in train mode, so their features differ before any update).
- buffers store the expert's pooled features only (reference `Buffer._make` stores
  `model.features(x)`); the online stability loss uses every stage's interim features, as the
  paper's L_bd; storing every interim map per sample would cost ~100x more bytes.
- the first step's experts are not regularized (lambda = 0): the base is still untrained and
  there is nothing to keep stable.  (The public reference code trains every expert on L_T
  only: its stability term is commented out; we follow the paper.)
- the reference's consolidation also uses mixup (alpha 0.4), a 20% validation split with
  ReduceLROnPlateau and a class-balanced sampler; none are in the paper and none are used here
  (our memory is class-balanced already).
"""
from __future__ import annotations

import dataclasses
import io
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from clbudget.budget.costs import LABEL_DTYPE
from clbudget.experiment.loop import LoopConfig, Pipeline, Trainer
from clbudget.methods.base import Method
from clbudget.methods.nets import Classifier, frozen_copy
from clbudget.methods.registry import register

DISTANCES = ("mse", "l2")   # per-layer distance of L_bd, see `layer_distance`
EXPERT_EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class BMCConfig:
    # training: the recipe `bmc` (experts: phases first / later; the base: consolidation)
    stability: float = 1.0         # lambda of L_exp (paper eq. L_exp; value not published)
    task_weight: float = 1.0       # alpha of L_base (reference `task_coef`; value not published)
    distill_weight: float = 1.0    # beta of L_base (reference `distil_coef`; value not published)
    experts_per_step: int = 1      # k: tasks (experts) per incremental step; see docstring
    buffer_fraction: float = 0.1   # share of a task's data an expert sends (reference ~10%)
    workers: int = 1               # experts trained concurrently when a step has several
    distance: str = "mse"          # L_bd per layer: "mse" (authors' code) | "l2" (paper text)
    executor: str = "local"        # where experts train: "local" (this process) | "ray"

    def __post_init__(self):
        if self.experts_per_step < 1:
            raise ValueError(f"experts_per_step must be >= 1, got {self.experts_per_step}")
        if self.distance not in DISTANCES:
            raise ValueError(f"distance must be one of {', '.join(DISTANCES)}, "
                             f"got {self.distance!r}")
        if not 0 < self.buffer_fraction <= 1:
            raise ValueError(f"buffer_fraction must be in (0, 1], got {self.buffer_fraction}")
        if self.executor not in EXPERT_EXECUTORS:
            raise ValueError(f"executor must be one of {', '.join(EXPERT_EXECUTORS)}, "
                             f"got {self.executor!r}")


# --------------------------------------------------------------------------- stability loss
def interim_features(backbone: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The backbone's forward, keeping each stage's output: (B, C_i, H_i, W_i) per stage of
    its generalized and specialized parts (a part without stages counts as one), and the
    pooled features (B, D) last."""
    feats = []
    for part in (backbone.generalized, backbone.specialized):
        children = list(part.children())
        if not any(isinstance(m, nn.Sequential) for m in children):
            x = part(x)
            feats.append(x)
            continue
        for m in children:
            x = m(x)
            if isinstance(m, nn.Sequential):
                feats.append(x)
    if feats[-1] is not x:
        feats.append(x)
    return feats


def layer_distance(teacher: torch.Tensor, student: torch.Tensor, kind: str = "mse"):
    """(B,) one layer's feature distance per sample, the teacher detached: "mse" the mean
    squared difference (the authors' code, F.mse_loss), "l2" the L2 norm of the difference
    (the paper's notation)."""
    diff = (teacher.detach() - student).float().flatten(1)
    if kind == "l2":
        return torch.linalg.vector_norm(diff, dim=1)
    return diff.pow(2).mean(1)


def stability_loss(teacher: list[torch.Tensor], student: list[torch.Tensor],
                   kind: str = "mse") -> torch.Tensor:
    """L_bd: sum over layers of the batch-mean distance of sg(phi_i^t) and phi_i^s."""
    return sum(layer_distance(t, s, kind).mean() for t, s in zip(teacher, student))


# --------------------------------------------------------------------------- the expert step
@dataclass(frozen=True)
class ExpertSpec:
    """Everything an expert needs besides the base weights and its task (all picklable)."""
    backbone: str
    image_shape: tuple[int, int, int]
    num_classes: int
    lo: int                       # the task's classes are [lo, hi)
    hi: int
    pipeline: Pipeline
    buffer_per_class: int
    first: bool = False           # first step: the base is untrained, no stability loss
    device: str = "cpu"
    amp: bool = False
    phase: LoopConfig = LoopConfig()   # the expert's optimisation (the recipe's first / later)


@dataclass
class ExpertResult:
    """What an expert sends to the central node once: its buffer, and statistics."""
    images: torch.Tensor          # (n, C, H, W) uint8
    labels: torch.Tensor          # (n,) int16
    features: torch.Tensor        # (n, D) float32, the expert's pooled features
    stats: dict = field(default_factory=dict)

    @property
    def n_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.images, self.labels, self.features))

    def to(self, device) -> "ExpertResult":
        return ExpertResult(self.images.to(device), self.labels.to(device),
                            self.features.to(device), self.stats)


def sample_buffer(y: torch.Tensor, per_class: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of up to `per_class` random samples of every class in y."""
    picks = []
    for c in torch.unique(y).tolist():
        pos = (y == c).nonzero().flatten()
        order = torch.randperm(len(pos), generator=generator)[:per_class].to(pos.device)
        picks.append(pos[order])
    return torch.cat(picks)


def train_expert(base_state: dict, task_arrays: tuple[torch.Tensor, torch.Tensor],
                 config: BMCConfig, seed: int, spec: ExpertSpec) -> ExpertResult:
    """Train one expert from the base on one task with L_exp; return its buffer.

    base_state: the base network's state_dict; task_arrays: (x (N,C,H,W) uint8, y (N,) int64).
    Builds its own trainer and generator from `seed`: no state is shared with the caller.
    """
    device = torch.device(spec.device)
    x, y = task_arrays
    expert = Classifier.create(spec.backbone, spec.image_shape, spec.num_classes)
    expert.load_state_dict(base_state)
    expert.to(device)
    base = batch_statistics(frozen_copy(expert))   # sg(phi^base): the base as it was sent
    generator = torch.Generator().manual_seed(int(seed))
    trainer = Trainer(device, spec.pipeline, generator, amp=spec.amp)
    lo, hi = spec.lo, spec.hi
    lam = 0.0 if spec.first else config.stability

    def step(xb, yb, idx):
        feats = interim_features(expert.backbone, xb)
        loss = F.cross_entropy(expert.head(feats[-1])[:, lo:hi], yb - lo)
        if lam > 0:
            with torch.no_grad():
                target = interim_features(base.backbone, xb)
            loss = loss + lam * stability_loss(target, feats, config.distance)
        return loss

    t0 = time.perf_counter()
    history = trainer.fit(expert.parameters(), x, y, step, spec.phase,
                          f"bmc expert {lo}-{hi}", modules=[expert])
    expert.eval()
    pick = sample_buffer(y.to(device), spec.buffer_per_class, generator)
    bx, by = x.to(device)[pick], y.to(device)[pick]
    features = trainer.predict(expert.features, bx)                          # (n, D)
    batch_statistics(expert)
    distance = trainer.predict(
        lambda xb: stability_loss_per_sample(base.backbone, expert.backbone, xb,
                                             config.distance)[:, None], bx)
    stats = {"loss": history["loss"], "wall_s": time.perf_counter() - t0,
             "stability_distance": float(distance.mean()) if len(distance) else 0.0,
             "buffer_samples": len(pick), "stability_weight": lam,
             "images_processed": trainer.images_processed}
    return ExpertResult(bx.clone(), by.to(LABEL_DTYPE), features.float(), stats)


def batch_statistics(net: nn.Module) -> nn.Module:
    """BatchNorm layers normalise with the batch's statistics and never update their running
    ones (train mode, momentum 0): base and expert are compared as the same function of the
    same batch, so L_bd is exactly 0 when the expert starts."""
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train()
            m.momentum = 0.0
    return net


def stability_loss_per_sample(base: nn.Module, expert: nn.Module, xb: torch.Tensor,
                              kind: str = "mse"):
    """(B,) L_bd between two backbones, per sample (for reporting)."""
    t, s = interim_features(base, xb), interim_features(expert, xb)
    return sum(layer_distance(a, b, kind) for a, b in zip(t, s))


def train_experts(jobs: list[tuple], workers: int = 1, executor: str = "local"
                  ) -> list[ExpertResult]:
    """The experts of one step, independent of each other: `train_expert(*job)` for each job,
    `workers` at a time in threads, or each as a Ray task (`executor="ray"`)."""
    if executor == "ray":
        return train_experts_ray(jobs)
    if workers <= 1 or len(jobs) <= 1:
        return [train_expert(*job) for job in jobs]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda job: train_expert(*job), jobs))


def pack_buffer(result: ExpertResult) -> bytes:
    """The message an expert sends: its buffer's three tensors, serialized by torch.save."""
    out = io.BytesIO()
    torch.save({"images": result.images.cpu(), "labels": result.labels.cpu(),
                "features": result.features.cpu()}, out)
    return out.getvalue()


def unpack_buffer(message: bytes, stats: dict) -> ExpertResult:
    t = torch.load(io.BytesIO(message), weights_only=True)
    return ExpertResult(t["images"], t["labels"], t["features"], stats)


def _expert_task(base_state, task_arrays, config, seed, spec) -> tuple[bytes, dict]:
    """A Ray task (runs in a worker): one expert; its buffer message and its statistics."""
    torch.set_num_threads(1)      # the task holds one CPU; a reused worker may have had more
    result = train_expert(base_state, task_arrays, config, seed, spec)
    return pack_buffer(result), result.stats


def train_experts_ray(jobs: list[tuple]) -> list[ExpertResult]:
    """Each job a Ray task (one CPU; one GPU if the expert's device is cuda); buffers come
    back through the object store.  result.stats["transferred_bytes"] = the length of the
    buffer message received.  Uses the Ray instance of this process, or starts/joins one with
    `ray.init()` (which honours RAY_ADDRESS)."""
    from clbudget.experiment.executors import import_ray
    ray = import_ray("--bmc-executor ray")
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)
    task = ray.remote(_expert_task)
    refs = []
    for base_state, (x, y), config, seed, spec in jobs:
        gpu = spec.device.startswith("cuda")
        if gpu:   # Ray shows the task the GPU it was given as cuda:0
            spec = dataclasses.replace(spec, device="cuda")
        state = {k: v.detach().cpu() for k, v in base_state.items()}
        # two returns: the buffer message is an object of its own in the object store
        refs.append(task.options(num_cpus=1, num_gpus=1 if gpu else 0, num_returns=2,
                                 max_retries=2).remote(state, (x.cpu(), y.cpu()), config,
                                                       seed, spec))
    results = []
    for message_ref, stats_ref in refs:
        message, stats = ray.get(message_ref), ray.get(stats_ref)
        result = unpack_buffer(message, {**stats, "transferred_bytes": len(message)})
        results.append(result)
    return results


# --------------------------------------------------------------------------- the method
@register("bmc")
class BMC(Method):
    Config = BMCConfig
    recipe = "bmc"
    phases = ("first", "later", "consolidation")
    phase_fallbacks = {"consolidation": "later"}   # under an imposed two-phase recipe

    def __init__(self, ctx, config=None):
        super().__init__(ctx, config)
        s = ctx.stream
        self.base = Classifier.create(ctx.allocation.backbone, s.image_shape,
                                      s.num_classes).to(self.device)
        self.memory = self.new_memory(logits_dim=self.base.backbone.out_dim)
        self.consolidated = False     # has the base learned anything yet
        self.sent_bytes: list[int] = []
        self.transferred_bytes: list[int] = []   # executor "ray": serialized buffer messages
        self.wall = {"experts_s": 0.0, "consolidation_s": 0.0, "critical_path_s": 0.0}
        self.step_expert_s = 0.0      # slowest expert of the current step

    def expert_spec(self, task) -> ExpertSpec:
        lo = self.ctx.offsets[task.index]
        quota = self.memory.capacity // self.seen
        per_class = max(quota, math.ceil(self.config.buffer_fraction * len(task.y)
                                         / len(task.classes)))
        t = self.trainer
        return ExpertSpec(self.ctx.allocation.backbone, tuple(self.ctx.stream.image_shape),
                          self.ctx.stream.num_classes, lo, lo + len(task.classes), t.pipeline,
                          per_class, first=not self.consolidated, device=str(self.device),
                          amp=t.amp, phase=self.phase("first" if not self.consolidated
                                                      else "later"))

    def learn(self, task):
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=self.trainer.generator))
        [result] = train_experts([(self.base.state_dict(), (task.x, task.y), self.config, seed,
                                   self.expert_spec(task))], self.config.workers,
                                 self.config.executor)
        result = result.to(self.device)
        self.sent_bytes.append(result.n_bytes)
        if "transferred_bytes" in result.stats:
            self.transferred_bytes.append(result.stats["transferred_bytes"])
        self.wall["experts_s"] += result.stats["wall_s"]
        self.step_expert_s = max(self.step_expert_s, result.stats["wall_s"])
        losses = list(result.stats["loss"])
        last = task.index == self.ctx.stream.num_tasks - 1
        if (task.index + 1) % self.config.experts_per_step == 0 or last:
            losses += self.consolidate(result)["loss"]
            self.consolidated = True
        self.memory.rebalance(result.images, result.labels.long(), self.seen, "random",
                              generator=self.trainer.generator, aux_new=result.features)
        return {"loss": losses, "images_processed": result.stats["images_processed"],
                "expert": {k: v for k, v in result.stats.items() if k != "loss"}}

    def consolidate(self, result: ExpertResult) -> dict:
        """Train the base on D = memory + the buffer with alpha * CE + beta * L_bmc."""
        mx, my = self.memory.data()
        mf = self.memory.logits[:len(self.memory)]
        x = torch.cat([mx, result.images.to(self.device)])                   # (n, C, H, W)
        y = torch.cat([my, result.labels.to(self.device).long()])            # (n,)
        target = torch.cat([mf, result.features.to(self.device)])            # (n, D)
        seen, a, b = self.seen, self.config.task_weight, self.config.distill_weight
        kind = self.config.distance

        def step(xb, yb, idx):
            feats = self.base.backbone(xb)
            ce = F.cross_entropy(self.base.head(feats)[:, :seen], yb)
            return a * ce + b * layer_distance(target[idx], feats, kind).mean()

        t0 = time.perf_counter()
        out = self.trainer.fit(self.base.parameters(), x, y, step, self.phase("consolidation"),
                               f"bmc consolidation task {self.task}", modules=[self.base])
        dt = time.perf_counter() - t0
        self.wall["consolidation_s"] += dt
        self.wall["critical_path_s"] += self.step_expert_s + dt
        self.step_expert_s = 0.0
        return out

    def scores(self, x):
        return self.base(x)

    def retained(self):
        m = self.memory
        return [("base", "params", self.base), ("memory.images", "exemplars", m.images),
                ("memory.labels", "exemplar_aux", m.labels),
                ("memory.features", "exemplar_aux", m.logits)]

    def feature_modules(self):
        return [self.base.backbone]

    def cost_figures(self):
        m = self.memory
        memory_bytes = sum(t.numel() * t.element_size() for t in (m.images, m.labels, m.logits))
        comm = sum(self.sent_bytes)
        transferred = {"communication_bytes_transferred": sum(self.transferred_bytes)} \
            if self.config.executor == "ray" else {}
        return {"communication_bytes": comm, **transferred, "memory_bytes": memory_bytes,
                "total_cost_bytes": comm + memory_bytes, "buffers_sent": len(self.sent_bytes),
                "experts_per_step": self.config.experts_per_step,
                "expert_wall_s": self.wall["experts_s"],
                "consolidation_wall_s": self.wall["consolidation_s"],
                "critical_path_wall_s": self.wall["critical_path_s"]}
