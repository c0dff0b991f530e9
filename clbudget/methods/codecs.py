"""Exemplar codecs: how an exemplar's pixels are stored, and a memory that holds encoded bytes.

Codecs (`parse_codec`):
- `raw`: uint8 pixels at the stream's shape (`memory.ExemplarMemory`, unchanged);
- `jpeg:Q`: JPEG at quality Q (1..95) by Pillow (4:2:0 chroma subsampling, Pillow's default);
  lossy, variable size (Wang et al., "Memory Replay with Data Compression", ICLR 2022);
- `png`: lossless PNG by Pillow (compress_level 6, Pillow's default); variable size;
- `down:S`: uint8 pixels at S x S (area-averaged down, `F.interpolate(mode="area")`), stored
  raw, upsampled back to the stream's H x W by bilinear interpolation (align_corners=False)
  at replay; fixed size C*S*S bytes (Luo et al., CIM, CVPR 2023, keep smaller images).

`CodecMemory` holds, for a class-balanced memory (herding or random, `rebalance`; replay,
iCaRL, WA, DER, MEMO, BMC) or a reservoir (`reservoir`, DER++):
- `codes`: one uint8 byte buffer of the budgeted exemplar bytes (ledger kind `exemplars`),
- `offsets` (int64) and `lengths` (int32), one per slot (kind `exemplar_aux`),
- `labels` (int16, as the raw memory), and per-slot float32 `logits` where the method keeps
  them (DER++'s logits, BMC's expert features).
Everything it holds is allocated once at full size, so the strict ledger (the bytes of these
tensors) equals the bytes held.  The bytes actually used by encoded images are
`used_bytes` (<= len(codes)), reported beside the ledger.  Filling is greedy and never
over: candidates are packed in rounds of rank (every class's 1st exemplar, then every
class's 2nd, ...); a class whose next exemplar does not fit in the bytes left stops there, so
every class keeps a prefix of its herding order and the buffer is never exceeded whatever the
images' real encoded sizes.  Old classes keep their encoded bytes as they are (never decoded
and re-encoded: no generation loss).

Replay decodes: `data()` decodes every held exemplar in one call into a fresh (n, C, H, W)
uint8 tensor on the memory's device.  Nothing decoded is kept by the memory: the tensor is a
transient of the task that asked for it (replay concatenates it with the task's data, iCaRL
computes its class means from it), like the task's own training images, and is not retained
across the task boundary.  Its bytes, n*C*H*W, are reported as `decoded_bytes` in the run's
cost figures.

The reservoir (DER++, `reservoir`): the slots are the allocation's `n_exemplars`, the bytes
its `exemplar_buffer_bytes`.  Slot decisions are exactly the raw reservoir's (Vitter's
algorithm, the same generator draws: `ExemplarMemory.reservoir_slots`); the un-augmented
uint8 images that got a slot are encoded in one call per offered batch and replace the slots'
codes.  A replaced code's bytes are freed; new codes are appended after the written region
and the held codes are compacted to the front (one gather) only when the tail is too short.
If a new code does not fit in the free bytes, held slots drawn uniformly at random (the run's
generator) are evicted, emptied (length 0, label -1), until it fits; an empty slot drawn later
is filled again if the bytes allow.  The buffer is never exceeded, whatever the real encoded
sizes.  Bias, honestly: far from the byte limit the buffer is Vitter's uniform sample of
everything offered; near it, an image whose code is larger needs more evictions to enter and
is itself evicted as often as any other, so images that compress worse are a little
under-represented (and the buffer holds fewer entries than slots).  `evicted_for_bytes`
counts the entries dropped for bytes (`codec_evicted_for_bytes` in the run's row).  `sample`
draws only held slots (the raw draws when none is empty); replay decodes only the sampled
entries, `images_at(i)`, one codec call per replay batch; `decoded_bytes()` is then the
largest such batch.
"""
from __future__ import annotations


import numpy as np
import torch

from clbudget.budget.costs import LABEL_DTYPE
from clbudget.methods.memory import ExemplarMemory, select_class
# the codecs themselves are data transformations (streams/codecs.py), named here too
from clbudget.streams.codecs import (CODEC_NAMES, ESTIMATE_SAMPLE, Codec,  # noqa: F401
                                     default_bytes_per_image, estimate_bytes_per_image,
                                     parse_codec)

