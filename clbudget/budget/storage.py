"""Budget choices of how things are stored: exemplar codecs and the dtype of kept networks.

`allocate_stored` is `allocator.allocate` with two more choices:
- `codec` (methods/codecs.py): the exemplars' pixels are replaced in the ledger by one byte
  buffer, plus an int64 offset and an int32 length per slot (strict convention).  The count is
  the budget left by the model divided by the bytes of one exemplar at `bytes_per_image` (the
  codec's expected encoded bytes, measured by the run on a seeded sample of up to 256 images
  of the *first task's* training data: the only data a run has when it allocates; a later
  task's images are not looked at before their task) plus its labels/slot arrays; the byte
  buffer then takes every byte the model and the slot arrays leave.  The run fills it greedily
  with the real encoded sizes and never over (`CodecMemory._pack`): with images that compress
  worse than the sample, fewer exemplars are held, never more bytes.
- `store_dtype` ("fp32" | "fp16" | "bf16"): the frozen teacher (kind `old_model`: LwF, iCaRL,
  WA, which keep it through `finetune.KeepsTeacher`) is stored at that dtype: its floating
  tensors at 2 bytes, BN's int64 `num_batches_tracked` unchanged; compute upcasts it to
  float32 (methods/storage.py).  The bytes saved go to exemplars.  DER's old backbones, MEMO's
  specialized blocks and CLR's backbone are not (yet) storable at a lower dtype: refused.

The joint upper bound and raw / fp32 are `allocate` unchanged.
"""
from __future__ import annotations

import dataclasses

import torch

from clbudget.budget.accountant import format_bytes
from clbudget.budget.allocator import Allocation, AllocatorConfig, BudgetError, allocate
from clbudget.budget.costs import StreamShape, cost_model
from clbudget.budget.ledger import Ledger, LedgerItem

STORE_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
TEACHER_METHODS = ("lwf", "icarl", "wa")   # keep a frozen teacher through KeepsTeacher
# memories read through `memory.data()` / `memory.images_at()` / `memory.retained()`: the
# class-balanced ones (BMC's with its expert features) and DER++'s reservoir (CodecMemory.reservoir)
CODEC_METHODS = ("replay", "icarl", "wa", "der", "memo", "memo2", "derpp", "bmc")
OFFSET_BYTES, LENGTH_BYTES = 8, 4          # codecs.OFFSET_DTYPE int64, LENGTH_DTYPE int32


def check_store_dtype(name: str, method: str | None = None) -> torch.dtype:
    if name not in STORE_DTYPES:
        from clbudget.streams.catalog import nearest
        raise ValueError(f"unknown store dtype {name!r}; use one of {', '.join(STORE_DTYPES)} "
                         f"(nearest: {nearest(name, STORE_DTYPES)})")
    if name != "fp32" and method is not None and method not in TEACHER_METHODS:
        raise ValueError(f"--store-dtype {name} applies to the frozen teachers of "
                         f"{', '.join(TEACHER_METHODS)}; {method} keeps none it can store lower "
                         f"(use --store-dtype fp32)")
    return STORE_DTYPES[name]


def stored_module_bytes(fp32_bytes: int, bn_layers: int, store_dtype: str) -> int:
    """Bytes of a Classifier copy at `store_dtype`: floating tensors scaled, the int64
    num_batches_tracked of each BN layer kept."""
    if store_dtype == "fp32":
        return fp32_bytes
    counters = 8 * bn_layers
    return (fp32_bytes - counters) // 2 + counters


def _transform(ledger: Ledger, *, n: int, codec: str, buffer_bytes: int, store_dtype: str,
               bn_layers: int) -> Ledger:
    items = []
    for it in ledger.items:
        if it.name == "memory.images" and codec != "raw":
            items.append(LedgerItem("memory.codes", "exemplars", buffer_bytes))
            if ledger.convention == "strict":
                items.append(LedgerItem("memory.offsets", "exemplar_aux", OFFSET_BYTES * n))
                items.append(LedgerItem("memory.lengths", "exemplar_aux", LENGTH_BYTES * n))
        elif it.kind == "old_model":
            items.append(LedgerItem(it.name, it.kind,
                                    stored_module_bytes(it.n_bytes, bn_layers, store_dtype)))
        else:
            items.append(it)
    return Ledger.of(items, ledger.convention)


