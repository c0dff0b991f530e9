"""Kept networks stored at a lower dtype, upcast for compute (budget/storage.py counts them).

`stored_copy(net, "fp16")` is `nets.frozen_copy` with every floating parameter and buffer cast
to float16 (bfloat16 for "bf16"); integer buffers (BN's num_batches_tracked) are kept.  The
strict ledger counts the copy's tensors at their dtype, so it costs about half.
`upcast_forward(module, x)` runs the module with float32 copies of its floating tensors
(`torch.func.functional_call`): the arithmetic is float32 as for an fp32 teacher, only the
stored values are rounded.  The float32 copies are transient (made per call, never kept).
"""
from __future__ import annotations

import torch
from torch import nn

from clbudget.methods.nets import frozen_copy


def stored_copy(module: nn.Module, store_dtype: str = "fp32") -> nn.Module:
    return store_as(frozen_copy(module), store_dtype)


def store_as(teacher: nn.Module, store_dtype: str = "fp32") -> nn.Module:
    """A frozen copy cast in place to `store_dtype` (fp32: unchanged)."""
    from clbudget.budget.storage import check_store_dtype
    dtype = check_store_dtype(store_dtype)
    if dtype != torch.float32:
        teacher.to(dtype)          # floating parameters and buffers only
    return teacher


def stored_dtype(module: nn.Module) -> torch.dtype:
    return next((p.dtype for p in module.parameters()), torch.float32)


def upcast_forward(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if stored_dtype(module) == torch.float32:
        return module(x)
    state = {k: (v.float() if v.is_floating_point() else v)
             for k, v in module.state_dict(keep_vars=False).items()}
    return torch.func.functional_call(module, state, (x,))
