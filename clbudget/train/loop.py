"""The one training loop.  Every method trains through `fit`; none writes its own.

A method supplies a `step(x, y, idx) -> loss` closure (x: augmented, normalized
inputs on the run's device; idx: positions in the training arrays, for stored
per-sample targets); the loop owns batching, augmentation, optimizer, schedule,
mixed precision, non-finite checks and the progress bar.

Optional per phase (`LoopConfig`), for regimes such as BMC's consolidation in the authors'
code (stream_benchmark models/bmc.py `consolidate` and utils/bmc.py
`make_consolidation_dataloader`): AdamW (`optimizer="adamw"`), a held-out validation split
(`validation`, the share of the data kept out of training), ReduceLROnPlateau stepped once per
epoch on the validation loss (`schedule="plateau"`: the same `step` closure on the held-out
samples, the trained modules in eval mode, no augmentation, no mixup; the mean training loss
when `validation` is 0), mixup (`mixup`, utils/train.py `mixup_data`: lam uniform in
[1 - mixup, 1], inputs lam * x + (1 - lam) * x[perm]; the step receives `mix=Mix(perm, lam)`
and weights its two targets with `mixed_loss`) and a sampler drawing each epoch's samples with
replacement, every group equally likely (`sampler="balanced"`, utils/bmc.py
`ImbalancedDatasetSampler`; the groups are `fit(..., groups=)`, by default the labels).

Speed choices: data stays on the device as uint8 and is augmented there
(random crop with 4-pixel padding + horizontal flip, vectorised over the batch);
losses are summed on the device and checked once per epoch, so the loop never
waits on the GPU inside an epoch.
"""
from __future__ import annotations

import inspect
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


OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("multistep", "cosine", "constant", "plateau")
SAMPLERS = ("shuffle", "balanced")


@dataclass(frozen=True)
class LoopConfig:
    """Optimisation of one training phase.  Recipes (train/recipes.py) hold them."""
    epochs: int = 170
    batch_size: int = 128
    optimizer: str = "sgd"            # "sgd" | "adam" | "adamw" (decoupled weight decay)
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 2e-4
    schedule: str = "multistep"       # SCHEDULES; "plateau" = ReduceLROnPlateau
    milestones: tuple[int, ...] = (80, 120)
    gamma: float = 0.1                # multistep factor; plateau factor
    augment: bool = True
    patience: int = 10                # plateau: epochs without improvement before lr * gamma
    threshold: float = 1e-4           # plateau: relative improvement that counts
    mixup: float = 0.0                # mixup coefficient: lam ~ U[1 - mixup, 1]; 0 = off
    validation: float = 0.0           # share of the data held out for the plateau's loss
    sampler: str = "shuffle"          # "shuffle" (each sample once per epoch) | "balanced"

    def __post_init__(self):
        from clbudget.streams.catalog import check_choice
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("sampler", self.sampler, SAMPLERS)
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}")
        if not 0 <= self.mixup < 1:
            raise ValueError(f"mixup must be in [0, 1) (0 = off; the reference's BMC uses 0.4), "
                             f"got {self.mixup}")
        if not 0 <= self.validation < 1:
            raise ValueError(f"validation must be in [0, 1) (0 = none; the reference's BMC "
                             f"holds out 0.2), got {self.validation}")

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
        """Random crop with zero padding, horizontal flip and brightness, one draw per image:
        `apply(x, draw(len(x), generator))`."""
        return self.apply(x, self.draw(len(x), generator))

    def draw(self, n: int, generator: torch.Generator | None) -> "AugmentDraws":
        """The random numbers of `n` images' augmentation, from the CPU generator (identical
        on every device), in this order: row offsets, column offsets, flips, then brightness
        factors when `brightness` > 0."""
        p = self.pad
        dy = torch.randint(0, 2 * p + 1, (n,), generator=generator)
        dx = torch.randint(0, 2 * p + 1, (n,), generator=generator)
        flip = torch.rand(n, generator=generator) < 0.5
        factors = self.brightness_factors(n, generator) if self.brightness > 0 else None
        return AugmentDraws(dy, dx, flip, factors)

    def apply(self, x: torch.Tensor, draws: "AugmentDraws") -> torch.Tensor:
        """(B, C, H, W) uint8 augmented with given draws: image i cropped at row dy[i], column
        dx[i] of its zero-padded copy, mirrored where flip[i], then brightened by factors[i]."""
        b, c, h, w = x.shape
        p = self.pad
        if len(draws.dy) != b:
            raise ValueError(f"{len(draws.dy)} augmentation draws for a batch of {b} images")
        xp = nn.functional.pad(x, (p, p, p, p))                                   # (B,C,H+2p,W+2p)
        dy, dx, flip = (draws.dy.to(x.device), draws.dx.to(x.device), draws.flip.to(x.device))
        cols = torch.arange(w, device=x.device).expand(b, w)
        cols = torch.where(flip[:, None], cols.flip(1), cols) + dx[:, None]          # (B,W)
        rows = dy[:, None] + torch.arange(h, device=x.device)                        # (B,H)
        flat = (rows[:, :, None] * (w + 2 * p) + cols[:, None, :]).reshape(b, 1, h * w)
        out = xp.reshape(b, c, -1).gather(2, flat.expand(b, c, h * w)).reshape(b, c, h, w)
        if draws.factors is not None:
            return brighten(out, draws.factors.to(x.device))
        return out

    def brightness_factors(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """(n,) factors uniform in [max(0, 1 - b), 1 + b] (torchvision ColorJitter)."""
        lo, hi = max(0.0, 1.0 - self.brightness), 1.0 + self.brightness
        return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)


