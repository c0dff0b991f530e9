"""Frozen networks stored at a lower precision, computed in float32.

A kept network that never trains again (a distillation teacher, DER's old backbones, MEMO's old
specialized blocks, CLR's frozen backbone) can be held in fewer bytes.  `store_as(module, name)`
rewrites a *frozen* module in place (eval mode, no gradients); its forward is unchanged, the
arithmetic is float32, only the stored values are rounded:

- "fp32": unchanged;
- "fp16" / "bf16": every floating parameter and buffer (BN running statistics included) held at
  2 bytes; `num_batches_tracked` (int64) kept;
- "int8": weight-only, symmetric, per output channel: every floating parameter of rank >= 2
  (conv and linear weights) held as int8 codes q in [-127, 127] with one float32 scale per output
  channel, s = max|w| / 127 over the channel (w ~ q * s, error <= s / 2); biases, BN affine and BN
  statistics stay float32 (they are few, and BN statistics do not quantize well).

Mechanism: `torch.nn.utils.parametrize`.  The stored tensors are the parametrization's
`original*` tensors (parameters stay parameters, buffers stay buffers, so the ledger's
params/buffers split still holds); reading `module.weight` computes the float32 value, a
transient of the forward pass that is never kept.  The ledger therefore counts the stored
bytes (`module_bytes`), and the allocator prices the same rule on a meta-device copy
(`stored_bytes`), so prediction and holding agree by construction.  A stored module deep-copies,
and checkpoints through methods/state.py (which re-creates the parametrized classes).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

STORE_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16,
                "int8": torch.int8}
INT8_MAX = 127


class Upcast(nn.Module):
    """Held at a 16-bit float dtype, read as float32."""

    def __init__(self, dtype: torch.dtype):
        super().__init__()
        self.dtype = dtype

    def forward(self, held: torch.Tensor) -> torch.Tensor:
        return held.float()

    def right_inverse(self, value: torch.Tensor):
        return (value.to(self.dtype),)


class Int8PerChannel(nn.Module):
    """Held as int8 codes and a float32 scale per output channel (dim 0), read as q * s."""

    def forward(self, codes: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return codes.float() * scale

    def right_inverse(self, value: torch.Tensor):
        w = value.detach().float()
        amax = w.abs().flatten(1).amax(1).clamp_min(torch.finfo(torch.float32).tiny)
        scale = (amax / INT8_MAX).view(-1, *([1] * (w.dim() - 1)))
        codes = torch.round(w / scale).clamp_(-INT8_MAX, INT8_MAX).to(torch.int8)
        return codes, scale


def check_store_dtype(name: str) -> torch.dtype:
    if name not in STORE_DTYPES:
        from clbudget.streams.catalog import nearest
        raise ValueError(f"unknown store dtype {name!r}; use one of {', '.join(STORE_DTYPES)} "
                         f"(nearest: {nearest(name, STORE_DTYPES)})")
    return STORE_DTYPES[name]


def _stored_tensors(module: nn.Module, name: str):
    """(leaf module, tensor name, parametrization) for each tensor `name` rewrites."""
    out = []
    for leaf in list(module.modules()):
        if parametrize.is_parametrized(leaf) or isinstance(leaf, (Upcast, Int8PerChannel)):
            continue
        tensors = list(leaf.named_parameters(recurse=False))
        if name != "int8":
            tensors += list(leaf.named_buffers(recurse=False))
        for tname, t in tensors:
            if t is None or not t.is_floating_point():
                continue
            if name == "int8":
                if t.dim() >= 2:
                    out.append((leaf, tname, Int8PerChannel()))
            else:
                out.append((leaf, tname, Upcast(STORE_DTYPES[name])))
    return out


def store_as(module: nn.Module, name: str = "fp32") -> nn.Module:
    """`module`, frozen (eval, no gradients), its tensors stored as `name` (module docstring).
    In place; returns the module.  A module already stored as `name` is left as it is; one
    stored as another dtype is refused."""
    check_store_dtype(name)
    module.eval().requires_grad_(False)
    if is_stored(module) and stored_dtype_name(module) != name:
        raise ValueError(f"this module is already stored as {stored_dtype_name(module)}; it "
                         f"cannot be stored again as {name} (rounding twice)")
    if name == "fp32" or is_stored(module):
        return module
    for leaf, tname, rule in _stored_tensors(module, name):
        parametrize.register_parametrization(leaf, tname, rule)
    module.requires_grad_(False)          # the new `original*` tensors too
    return module


def is_stored(module: nn.Module) -> bool:
    return any(parametrize.is_parametrized(m) for m in module.modules())


def stored_dtype_name(module: nn.Module) -> str:
    """The store dtype a module was stored at ("fp32" when not stored)."""
    for m in module.modules():
        if isinstance(m, Int8PerChannel):
            return "int8"
        if isinstance(m, Upcast):
            return {v: k for k, v in STORE_DTYPES.items()}[m.dtype]
    return "fp32"


def unstored_copy(module: nn.Module) -> nn.Module:
    """A plain float32 copy of a (possibly stored) module: the values it computes with, as
    ordinary tensors (CLR's per-task BN copies of its stored backbone's BN).  Built afresh, not
    by `remove_parametrizations`: a deep copy shares torch's generated class with the
    original, and removing from one would strip the other's properties."""
    import copy
    return _unstored(copy.deepcopy(module))


def _unstored(m: nn.Module) -> nn.Module:
    for name, child in list(m._modules.items()):
        if not (name == "parametrizations" and parametrize.is_parametrized(m)):
            m._modules[name] = _unstored(child)
    if not parametrize.is_parametrized(m):
        return m
    cls = type(m).__bases__[0]
    plain = cls.__new__(cls)
    plain.__dict__.update(m.__dict__)
    plain._parameters, plain._buffers = dict(m._parameters), dict(m._buffers)
    plain._modules = {k: v for k, v in m._modules.items() if k != "parametrizations"}
    for tname, rules in m.parametrizations.items():
        value = getattr(m, tname).detach().clone()
        if "original0" in rules._parameters:
            plain._parameters[tname] = nn.Parameter(value, requires_grad=False)
        else:
            plain._buffers[tname] = value
    return plain


def logical_numel(module: nn.Module) -> int:
    """Parameters a module computes with (an int8 weight counts once, its scales not)."""
    return sum(p.numel() for n, p in module.named_parameters()
               if not (".parametrizations." in f".{n}" and n.endswith("original1")))


def stored_bytes(module: nn.Module, name: str) -> tuple[int, int]:
    """(parameter bytes, buffer bytes) of `module` once stored as `name`, computed on a
    meta-device copy (no data touched): what the ledger will count."""
    import copy
    with torch.device("meta"):
        probe = copy.deepcopy(module).to("meta")
    store_as(probe, name)
    return (sum(p.numel() * p.element_size() for p in probe.parameters()),
            sum(b.numel() * b.element_size() for b in probe.buffers()))
