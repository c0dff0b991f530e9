"""Exemplar codecs: how an exemplar's pixels are stored, and a memory that holds encoded bytes.

Codecs (`parse_codec`):
- `raw`: uint8 pixels at the stream's shape (`memory.ExemplarMemory`, unchanged);
- `jpeg:Q`: JPEG at quality Q (1..95) by Pillow (4:2:0 chroma subsampling, Pillow's default);
  lossy, variable size (Wang et al., "Memory Replay with Data Compression", ICLR 2022);
- `png`: lossless PNG by Pillow (compress_level 6, Pillow's default); variable size;
- `down:S`: uint8 pixels at S x S (area-averaged down, `F.interpolate(mode="area")`), stored
  raw, upsampled back to the stream's H x W by bilinear interpolation (align_corners=False)
  at replay; fixed size C*S*S bytes (Luo et al., CIM, CVPR 2023, keep smaller images).

`CodecMemory` holds, for a class-balanced memory (herding or random, `rebalance`):
- `codes`: one uint8 byte buffer of the budgeted exemplar bytes (ledger kind `exemplars`),
- `offsets` (int64) and `lengths` (int32), one per slot (kind `exemplar_aux`),
- `labels` (int16, as the raw memory).
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
cost figures.  The reservoir (DER++) writes single slots in place, which a variable-size
buffer cannot do without compaction: `reservoir` refuses lossy/variable codecs (use raw).
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
    """A class-balanced exemplar memory of encoded images (module docstring).  An
    ExemplarMemory by type (the held-bytes walker and checkpoints treat it as one); it calls
    none of its parent's code but the per-class selection (`select_class`)."""

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
        self.used_bytes = 0
        self.offered = 0

    @property
    def codec(self) -> Codec:
        return parse_codec(self.codec_spec)

    def __len__(self) -> int:
        return self.count

    def _codes(self, positions) -> list[np.ndarray]:
        buf = self.codes.cpu().numpy()
        off, ln = self.offsets.cpu().numpy(), self.lengths.cpu().numpy()
        return [buf[off[i]:off[i] + ln[i]].copy() for i in positions]

    def data(self):
        """(images (n,C,H,W) uint8, labels (n,) int64): decoded now, in one call, not kept."""
        x = self.codec.decode(self._codes(range(self.count)), self.image_shape,
                              self.codes.device)
        return x, self.labels[:self.count].long()

    def decoded_bytes(self) -> int:
        """Bytes of the transient decoded tensor `data()` returns."""
        c, h, w = self.image_shape
        return self.count * c * h * w

    def retained(self) -> list:
        items = [("memory.codes", "exemplars", self.codes),
                 ("memory.offsets", "exemplar_aux", self.offsets),
                 ("memory.lengths", "exemplar_aux", self.lengths),
                 ("memory.labels", "exemplar_aux", self.labels)]
        if self.logits is not None:
            items.append(("memory.logits", "exemplar_aux", self.logits))
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
        old_y = self.labels[:self.count].long()
        old_codes = self._codes(range(self.count))
        aux = self.logits is not None and aux_new is not None
        for c in torch.unique(old_y).tolist():
            pos = (old_y == c).nonzero().flatten()[:quota].tolist()
            per_class.append((c, [old_codes[i] for i in pos],
                              [self.logits[i] for i in pos] if aux else []))
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
        self.count, self.used_bytes = len(chosen), pos
        self.labels.fill_(-1)
        if chosen:
            self.labels[:self.count] = torch.tensor([c for c, _, _ in chosen],
                                                    dtype=LABEL_DTYPE, device=dev)
            if self.logits is not None and chosen[0][2] is not None:
                self.logits[:self.count] = torch.stack([r for _, _, r in chosen])

    def reservoir(self, *args, **kwargs) -> None:
        raise ValueError(f"codec {self.codec_spec}: the reservoir (DER++) writes single slots in "
                         f"place, which an encoded memory does not support; use --codec raw")
