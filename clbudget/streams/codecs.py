"""Exemplar codecs as data transformations: how an image's pixels are encoded and decoded.

`parse_codec` names a codec ('raw' | 'png' | 'jpeg:Q' | 'down:S'); a `Codec` encodes
(n, C, H, W) uint8 images into byte arrays and back, and estimates encoded bytes per image.
It knows nothing of memories or budgets: the exemplar memory (methods/codecs.py `CodecMemory`)
stores its bytes, the allocator (budget/storage.py) sizes a memory by its bytes per image.
See methods/codecs.py for each codec's definition and references.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

ESTIMATE_SAMPLE = 256         # images of the first task encoded to estimate bytes per image

# bytes per image `clbudget budget allocate` assumes without --sample: measured by
# `python -m bench.codecs` on 2000 CIFAR-10 training images (an ImageFolder of the JPEGs, stored
# as JPEGs, so re-encoding at q75 is close to their own quantisation) with this venv's Pillow;
# a quality not listed takes the nearest one's.  Other data differ: pass --sample.
DEFAULT_BYTES_32x32x3 = {"png": 2315, 90: 1054, 75: 923, 50: 854, 25: 766}


@dataclass(frozen=True)
class Codec:
    name: str            # "raw", "jpeg", "png", "down"
    param: int = 0       # jpeg quality, down size

    @property
    def spec(self) -> str:
        return self.name if self.name in ("raw", "png") else f"{self.name}:{self.param}"

    @property
    def fixed_size(self) -> bool:
        return self.name in ("raw", "down")

    def fixed_bytes(self, image_shape) -> int:
        c, h, w = image_shape
        return c * h * w if self.name == "raw" else c * self.param * self.param

    def check(self, image_shape) -> None:
        if self.name == "raw":   # any shape, feature vectors (D,) included
            return
        if len(image_shape) != 3:
            raise ValueError(f"codec {self.spec} encodes images (C, H, W), the stream holds "
                             f"vectors of shape {tuple(image_shape)}; use --codec raw")
        c, h, w = image_shape
        if self.name == "down" and self.param > min(h, w):
            raise ValueError(f"codec down:{self.param} is larger than the images ({h}x{w}); "
                             f"use down:S with S <= {min(h, w)}, e.g. down:{min(h, w) // 2}")
        if self.name in ("jpeg", "png") and c not in (1, 3):
            raise ValueError(f"codec {self.spec} needs 1 or 3 channels, images have {c}; "
                             f"use raw or down:S")

    # --- encode / decode ------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> list[np.ndarray]:
        """(n, C, H, W) uint8 -> n uint8 byte arrays."""
        if self.name == "raw":
            a = x.cpu().numpy()
            return [a[i].reshape(-1).copy() for i in range(len(a))]
        if self.name == "down":
            small = F.interpolate(x.float(), size=(self.param, self.param), mode="area")
            a = small.round().clamp(0, 255).to(torch.uint8).cpu().numpy()
            return [a[i].reshape(-1).copy() for i in range(len(a))]
        from PIL import Image
        a = x.permute(0, 2, 3, 1).cpu().numpy()            # (n, H, W, C)
        out = []
        for img in a:
            pil = Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img)
            buf = io.BytesIO()
            if self.name == "jpeg":
                pil.save(buf, format="JPEG", quality=self.param)
            else:
                pil.save(buf, format="PNG")
            out.append(np.frombuffer(buf.getvalue(), dtype=np.uint8).copy())
        return out

    def decode(self, codes: list[np.ndarray], image_shape, device) -> torch.Tensor:
        """n byte arrays -> (n, C, H, W) uint8 on `device`."""
        c, h, w = image_shape
        if not codes:
            return torch.zeros((0, c, h, w), dtype=torch.uint8, device=device)
        if self.name == "raw":
            return torch.from_numpy(np.stack(codes).reshape(-1, c, h, w)).to(device)
        if self.name == "down":
            s = self.param
            small = torch.from_numpy(np.stack(codes).reshape(-1, c, s, s)).to(device)
            up = F.interpolate(small.float(), size=(h, w), mode="bilinear", align_corners=False)
            return up.round().clamp(0, 255).to(torch.uint8)
        from PIL import Image
        imgs = []
        for code in codes:
            a = np.asarray(Image.open(io.BytesIO(code.tobytes())))
            imgs.append(a[:, :, None] if a.ndim == 2 else a)
        x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()
        return x.to(device)

    def roundtrip(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x), tuple(x.shape[1:]), x.device)

    def expected_bytes(self, x: torch.Tensor) -> float:
        """Mean encoded bytes per image of `x` (uint8 (n, C, H, W))."""
        if self.fixed_size:
            return float(self.fixed_bytes(tuple(x.shape[1:])))
        return float(np.mean([len(c) for c in self.encode(x)]))


CODEC_NAMES = ("raw", "jpeg:Q", "png", "down:S")


def parse_codec(text: str) -> Codec:
    """'raw' | 'png' | 'jpeg:Q' (1 <= Q <= 95) | 'down:S' (S >= 1) -> Codec; one-line errors."""
    t = (text or "raw").strip().lower()
    if t in ("raw", "png"):
        return Codec(t)
    name, _, arg = t.partition(":")
    if name in ("jpeg", "down"):
        try:
            v = int(arg)
        except ValueError:
            v = None
        lo, hi = (1, 95) if name == "jpeg" else (1, 4096)
        if v is None or not lo <= v <= hi:
            example = "jpeg:75" if name == "jpeg" else "down:16"
            raise ValueError(f"codec {text!r}: {name} needs an integer {'quality' if name == 'jpeg' else 'size'} "
                             f"in {lo}..{hi}, e.g. {example}")
        return Codec(name, v)
    from clbudget.streams.catalog import nearest
    raise ValueError(f"unknown codec {text!r}; use one of {', '.join(CODEC_NAMES)} "
                     f"(nearest: {nearest(name, ('raw', 'jpeg', 'png', 'down'))})")


def default_bytes_per_image(codec: Codec, image_shape) -> float:
    """What `budget allocate` assumes without a data sample: exact for raw and down:S; for
    jpeg/png the CIFAR-10 table above scaled by pixels (a rough guess: pass --sample)."""
    if codec.fixed_size:
        return float(codec.fixed_bytes(image_shape))
    c, h, w = image_shape
    key = "png" if codec.name == "png" else min(DEFAULT_BYTES_32x32x3,
                                                key=lambda q: 1e9 if q == "png"
                                                else abs(q - codec.param))
    return DEFAULT_BYTES_32x32x3[key] * (c * h * w) / (3 * 32 * 32)


def estimate_bytes_per_image(codec: Codec, x: torch.Tensor, seed: int = 0) -> float:
    """Mean encoded bytes of up to ESTIMATE_SAMPLE images drawn (seeded) from `x`."""
    if codec.fixed_size or len(x) == 0:
        return float(codec.fixed_bytes(tuple(x.shape[1:])))
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(x), generator=g)[:ESTIMATE_SAMPLE]
    return codec.expected_bytes(torch.as_tensor(x)[pick])