def allocate_stored(method: str, budget_bytes: int, stream: StreamShape, *,
                    backbone: str | None = None, config: AllocatorConfig = AllocatorConfig(),
                    codec: str = "raw", bytes_per_image: float | None = None,
                    store_dtype: str = "fp32", policy: str = "fit") -> Allocation:
    """An allocation under an exemplar codec and a teacher store dtype (module docstring)."""
    from clbudget.nets.backbones import backbone_stats
    from clbudget.streams.codecs import parse_codec
    check_store_dtype(store_dtype, method)
    c = parse_codec(codec)
    c.check(stream.image_shape)
    base = allocate(method, budget_bytes, stream, backbone=backbone, config=config, policy=policy)
    if (c.spec == "raw" and store_dtype == "fp32") or not base.budgeted:
        return base
    model = cost_model(method)
    if c.spec != "raw" and method not in CODEC_METHODS:
        raise ValueError(f"--codec {c.spec}: {method} "
                         f"{'keeps no exemplars' if not model.uses_exemplars else 'indexes raw pixels in place'}; "
                         f"codecs apply to {', '.join(CODEC_METHODS)} (use --codec raw)")
    per_image = float(bytes_per_image if bytes_per_image is not None
                      else c.fixed_bytes(stream.image_shape) if c.fixed_size else 0)
    if per_image <= 0:
        raise ValueError(f"codec {c.spec} needs its expected bytes per image (a data sample)")
    bn_layers = backbone_stats(base.backbone, tuple(stream.image_shape)).bn_layers
    conv = config.convention

    def ledger(n, buffer):
        return _transform(model.cost(stream, base.backbone, n, conv), n=n, codec=c.spec,
                          buffer_bytes=buffer, store_dtype=store_dtype, bn_layers=bn_layers)

    fixed = ledger(0, 0).total_bytes
    n, buffer = 0, 0
    if model.uses_exemplars:
        raw_one = ledger(1, 0).total_bytes - fixed      # aux of one slot (+ pixels if raw)
        if c.spec == "raw":
            n = max(0, (budget_bytes - fixed) // raw_one)
        else:
            n = max(0, int((budget_bytes - fixed) // (raw_one + per_image)))
            buffer = max(0, budget_bytes - fixed - n * raw_one)
        if n < config.min_per_class * stream.num_classes:
            raise BudgetError(
                f"{format_bytes(budget_bytes)} buys {method} only {n} exemplars under codec "
                f"{c.spec} (~{per_image:.0f} B each) and store dtype {store_dtype}; it needs "
                f"{config.min_per_class * stream.num_classes} ({conv} convention)")
    led = ledger(n, buffer)
    if led.total_bytes > budget_bytes:   # cannot happen by construction; never over budget
        raise BudgetError(f"internal: {method} ledger {led.total_bytes} B over {budget_bytes} B")
    return dataclasses.replace(base, n_exemplars=n, per_class_quota=n // stream.num_classes,
                               ledger=led, codec=c.spec, store_dtype=store_dtype,
                               exemplar_buffer_bytes=buffer, bytes_per_image=per_image)



def applies(method: str, codec: str, store_dtype: str) -> bool:
    return ((codec == "raw" or method in CODEC_METHODS)
            and (store_dtype == "fp32" or method in TEACHER_METHODS))


def expand_storage(cells, codecs: str | None, store_dtypes: str | None) -> list:
    """Sweep cells x codecs x store dtypes (comma-separated lists; None keeps each cell's own).
    A method gets the combinations that apply to it (`applies`); one to which none applies
    (the finetune reference, LwF under codecs) keeps a single raw / fp32 cell."""
    import dataclasses
    from clbudget.streams.codecs import parse_codec
    if codecs is None and store_dtypes is None:
        return cells
    cs = [parse_codec(c).spec for c in codecs.split(",") if c.strip()] if codecs else None
    ds = [check_store_dtype(d.strip()) and d.strip()
          for d in store_dtypes.split(",") if d.strip()] if store_dtypes else None
    out = {}
    for cell in cells:
        variants = [(c, d) for c in (cs or [cell.codec]) for d in (ds or [cell.store_dtype])
                    if applies(cell.method, c, d)] or [("raw", "fp32")]
        for c, d in variants:
            new = dataclasses.replace(cell, codec=c, store_dtype=d)
            out[new.key] = new
    return list(out.values())
