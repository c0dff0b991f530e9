"""The one training loop.  Every method trains through `fit`; none writes its own.

A method supplies a `step(x, y, idx) -> loss` closure (x: augmented, normalized
inputs on the run's device; idx: positions in the training arrays, for stored
per-sample targets); the loop owns batching, augmentation, optimizer, schedule,
mixed precision, non-finite checks and the progress bar.

Speed choices: data stays on the device as uint8 and is augmented there
(random crop with 4-pixel padding + horizontal flip, vectorised over the batch);
losses are summed on the device and checked once per epoch, so the loop never
waits on the GPU inside an epoch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Iterable

import torch
from torch import nn

from clbudget.progress import progress_bar


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite: the run stops with this reason."""


class OutOfMemory(torch.cuda.OutOfMemoryError):
    """CUDA ran out of memory in a training step; `batch_size` is the batch it was at."""

    def __init__(self, message: str, batch_size: int):
        super().__init__(message)
        self.batch_size = batch_size

    def __reduce__(self):   # picklable (a Ray worker sends it back)
        return type(self), (str(self), self.batch_size)


@dataclass(frozen=True)
class LoopConfig:
    """Optimisation of one training phase.  Recipes (train/recipes.py) hold them."""
    epochs: int = 170
    batch_size: int = 128
    optimizer: str = "sgd"            # "sgd" | "adam"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 2e-4
    schedule: str = "multistep"       # "multistep" | "cosine" | "constant"
    milestones: tuple[int, ...] = (80, 120)
    gamma: float = 0.1
    augment: bool = True

    def __post_init__(self):
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        if self.schedule not in ("multistep", "cosine", "constant"):
            raise ValueError(f"schedule must be multistep, cosine or constant, got {self.schedule!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}")

    def with_epochs(self, epochs: int | None) -> "LoopConfig":
        """Override the epochs, scaling milestones so the schedule keeps its shape: milestone m
        of this E0-epoch phase becomes max(1, round(m * epochs / E0)) (Python's round: halves
        to even); milestones that land on one epoch merge into one decay, so a very short run
        may decay fewer times than the recipe (PyCIL's first task, 60/120/170 of 200, at 2
        epochs: (1, 2)).  tests/test_loop_recipes.py holds the hand-made table."""
        if epochs is None or epochs == self.epochs:
            return self
        scale = epochs / self.epochs
        milestones = tuple(sorted({max(1, round(m * scale)) for m in self.milestones}))
        return replace(self, epochs=epochs, milestones=milestones)


@dataclass(frozen=True)
class Pipeline:
    """uint8 images -> normalized float inputs on the device, optionally augmented.

    Augmentation (PyCIL utils/data.py order): random crop with `pad` zero pixels, horizontal
    flip, then, when `brightness` > 0, torchvision's `ColorJitter(brightness=b)` on the uint8
    image: one factor per image uniform in [max(0, 1 - b), 1 + b], pixels multiplied by it,
    clamped to 255 and truncated to uint8 (PIL's `ImageEnhance.Brightness` = `Image.blend`
    with black).  Every random number comes from the CPU generator, so a run augments
    identically on every device.  A picklable frozen dataclass (BMC's experts receive it)."""
    mean: tuple[float, ...]
    std: tuple[float, ...]
    pad: int = 4
    channels_last: bool = False
    brightness: float = 0.0      # ColorJitter brightness b (PyCIL's CIFAR recipe: 63 / 255)

    @classmethod
    def from_images(cls, x_uint8, **fields) -> "Pipeline":
        """Mean and std per channel of every image of `x_uint8` (N, C, H, W), in float64."""
        x = torch.as_tensor(x_uint8)
        n_values, total, squares = 0, 0.0, 0.0
        for b in range(0, len(x), 4096):              # chunks: no (N, C, H, W) float copy
            chunk = x[b:b + 4096].double().div_(255)
            total = total + chunk.sum((0, 2, 3))
            squares = squares + chunk.pow(2).sum((0, 2, 3))
            n_values += chunk.shape[0] * chunk.shape[2] * chunk.shape[3]
        mean = total / max(n_values, 1)
        var = (squares / max(n_values, 1) - mean.pow(2)) * n_values / max(n_values - 1, 1)
        return cls(tuple(mean.tolist()), tuple(var.clamp_min(1e-6).sqrt().tolist()), **fields)

    def __call__(self, x: torch.Tensor, augment: bool = False,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, C, H, W) uint8 -> (B, C, H, W) float32 normalized."""
        if augment:
            x = self.augment(x, generator)
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        out = (x.float().div_(255) - mean) / std
        return out.contiguous(memory_format=torch.channels_last) if self.channels_last else out

    def augment(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Random crop with zero padding, horizontal flip and brightness, one draw per image."""
        b, c, h, w = x.shape
        p = self.pad
        xp = nn.functional.pad(x, (p, p, p, p))                                   # (B,C,H+2p,W+2p)
        # random numbers from the CPU generator: identical on every device
        dy = torch.randint(0, 2 * p + 1, (b,), generator=generator).to(x.device)
        dx = torch.randint(0, 2 * p + 1, (b,), generator=generator).to(x.device)
        flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
        cols = torch.arange(w, device=x.device).expand(b, w)
        cols = torch.where(flip[:, None], cols.flip(1), cols) + dx[:, None]          # (B,W)
        rows = dy[:, None] + torch.arange(h, device=x.device)                        # (B,H)
        flat = (rows[:, :, None] * (w + 2 * p) + cols[:, None, :]).reshape(b, 1, h * w)
        out = xp.reshape(b, c, -1).gather(2, flat.expand(b, c, h * w)).reshape(b, c, h, w)
        if self.brightness > 0:
            return brighten(out, self.brightness_factors(b, generator).to(x.device))
        return out

    def brightness_factors(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """(n,) factors uniform in [max(0, 1 - b), 1 + b] (torchvision ColorJitter)."""
        lo, hi = max(0.0, 1.0 - self.brightness), 1.0 + self.brightness
        return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)


