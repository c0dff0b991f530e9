"""Bytes of what is stored: tensors, modules, exemplars, masks; budget strings.

Pure functions of shapes, dtypes and counts.  Integers of bytes everywhere;
MiB/MB only when printing (`format_bytes`).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, ROUND_FLOOR
from typing import Callable, Iterable

import torch
from torch import nn

CONVENTIONS = ("strict", "memo")

UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9,
         "kib": 2**10, "mib": 2**20, "gib": 2**30}

BUDGET_FORMS = ("plain bytes (123456 or 123456B), decimal units (8MB, 1.5GB, 500kB), "
                "binary units (7.63MiB, 1.5GiB, 512KiB), exemplars of the stream's image "
                "shape (2000ex), model equivalents (1xresnet32, 2.5xresnet20), and sums of these "
                "(1xresnet32+2000ex)")


def check_convention(convention: str) -> str:
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; use one of {', '.join(CONVENTIONS)}")
    return convention


def dtype_bytes(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def tensor_bytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def tensors_bytes(tensors: Iterable[torch.Tensor]) -> int:
    return sum(tensor_bytes(t) for t in tensors)


@dataclass(frozen=True)
class ModuleBytes:
    params: int      # number of parameters
    param_bytes: int
    buffer_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.param_bytes + self.buffer_bytes


def module_bytes(module: nn.Module) -> ModuleBytes:
    """Parameters and buffers of a module at their stored dtypes, kept apart."""
    params = list(module.parameters())
    return ModuleBytes(sum(p.numel() for p in params), tensors_bytes(params),
                       tensors_bytes(module.buffers()))


def state_dict_bytes(module: nn.Module) -> int:
    """What `torch.save(module.state_dict())` stores, tensor payload only."""
    return tensors_bytes(v for v in module.state_dict().values() if torch.is_tensor(v))


def memo_bytes(feature_extractor: nn.Module) -> int:
    """MEMO convention: feature-extractor parameters x 4 bytes (no head, no BN statistics)."""
    return 4 * sum(p.numel() for p in feature_extractor.parameters())


def image_bytes(image_shape, dtype: torch.dtype = torch.uint8) -> int:
    return math.prod(int(d) for d in image_shape) * dtype_bytes(dtype)


def exemplar_bytes(n_exemplars: int, image_shape, *, dtype: torch.dtype = torch.uint8,
                   label_dtype: torch.dtype | None = None, logits_dim: int = 0,
                   logit_dtype: torch.dtype = torch.float32) -> int:
    """Bytes of n stored exemplars: pixels, plus labels and per-exemplar logits if kept."""
    per = image_bytes(image_shape, dtype)
    if label_dtype is not None:
        per += dtype_bytes(label_dtype)
    per += logits_dim * dtype_bytes(logit_dtype)
    return n_exemplars * per


def mask_bytes(n_weights: int, n_tasks: int, packing: str = "byte") -> int:
    """Bytes to record which task owns each weight.

    "byte": one uint8 task index per weight (what MIND's reference code stores);
    "bits": ceil(log2(T)) bits per weight, packed.
    """
    if packing == "byte":
        return n_weights
    if packing == "bits":
        bits = max(1, math.ceil(math.log2(max(n_tasks, 2))))
        return math.ceil(n_weights * bits / 8)
    raise ValueError(f"unknown mask packing {packing!r}; use 'byte' or 'bits'")


def model_to_exemplars(model_bytes: int, image_shape) -> float:
    """How many uint8 exemplars of this shape a model's bytes would buy."""
    return model_bytes / image_bytes(image_shape)


def exemplars_to_model(n_exemplars: float, image_shape) -> int:
    return round(n_exemplars * image_bytes(image_shape))


def parse_budget(text, *, image_shape=None,
                 model_bytes: Callable[[str], int] | None = None,
                 dtype: torch.dtype = torch.uint8) -> int:
    """Parse a budget into an integer of bytes (rounded down).

    `image_shape` resolves "2000ex" (exemplars stored at `dtype`: uint8 pixels, or a feature
    stream's float32 vectors); `model_bytes(name)` resolves "1xresnet32".
    """
    if image_shape is not None and dtype != torch.uint8:   # one exemplar's bytes, as uint8
        image_shape = (image_bytes(image_shape, dtype),)
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        terms = str(text).split("+")
        if not all(t.strip() for t in terms):
            raise ValueError(f"cannot parse budget {text!r}; accepted forms: {BUDGET_FORMS}")
        value = sum(_parse_budget_text(t.strip(), image_shape, model_bytes) for t in terms)
    if value <= 0:
        raise ValueError(f"budget must be positive, got {text!r} ({value} bytes); "
                         f"accepted forms: {BUDGET_FORMS}")
    return value


_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"


def _decimal(s: str) -> Decimal:
    try:
        return Decimal(s)
    except InvalidOperation as e:  # pragma: no cover - the regexes admit only numbers
        raise ValueError(f"not a number: {s!r}") from e


def _parse_budget_text(text: str, image_shape, model_bytes) -> int:
    if m := re.fullmatch(_NUMBER + r"\s*([kKmMgG]i?[bB]|[bB])?", text):
        unit = UNITS[(m.group(2) or "b").lower()]
        return int((_decimal(m.group(1)) * unit).to_integral_value(ROUND_FLOOR))
    if m := re.fullmatch(_NUMBER + r"\s*ex", text, flags=re.IGNORECASE):
        if image_shape is None:
            raise ValueError(f"budget {text!r} counts exemplars: give the image shape "
                             f"(--dataset or --image-shape)")
        n = _decimal(m.group(1))
        return int((n * image_bytes(image_shape)).to_integral_value(ROUND_FLOOR))
    if m := re.fullmatch(_NUMBER + r"\s*x\s*([A-Za-z][\w-]*)", text):
        if model_bytes is None:
            raise ValueError(f"budget {text!r} counts model equivalents: no model sizes given")
        return int((_decimal(m.group(1)) * model_bytes(m.group(2))).to_integral_value(ROUND_FLOOR))
    raise ValueError(f"cannot parse budget {text!r}; accepted forms: {BUDGET_FORMS}")


def format_bytes(n_bytes: int) -> str:
    """Unambiguous: binary units with their IEC name, exact bytes beside."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n_bytes) >= size:
            return f"{n_bytes / size:.2f} {unit} ({n_bytes:,} B)"
    return f"{n_bytes:,} B"
