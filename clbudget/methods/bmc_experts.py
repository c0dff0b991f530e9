"""bmc_experts — BMC's expert step and where it runs (methods/bmc.py is the method; its
docstring states what is trained, with which losses and why).

- the stability loss L_bd: `interim_features` (each stage's output and the pooled features),
  `layer_distance` (per sample, "l2" = the paper's norm, "mse"), `stability_loss`;
- the expert step `train_expert(base_state, task_arrays, config, seed, spec) -> ExpertResult`:
  top-level and picklable, it captures no Method object; `config` is the method's BMCConfig
  (read: `lambda_`, `distance`), `spec` an `ExpertSpec`;
- executors: `train_experts` (in this process, or `ExpertPool`'s spawned processes), and
  `train_experts_ray` (each expert a Ray task, its buffer one torch.save message).

Kept apart from bmc.py so each file stays under the project's 600 lines; it imports nothing of
bmc.py (the config is read by attribute), so the two import one way.
"""
from __future__ import annotations

import dataclasses
import io
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from clbudget.budget.costs import LABEL_DTYPE
from clbudget.train.loop import LoopConfig, Pipeline, Trainer
from clbudget.nets.classifier import Classifier, frozen_copy


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


def layer_distance(teacher: torch.Tensor, student: torch.Tensor, kind: str = "l2"):
    """(B,) one layer's feature distance per sample, the teacher detached: "l2" the L2 norm
    of the difference over the sample's whole map, ||sg(phi^t) - phi^s||_2 (the paper's
    L_bd); "mse" the mean squared difference (the authors' commented-out code, F.mse_loss,
    models/bmc.py lines 77 and 157)."""
    diff = (teacher.detach() - student).float().flatten(1)
    if kind == "l2":
        return torch.linalg.vector_norm(diff, dim=1)
    return diff.pow(2).mean(1)


def stability_loss(teacher: list[torch.Tensor], student: list[torch.Tensor],
                   kind: str = "l2") -> torch.Tensor:
    """L_bd: sum over layers of the batch-mean distance of sg(phi_i^t) and phi_i^s (the batch
    reduced by its mean: the paper's expectation over x; F.mse_loss's mean in the code)."""
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
                 config, seed: int, spec: ExpertSpec,
                 on_trained: Callable[[nn.Module, Trainer], None] | None = None
                 ) -> ExpertResult:
    """Train one expert from the base on one task with L_exp; return its buffer.

    base_state: the base network's state_dict; task_arrays: (x (N,C,H,W) uint8, y (N,) int64);
    config: the method's BMCConfig (its `lambda_` and `distance`).  Builds its own trainer and
    generator from `seed`: no state is shared with the caller.  `on_trained(expert, trainer)`,
    if given, sees the trained expert in eval mode before its buffer is drawn (a probe for
    benchmarks, bench/bmc_experts.py; it must not draw from the trainer's generator).
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
    lam = 0.0 if spec.first else config.lambda_

    def step(xb, yb, idx):
        feats = interim_features(expert.backbone, xb)
        loss = F.cross_entropy(expert.head(feats[-1])[:, lo:hi], yb - lo)
        if lam > 0:
            with torch.no_grad():
                target = interim_features(base.backbone, xb)
            loss = loss + lam * stability_loss(target, feats, config.distance)
        return loss

    started_at, t0 = time.time(), time.perf_counter()
    history = trainer.fit(expert.parameters(), x, y, step, spec.phase,
                          f"bmc expert {lo}-{hi}", modules=[expert])
    expert.eval()
    if on_trained is not None:
        on_trained(expert, trainer)
    pick = sample_buffer(y.to(device), spec.buffer_per_class, generator)
    bx, by = x.to(device)[pick], y.to(device)[pick]
    features = trainer.predict(expert.features, bx)                          # (n, D)
    batch_statistics(expert)
    distance = trainer.predict(
        lambda xb: stability_loss_per_sample(base.backbone, expert.backbone, xb,
                                             config.distance)[:, None], bx)
    stats = {"loss": history["loss"], "wall_s": time.perf_counter() - t0,
             "started_at": started_at, "ended_at": time.time(),
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
                              kind: str = "l2"):
    """(B,) L_bd between two backbones, per sample (for reporting)."""
    t, s = interim_features(base, xb), interim_features(expert, xb)
    return sum(layer_distance(a, b, kind) for a, b in zip(t, s))


def train_experts(jobs: list[tuple], workers: int = 1, executor: str = "local"
                  ) -> list[ExpertResult]:
    """The experts of one step, independent of each other: `train_expert(*job)` for each job,
    in job order.  `workers` > 1: that many spawned processes at once (`ExpertPool`);
    1: one after another in this process; `executor="ray"`: each a Ray task."""
    if executor == "ray":
        return train_experts_ray(jobs)
    if workers <= 1 or len(jobs) <= 1:
        return [train_expert(*job) for job in jobs]
    with ExpertPool(min(workers, len(jobs))) as pool:
        return pool.run(jobs)


def _worker_ready(barrier) -> None:
    """A pool process's initializer: one torch thread (the process holds one core), then wait
    until every process of the pool is up, so that the experts of a step start together
    rather than one behind another's interpreter start-up.  The expert code is this module,
    imported to unpickle this function; a job's BMCConfig imports bmc.py when it arrives."""
    torch.set_num_threads(1)
    try:
        barrier.wait(timeout=120)
    except Exception:   # a broken barrier only costs the synchronised start
        pass


def _expert_process(job) -> ExpertResult:
    return train_expert(*job)


class ExpertPool:
    """`size` spawned processes (torch.multiprocessing's spawn context: CUDA-safe; tensors
    travel through shared memory) training experts concurrently; kept across steps."""

    def __init__(self, size: int):
        from concurrent.futures import ProcessPoolExecutor
        import torch.multiprocessing as tmp
        ctx = tmp.get_context("spawn")
        self.size = size
        self.pool = ProcessPoolExecutor(size, mp_context=ctx, initializer=_worker_ready,
                                        initargs=(ctx.Barrier(size),))

    def run(self, jobs: list[tuple]) -> list[ExpertResult]:
        cpu = [(({k: v.detach().cpu() for k, v in state.items()}, (x.cpu(), y.cpu()), config,
                 seed, spec)) for state, (x, y), config, seed, spec in jobs]
        return [f.result() for f in [self.pool.submit(_expert_process, job) for job in cpu]]

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


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
    from clbudget.optional import import_ray
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