def brighten(x_uint8: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) uint8 images times (B,) factors, clamped to 255, truncated (PIL blend)."""
    scaled = x_uint8.float() * factors.float().view(-1, 1, 1, 1)
    return scaled.clamp_(0, 255).floor_().to(torch.uint8)


def make_optimizer(params, cfg: LoopConfig) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("nothing to train: no parameter requires a gradient")
    foreach = dict(foreach=True) if params[0].is_cuda else {}
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **foreach)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                           weight_decay=cfg.weight_decay, **foreach)


def make_schedule(opt, cfg: LoopConfig):
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    if cfg.schedule == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(opt, list(cfg.milestones), gamma=cfg.gamma)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 1.0)


@dataclass
class Trainer:
    """What the loop needs from the run: device, pipeline, randomness, precision, output."""
    device: torch.device
    pipeline: Pipeline
    generator: torch.Generator
    amp: bool = False            # bf16 autocast (the recipe's precision "bf16")
    progress: bool = False
    images_processed: int = 0    # training work so far: images through `fit` (epochs x n)
    flops: object = None         # train/flops.py FlopTally: the run's training FLOPs

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def inputs(self, x_uint8: torch.Tensor, augment: bool = False) -> torch.Tensor:
        return self.pipeline(x_uint8.to(self.device, non_blocking=True), augment, self.generator)

    def fit(self, params: Iterable[torch.Tensor], x: torch.Tensor, y: torch.Tensor,
            step: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
            cfg: LoopConfig, desc: str = "train",
            modules: Iterable[nn.Module] = ()) -> dict:
        """Train `params` on (x uint8 (N,C,H,W), y (N,)) with `step`; returns loss history.

        `modules` are put in train mode for the phase (others keep their mode, so a
        frozen teacher stays in eval mode).
        """
        for m in modules:
            m.train()
        opt = make_optimizer(params, cfg)
        sched = make_schedule(opt, cfg)
        x, y = x.to(self.device), y.to(self.device).long()
        n = len(x)
        if n == 0:
            raise ValueError(f"{desc}: no training data")
        steps = math.ceil(n / cfg.batch_size)
        from clbudget.train.flops import fit_meter   # FLOPs of this call (flops.py)
        flops = fit_meter(self, desc, cfg.epochs, steps, n, cfg.batch_size)
        history = []
        bar = progress_bar(range(cfg.epochs), desc=desc, enabled=self.progress, unit="ep")
        for epoch in bar:
            perm = torch.randperm(n, generator=self.generator).to(self.device)
            total = torch.zeros((), device=self.device)
            try:
                for b in range(steps):
                    idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
                    xb = self.pipeline(x[idx], cfg.augment, self.generator)
                    with flops.measure(epoch, b):
                        with self.autocast():
                            loss = step(xb, y[idx], idx)
                        opt.zero_grad(set_to_none=True)
                        loss.backward()
                    opt.step()
                    total += loss.detach().float()
            except torch.cuda.OutOfMemoryError as e:
                if isinstance(e, OutOfMemory):
                    raise
                raise OutOfMemory(
                    f"{desc}: CUDA out of memory at batch size {cfg.batch_size}; rerun with "
                    f"--batch-size {max(1, cfg.batch_size // 2)} or --retry-smaller-batch",
                    cfg.batch_size) from e
            sched.step()
            mean_loss = float(total) / steps  # one sync per epoch
            if not math.isfinite(mean_loss):
                raise NonFiniteLoss(f"{desc}: loss became {mean_loss} in epoch {epoch + 1} "
                                    f"(lr {cfg.lr}, batch {cfg.batch_size})")
            history.append(mean_loss)
            self.images_processed += n
            bar.set_postfix(loss=f"{mean_loss:.3f}")
        flops.close()
        return {"loss": history, "epochs": cfg.epochs}

    @property
    def eval_batch_size(self) -> int:
        """The batch `predict` evaluates in, per device type, measured by bench/eval_batch.py
        (BENCHMARKS.md, "Evaluation batch"): on CPU, ResNet32 costs 0.45-0.49 ms per image
        at batch 128 and 1.6 ms at 1024 (2 threads), whose activations outgrow the caches,
        with bitwise-equal scores; CUDA is not measured yet and keeps 1024."""
        return 1024 if self.device.type == "cuda" else 128

    @torch.no_grad()
    def predict(self, score: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                batch_size: int | None = None) -> torch.Tensor:
        """Scores (N, K) of uint8 images x in batches of `batch_size` (default
        `eval_batch_size`), no augmentation."""
        batch_size = batch_size or self.eval_batch_size
        outs = []
        for b in range(0, len(x), batch_size):
            with self.autocast():
                outs.append(score(self.inputs(x[b:b + batch_size])).float())
        return torch.cat(outs) if outs else torch.zeros(0)
