"""Exemplar memory: uint8 images at the stream's shape (a feature stream's float vectors at
their dtype), int16 labels, optional logits.

Capacity is fixed by the allocator and the tensors are allocated once at full
capacity, so the ledger (the bytes held) equals the allocation from the first
task on, and shapes never change (no recompiles).  Two filling disciplines:
- class-balanced (iCaRL and most CIL methods): after each task every seen class
  keeps `capacity // seen` exemplars, chosen by herding or at random; old
  classes keep a prefix of their (herding-ordered) selection;
- reservoir (DER++): every training example offered has the same chance to be
  in the buffer.
"""
from __future__ import annotations

from typing import Callable

import torch

from clbudget.budget.costs import LABEL_DTYPE


def herding(features: torch.Tensor, m: int) -> torch.Tensor:
    """iCaRL herding: indices of m samples whose running mean best tracks the class mean.

    features: (n, d), L2-normalised rows.  Returns (min(m, n),) distinct indices, in
    selection order (so a prefix is the best smaller selection).
    """
    n = features.shape[0]
    m = min(m, n)
    mu = features.mean(0)                                   # (d,)
    chosen = torch.zeros(n, dtype=torch.bool, device=features.device)
    running = torch.zeros_like(mu)
    order = []
    for k in range(1, m + 1):
        cand = (mu - (running + features) / k).norm(dim=1)  # (n,)
        cand[chosen] = float("inf")
        i = int(cand.argmin())
        order.append(i)
        chosen[i] = True
        running += features[i]
    return torch.tensor(order, dtype=torch.long, device=features.device)


def select_class(x: torch.Tensor, pos: torch.Tensor, quota: int, select: str,
                 features: Callable[[torch.Tensor], torch.Tensor] | None,
                 generator: torch.Generator | None) -> torch.Tensor:
    """Positions (of `pos`, one class's images in `x`) of the `quota` exemplars to keep, in
    selection order: herding on L2-normalised `features(x[pos])`, or uniformly at random."""
    if select == "herding":
        if features is None:
            raise ValueError("herding needs a feature function")
        f = features(x[pos]).float()
        f = f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)
        pick = pos[herding(f, quota)]
    elif select == "random":
        pick = pos[torch.randperm(len(pos), generator=generator)[:quota].to(pos.device)]
    else:
        raise ValueError(f"unknown selection {select!r}; use 'herding' or 'random'")
    return pick