@dataclass(frozen=True)
class AugmentDraws:
    """One batch's augmentation draws (`Pipeline.draw`), all on the CPU: per image the crop's
    row and column offsets in [0, 2 * pad] (B,) int64, the flip (B,) bool and the brightness
    factor (B,) float64 (None without brightness).  `reversed()`: the same draws for the batch
    in reverse order."""
    dy: torch.Tensor
    dx: torch.Tensor
    flip: torch.Tensor
    factors: torch.Tensor | None = None

    def reversed(self) -> "AugmentDraws":
        return AugmentDraws(self.dy.flip(0), self.dx.flip(0), self.flip.flip(0),
                            None if self.factors is None else self.factors.flip(0))


def brighten(x_uint8: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) uint8 images times (B,) factors, clamped to 255, truncated (PIL blend)."""
    scaled = x_uint8.float() * factors.float().view(-1, 1, 1, 1)
    return scaled.clamp_(0, 255).floor_().to(torch.uint8)


@dataclass(frozen=True)
class Mix:
    """One batch's mixup: the step's inputs are lam * x + (1 - lam) * x[perm]
    (stream_benchmark utils/train.py `mixup_data`)."""
    perm: torch.Tensor      # (B,) positions in the batch
    lam: float


def mixed_loss(loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
               y: torch.Tensor, idx: torch.Tensor, mix: Mix | None) -> torch.Tensor:
    """`loss_of(y, idx)` of a batch, or under mixup lam * loss_of(y, idx) + (1 - lam) *
    loss_of(y[perm], idx[perm]) (stream_benchmark models/bmc.py `_cons_forward`:
    lam * ce_loss_a + (1 - lam) * ce_loss_b)."""
    if mix is None:
        return loss_of(y, idx)
    return mix.lam * loss_of(y, idx) + (1 - mix.lam) * loss_of(y[mix.perm], idx[mix.perm])


def make_optimizer(params, cfg: LoopConfig) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("nothing to train: no parameter requires a gradient")
    foreach = dict(foreach=True) if params[0].is_cuda else {}
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **foreach)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **foreach)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                           weight_decay=cfg.weight_decay, **foreach)


def make_schedule(opt, cfg: LoopConfig):
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    if cfg.schedule == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(opt, list(cfg.milestones), gamma=cfg.gamma)
    if cfg.schedule == "plateau":   # stream_benchmark models/bmc.py consolidate: "min"
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, "min", factor=cfg.gamma, patience=cfg.patience, threshold=cfg.threshold)
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
            step: Callable[..., torch.Tensor],
            cfg: LoopConfig, desc: str = "train",
            modules: Iterable[nn.Module] = (), groups: torch.Tensor | None = None) -> dict:
        """Train `params` on (x uint8 (N,C,H,W), y (N,)) with `step`; returns loss history.

        `modules` are put in train mode for the phase (others keep their mode, so a
        frozen teacher stays in eval mode).  `step(xb, yb, idx)` returns the batch's loss;
        under mixup it is called as `step(xb, yb, idx, mix=Mix)`.  `groups` (N,): the groups
        the "balanced" sampler makes equally likely (default: the labels).
        """
        modules = list(modules)
        for m in modules:
            m.train()
        opt = make_optimizer(params, cfg)
        sched = make_schedule(opt, cfg)
        x, y = x.to(self.device), y.to(self.device).long()
        n_all = len(x)
        if n_all == 0:
            raise ValueError(f"{desc}: no training data")
        if cfg.mixup > 0 and "mix" not in inspect.signature(step).parameters:
            raise ValueError(f"{desc}: the phase asks for mixup {cfg.mixup} but this method's "
                             f"step takes no `mix` argument; set mixup=0 for this phase")
        # the held-out split: ceil(share * N) random positions (utils/bmc.py random_split),
        # at most N - 1 (a single sample trains, and the plateau then steps on its loss);
        # no random number is drawn without one, so other phases train as before
        n_val = min(math.ceil(n_all * cfg.validation), n_all - 1) if cfg.validation > 0 else 0
        held = train_pos = torch.arange(n_all, device=self.device)   # positions in x
        if n_val:
            order = torch.randperm(n_all, generator=self.generator).to(self.device)
            held, train_pos = order[:n_val], order[n_val:]
        n = len(train_pos)
        weights = None
        if cfg.sampler == "balanced":   # utils/bmc.py ImbalancedDatasetSampler: 1 / share
            g = (y if groups is None else groups.to(self.device)).long()[train_pos]
            _, inverse, counts = torch.unique(g, return_inverse=True, return_counts=True)
            weights = (1.0 / counts.double())[inverse].cpu()
        # the balanced sampler drops the last partial batch (drop_last=True), at least one step
        steps = max(1, n // cfg.batch_size) if weights is not None else math.ceil(n / cfg.batch_size)
        from clbudget.train.flops import fit_meter   # FLOPs of this call (flops.py)
        flops = fit_meter(self, desc, cfg.epochs, steps, n, cfg.batch_size)
        history, val_history = [], []
        bar = progress_bar(range(cfg.epochs), desc=desc, enabled=self.progress, unit="ep")
        for epoch in bar:
            if weights is None and not n_val:
                perm = torch.randperm(n, generator=self.generator).to(self.device)
            elif weights is None:
                perm = train_pos[torch.randperm(n, generator=self.generator).to(self.device)]
            else:
                draw = torch.multinomial(weights, n, replacement=True, generator=self.generator)
                perm = train_pos[draw.to(self.device)]
            total = torch.zeros((), device=self.device)
            try:
                for b in range(steps):
                    idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
                    xb = self.pipeline(x[idx], cfg.augment, self.generator)
                    mix = {}
                    if cfg.mixup > 0:   # utils/train.py mixup_data
                        lam = 1 - cfg.mixup * float(torch.rand((), generator=self.generator))
                        mperm = torch.randperm(len(idx), generator=self.generator).to(self.device)
                        xb = lam * xb + (1 - lam) * xb[mperm]
                        mix = {"mix": Mix(mperm, lam)}
                    with flops.measure(epoch, b):
                        with self.autocast():
                            loss = step(xb, y[idx], idx, **mix)
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
            mean_loss = float(total) / steps  # one sync per epoch
            if not math.isfinite(mean_loss):
                raise NonFiniteLoss(f"{desc}: loss became {mean_loss} in epoch {epoch + 1} "
                                    f"(lr {cfg.lr}, batch {cfg.batch_size})")
            if n_val:
                val_history.append(self.validation_loss(step, x, y, held, cfg, modules))
            if cfg.schedule == "plateau":
                sched.step(val_history[-1] if n_val else mean_loss)
            else:
                sched.step()
            history.append(mean_loss)
            self.images_processed += min(steps * cfg.batch_size, n) if weights is not None else n
            bar.set_postfix(loss=f"{mean_loss:.3f}")
        flops.close()
        out = {"loss": history, "epochs": cfg.epochs}
        if n_val:
            out["val_loss"] = val_history
        if cfg.schedule == "plateau":
            out["final_lr"] = opt.param_groups[0]["lr"]
        return out

    def validation_loss(self, step, x, y, held, cfg: LoopConfig, modules) -> float:
        """Mean loss of `step` over the held-out positions, the trained modules in eval mode
        (stream_benchmark models/bmc.py: `base_model.eval()`, no mixup), then train mode
        again."""
        for m in modules:
            m.eval()
        total = 0.0
        with torch.no_grad():
            for b in range(0, len(held), cfg.batch_size):
                idx = held[b:b + cfg.batch_size]
                with self.autocast():
                    total += float(step(self.pipeline(x[idx]), y[idx], idx)) * len(idx)
        for m in modules:
            m.train()
        return total / len(held)

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