OFFSET_DTYPE = torch.int64
LENGTH_DTYPE = torch.int32
SLOT_AUX_BYTES = 8 + 4        # one offset (int64) and one length (int32) per slot


class CodecMemory(ExemplarMemory):
    """An exemplar memory of encoded images (module docstring), class-balanced (`rebalance`)
    or a reservoir (`reservoir`).  An ExemplarMemory by type (the held-bytes walker and
    checkpoints treat it as one); of its parent's code it calls only the per-class selection
    (`select_class`) and the reservoir's slot draws (`reservoir_slots`).

    A slot is held when its length is > 0 (its label then >= 0); an empty slot has length 0
    and label -1.  Counters (plain ints, checkpointed with the memory): `count` slots filled
    so far (Vitter's fill pointer), `n_empty` of them emptied for bytes, `used_bytes` of the
    held codes, `end_bytes` the end of the written region of `codes` (held codes and holes
    left by replaced ones), `evicted_for_bytes` entries dropped because the bytes were short.
    """

    def __init__(self, capacity: int, buffer_bytes: int, image_shape, device, codec: Codec,
                 logits_dim: int = 0):
        if capacity < 0 or buffer_bytes < 0:
            raise ValueError(f"memory capacity and buffer must be >= 0, got {capacity} slots "
                             f"and {buffer_bytes} bytes")
        self.capacity = capacity
        self.codec_spec = codec.spec
        self.image_shape = tuple(image_shape)
        self.codes = torch.zeros((buffer_bytes,), dtype=torch.uint8, device=device)
        self.offsets = torch.zeros((capacity,), dtype=OFFSET_DTYPE, device=device)
        self.lengths = torch.zeros((capacity,), dtype=LENGTH_DTYPE, device=device)
        self.labels = torch.full((capacity,), -1, dtype=LABEL_DTYPE, device=device)
        self.logits = (torch.zeros((capacity, logits_dim), device=device) if logits_dim else None)
        self.count = 0
        self.n_empty = 0
        self.used_bytes = 0
        self.end_bytes = 0
        self.offered = 0
        self.evicted_for_bytes = 0
        self.largest_decode_bytes = 0   # of `images_at` batches (the reservoir's replay)

    @property
    def codec(self) -> Codec:
        return parse_codec(self.codec_spec)

    def __len__(self) -> int:
        return self.count - self.n_empty

    def held_slots(self) -> torch.Tensor:
        """(n,) int64 positions of the held slots, ascending, on the memory's device."""
        if self.n_empty == 0:
            return torch.arange(self.count, device=self.codes.device)
        return (self.lengths[:self.count] > 0).nonzero().flatten()

    def _codes(self, positions) -> list[np.ndarray]:
        """The code bytes of slots `positions` (a sequence or a tensor), as host arrays.  A
        memory on the CPU slices its buffer (views, copied per code: fastest there); on an
        accelerator `_gathered_codes` moves only those codes' bytes to the host."""
        if self.codes.device.type != "cpu":
            return self._gathered_codes(positions)
        pos = positions.tolist() if torch.is_tensor(positions) else positions
        buf = self.codes.numpy()
        off, ln = self.offsets.numpy(), self.lengths.numpy()
        return [buf[off[i]:off[i] + ln[i]].copy() for i in pos]

    def _gathered_codes(self, positions) -> list[np.ndarray]:
        """`_codes` by one gather of exactly those bytes on the memory's device and one copy to
        the host (never the whole buffer per replay batch)."""
        dev = self.codes.device
        pos = torch.as_tensor(positions if torch.is_tensor(positions) else list(positions),
                              dtype=torch.long).to(dev)
        if pos.numel() == 0:
            return []
        off, ln = self.offsets[pos], self.lengths[pos].long()
        starts = torch.cumsum(ln, 0) - ln                      # where each code starts in flat
        src = torch.repeat_interleave(off - starts, ln)
        flat = self.codes[src + torch.arange(len(src), device=dev)].cpu().numpy()
        return np.split(flat, (starts + ln).cpu().numpy()[:-1])

    def data(self):
        """(images (n,C,H,W) uint8, labels (n,) int64) of the held slots: decoded now, in one
        call, not kept."""
        held = self.held_slots()
        x = self.codec.decode(self._codes(held), self.image_shape, self.codes.device)
        return x, self.labels[held].long()

    def images_at(self, i: torch.Tensor) -> torch.Tensor:
        """uint8 (b, C, H, W) of slots `i` (held ones, from `sample`): those b codes decoded
        in one codec call, not kept."""
        x = self.codec.decode(self._codes(i), self.image_shape, self.codes.device)
        self.largest_decode_bytes = max(self.largest_decode_bytes, x.numel())
        return x

    def decoded_bytes(self) -> int:
        """Bytes of the largest transient decoded tensor: `data()`'s (every held exemplar,
        class-balanced replay) or, for the reservoir, the largest `images_at` batch."""
        c, h, w = self.image_shape
        if self.offered:
            return self.largest_decode_bytes
        return len(self) * c * h * w

    def sample(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """Indices of a uniform batch of held slots without replacement (the raw memory's
        draws when no slot is empty)."""
        if self.n_empty == 0:
            return super().sample(batch_size, generator)
        held = self.held_slots()
        return held[torch.randperm(len(held), generator=generator)[:batch_size].to(held.device)]

    def retained(self, logits_name: str = "memory.logits") -> list:
        items = [("memory.codes", "exemplars", self.codes),
                 ("memory.offsets", "exemplar_aux", self.offsets),
                 ("memory.lengths", "exemplar_aux", self.lengths),
                 ("memory.labels", "exemplar_aux", self.labels)]
        if self.logits is not None:
            items.append((logits_name, "exemplar_aux", self.logits))
        return items

    @torch.no_grad()
    def rebalance(self, x_new, y_new, seen_classes: int, select: str = "herding",
                  features=None, generator=None, aux_new=None) -> None:
        """Class-balanced update after a task (as `ExemplarMemory.rebalance`), then a greedy
        pack of the encoded candidates that never exceeds the byte buffer."""
        if self.capacity == 0:
            return
        quota = self.capacity // seen_classes
        per_class = []            # (label, [code arrays in selection order], [aux rows])
        held = self.held_slots()
        old_y = self.labels[held].long()
        old_codes = self._codes(held)
        aux = self.logits is not None and aux_new is not None
        for c in torch.unique(old_y).tolist():
            pos = (old_y == c).nonzero().flatten()[:quota].tolist()
            per_class.append((c, [old_codes[i] for i in pos],
                              [self.logits[held[i]] for i in pos] if aux else []))
        dev = self.codes.device
        y_new, x_new = y_new.to(dev), x_new.to(dev)
        for c in torch.unique(y_new).tolist():
            pick = select_class(x_new, (y_new == c).nonzero().flatten(), quota, select,
                                features, generator)
            per_class.append((c, self.codec.encode(x_new[pick]),
                              [aux_new[i].to(dev).float() for i in pick.tolist()] if aux else []))
        self._pack(per_class)

    def _pack(self, per_class) -> None:
        """Round-robin by rank; a class stops at its first exemplar that does not fit."""
        budget = self.codes.numel()
        chosen, used, open_ = [], 0, [True] * len(per_class)
        for rank in range(max((len(p[1]) for p in per_class), default=0)):
            for j, (c, codes, rows) in enumerate(per_class):
                if not open_[j] or rank >= len(codes) or len(chosen) >= self.capacity:
                    continue
                if used + len(codes[rank]) > budget:
                    open_[j] = False
                    continue
                chosen.append((c, codes[rank], rows[rank] if rows else None))
                used += len(codes[rank])
        chosen.sort(key=lambda t: t[0])    # grouped by class, each in selection order (stable)
        buf = np.zeros(budget, dtype=np.uint8)
        off = np.zeros(self.capacity, dtype=np.int64)
        ln = np.zeros(self.capacity, dtype=np.int32)
        pos = 0
        for i, (_, code, _) in enumerate(chosen):
            buf[pos:pos + len(code)] = code
            off[i], ln[i] = pos, len(code)
            pos += len(code)
        dev = self.codes.device
        self.codes.copy_(torch.from_numpy(buf).to(dev))
        self.offsets.copy_(torch.from_numpy(off).to(dev))
        self.lengths.copy_(torch.from_numpy(ln).to(dev))
        self.count, self.used_bytes, self.end_bytes, self.n_empty = len(chosen), pos, pos, 0
        self.labels.fill_(-1)
        if chosen:
            self.labels[:self.count] = torch.tensor([c for c, _, _ in chosen],
                                                    dtype=LABEL_DTYPE, device=dev)
            if self.logits is not None and chosen[0][2] is not None:
                self.logits[:self.count] = torch.stack([r for _, _, r in chosen])

    @torch.no_grad()
    def reservoir(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
                  logits: torch.Tensor | None = None) -> None:
        """Reservoir sampling into the byte buffer, never over it (module docstring).

        The slot decisions are the raw reservoir's (`reservoir_slots`, the same draws); the
        examples that got a slot are encoded in one call (un-augmented uint8, as offered).  A
        replaced slot's old bytes are freed first.  A new code that does not fit in the free
        bytes evicts held slots drawn uniformly at random (`generator`, after the batch's
        slot draws) until it fits; a code larger than the whole buffer leaves its slot
        empty.  Both count in `evicted_for_bytes`.  New codes are appended after
        `end_bytes`; the held codes are compacted to the front (one gather) only when the
        tail is too short.  Host work per batch: O(capacity) slot arrays, O(buffer) bytes
        when compacting; nothing is done for a batch that got no slot."""
        last = self.reservoir_slots(len(x), generator)
        if not last:
            return
        dev, budget = self.codes.device, self.codes.numel()
        slots = list(last)
        src = torch.tensor(list(last.values()), device=x.device)
        new = self.codec.encode(x[src])                      # one call, the slotted examples
        ln = self.lengths.cpu().numpy().astype(np.int64)     # (capacity,) 0 = empty
        off = self.offsets.cpu().numpy().copy()
        old_held = ln > 0
        used = self.used_bytes - int(ln[slots].sum())        # the replaced codes freed
        ln[slots] = 0
        written: dict[int, int] = {}                          # slot -> index into `new`
        held = None            # the held slots, listed at the batch's first eviction
        for k, (slot, code) in enumerate(zip(slots, new)):
            need = len(code)
            if need > budget:                                 # can never fit: slot stays empty
                self.evicted_for_bytes += 1
                continue
            while budget - used < need:                       # evict held slots at random
                if held is None:
                    held = np.flatnonzero(ln).tolist()
                j = int(torch.randint(0, len(held), (1,), generator=generator))
                victim = held[j]
                held[j] = held[-1]                            # swap-remove: O(1) per eviction
                held.pop()
                used -= int(ln[victim])
                ln[victim] = 0
                written.pop(victim, None)
                self.evicted_for_bytes += 1
            ln[slot] = need
            used += need
            written[slot] = k
            if held is not None:
                held.append(slot)
        kept = np.flatnonzero(old_held & (ln > 0) & ~np.isin(np.arange(len(ln)), slots))
        add = sum(len(new[k]) for k in written.values())
        if self.end_bytes + add > budget:                     # compact the kept codes
            order = kept[np.argsort(off[kept], kind="stable")]
            lens = ln[order]
            front = np.cumsum(lens) - lens
            gather = np.repeat(off[order] - front, lens) + np.arange(int(lens.sum()))
            self.codes[:len(gather)] = self.codes[torch.from_numpy(gather).to(dev)]
            off[order] = front
            self.end_bytes = int(lens.sum())
        if written:
            ws = list(written)
            blob = np.concatenate([new[written[s]] for s in ws])
            starts = self.end_bytes + np.cumsum([0] + [len(new[written[s]]) for s in ws[:-1]])
            off[ws] = starts
            self.codes[self.end_bytes:self.end_bytes + len(blob)] = torch.from_numpy(blob).to(dev)
            self.end_bytes += len(blob)
            dst = torch.tensor(ws, device=dev)
            pick = src[torch.tensor([written[s] for s in ws], device=src.device)]
            self.labels[dst] = y[pick].to(dev, LABEL_DTYPE)
            if logits is not None and self.logits is not None:
                self.logits[dst] = logits[pick].to(dev, torch.float32)
        off[ln == 0] = 0
        self.labels[torch.from_numpy(ln == 0).to(dev)] = -1
        self.offsets.copy_(torch.from_numpy(off).to(dev))
        self.lengths.copy_(torch.from_numpy(ln.astype(np.int32)).to(dev))
        self.used_bytes = used
        self.n_empty = int((ln[:self.count] == 0).sum())