class ExemplarMemory:
    def __init__(self, capacity: int, image_shape, device, logits_dim: int = 0,
                 dtype: torch.dtype = torch.uint8):
        if capacity < 0:
            raise ValueError(f"memory capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        # uint8 pixels, or a feature stream's vectors at their stored dtype (float32 / float16)
        self.images = torch.zeros((capacity, *image_shape), dtype=dtype, device=device)
        self.labels = torch.full((capacity,), -1, dtype=LABEL_DTYPE, device=device)
        self.logits = (torch.zeros((capacity, logits_dim), device=device) if logits_dim else None)
        self.count = 0
        self.offered = 0   # examples offered to the reservoir so far

    def __len__(self) -> int:
        return self.count

    def data(self):
        """(images (n,C,H,W) uint8, labels (n,) int64) currently held."""
        return self.images[:self.count], self.labels[:self.count].long()

    def images_at(self, i: torch.Tensor) -> torch.Tensor:
        """uint8 (b, C, H, W) images of slots `i` (a replay batch), on the memory's device."""
        return self.images[i]

    def retained(self, logits_name: str = "memory.logits") -> list:
        """Ledger items of what the memory holds; `logits_name` names the per-slot float32
        rows (DER++'s logits; BMC calls its expert features `memory.features`)."""
        items = [("memory.images", "exemplars", self.images),
                 ("memory.labels", "exemplar_aux", self.labels)]
        if self.logits is not None:
            items.append((logits_name, "exemplar_aux", self.logits))
        return items

    def sample(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """Indices of a uniform batch without replacement (all of them if the memory holds
        fewer than `batch_size`)."""
        return torch.randperm(self.count, generator=generator)[:batch_size].to(self.labels.device)

    @torch.no_grad()
    def rebalance(self, x_new: torch.Tensor, y_new: torch.Tensor, seen_classes: int,
                  select: str = "herding",
                  features: Callable[[torch.Tensor], torch.Tensor] | None = None,
                  generator: torch.Generator | None = None,
                  aux_new: torch.Tensor | None = None) -> None:
        """Class-balanced update after a task: capacity // seen per class.

        x_new uint8 (N,C,H,W), y_new (N,) labels of the new classes.  Old classes keep
        the first `quota` of their stored selection; new classes are selected by
        herding on L2-normalised `features(x)` or uniformly at random.  `aux_new`
        (N, logits_dim): per-sample targets kept beside the chosen new samples (BMC's
        expert features); old rows keep theirs.
        """
        if self.capacity == 0:
            return
        quota = self.capacity // seen_classes
        keep_x, keep_y, keep_a = [], [], []
        old_x, old_y = self.data()
        aux = self.logits is not None and aux_new is not None
        for c in torch.unique(old_y).tolist():
            pos = (old_y == c).nonzero().flatten()[:quota]
            keep_x.append(old_x[pos]); keep_y.append(old_y[pos])
            if aux:
                keep_a.append(self.logits[:self.count][pos])
        y_new = y_new.to(self.images.device)
        x_new = x_new.to(self.images.device)
        for c in torch.unique(y_new).tolist():
            pick = select_class(x_new, (y_new == c).nonzero().flatten(), quota, select,
                                features, generator)
            keep_x.append(x_new[pick]); keep_y.append(y_new[pick])
            if aux:
                keep_a.append(aux_new.to(self.logits.device)[pick].float())
        xs, ys = torch.cat(keep_x), torch.cat(keep_y)
        self.count = len(xs)
        self.images[:self.count] = xs
        if aux:
            self.logits[:self.count] = torch.cat(keep_a)
        self.labels[:self.count] = ys.to(LABEL_DTYPE)
        self.labels[self.count:] = -1

    def reservoir_slots(self, n: int, generator: torch.Generator) -> dict[int, int]:
        """Vitter's algorithm R for `n` offered examples: while fewer than `capacity` slots
        have been filled take the next one, else draw r in [0, offered] and replace slot r if
        r < capacity.  Updates `count` and `offered`; returns {slot: the batch position of
        the last example written to it}.  One draw per example once full, in batch order:
        the raw and the encoded reservoir (methods/codecs.py) make the same decisions."""
        slots = []
        for _ in range(n):
            if self.count < self.capacity:
                slot = self.count
                self.count += 1
            else:
                r = int(torch.randint(0, self.offered + 1, (1,), generator=generator))
                slot = r if r < self.capacity else -1
            self.offered += 1
            slots.append(slot)
        return {slot: i for i, slot in enumerate(slots) if slot >= 0}   # slot -> last example

    @torch.no_grad()
    def reservoir(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
                  logits: torch.Tensor | None = None) -> None:
        """Reservoir sampling (Vitter 1985) of a batch, as in DER/DER++ (Buzzega et al. 2020).

        Slots are drawn example by example (on the CPU generator, `reservoir_slots`), then
        written in one indexed copy per tensor: no device sync per example.  A slot drawn
        twice in the batch keeps the later example, as writing one by one would."""
        last = self.reservoir_slots(len(x), generator)
        if not last:
            return
        dst = torch.tensor(list(last), device=self.images.device)
        src = torch.tensor(list(last.values()), device=x.device)
        self.images[dst] = x[src].to(self.images.device)
        self.labels[dst] = y[src].to(self.labels.device, LABEL_DTYPE)
        if logits is not None and self.logits is not None:
            self.logits[dst] = logits[src].to(self.logits.device, torch.float32)
