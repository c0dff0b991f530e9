"""Budget choices of how things are stored: exemplar codecs and the dtype of kept networks.

`allocate_stored` is `allocator.allocate` with two more choices:
- `codec` (methods/codecs.py): the exemplars' pixels are replaced in the ledger by one byte
  buffer, plus an int64 offset and an int32 length per slot (strict convention).  The count is
  the budget left by the model divided by the bytes of one exemplar at `bytes_per_image` (the
  codec's expected encoded bytes, measured by the run on a seeded sample of up to 256 images
  of the *first task's* training data: the only data a run has when it allocates; a later
  task's images are not looked at before their task) plus its labels/slot arrays; the byte
  buffer then takes every byte the model and the slot arrays leave.  The run fills it greedily
  with the real encoded sizes and never over (`CodecMemory._pack`; DER++'s reservoir evicts
  random held entries when a code does not fit, `CodecMemory.reservoir`): with images that
  compress worse than the sample, fewer exemplars are held, never more bytes.  A budget is
  refused only below the codec's own minimum (the model + `min_per_class` exemplars per class
  at `bytes_per_image` plus their slot arrays), which the error names; one the raw pixels would
  not fit is priced at the backbone named, else the default (expanding methods: the smallest
  rung).
- `store_dtype` ("fp32" | "fp16" | "bf16" | "int8"; nets/stored.py): the networks a method keeps
  frozen are held at that dtype and computed in float32; the bytes saved go to exemplars.
  What is frozen, per method (`STORED_PARTS`):
  - LwF, iCaRL, WA: the teacher (the previous network, kind `old_model`, `finetune.KeepsTeacher`);
  - DER: the T-1 old backbones (the newest trains in its task and stays float32);
  - MEMO, MEMO-2: the T-1 old specialized blocks (the generalized blocks keep training; with
    `train_generalized=False` they freeze after task 0 but stay fp32, priced so);
  - CLR: its frozen backbone (the per-task kernels, BN and heads train and stay float32).
  fp16/bf16 hold every floating tensor of those parts at 2 bytes (BN's int64
  `num_batches_tracked` kept); int8 is weight-only: conv/linear weights as int8 codes plus a
  float32 scale per output channel, biases and BN float32.  The price is exact: the same rule
  (`stored_bytes`) applied to a meta-device copy of the part.  The memo convention counts the
  parts' parameters at their stored bytes (its "x 4" is float32's).
  BMC keeps no frozen network (its experts' frozen base copies are discarded after their step);
  finetune, replay, EWC, DER++ and MIND keep none: refused.
The joint upper bound and raw / fp32 are `allocate` unchanged.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import torch

from clbudget.budget.accountant import format_bytes
from clbudget.budget.allocator import Allocation, AllocatorConfig, BudgetError, allocate
from clbudget.budget.costs import StreamShape, cost_model
from clbudget.budget.ledger import Ledger, LedgerItem
from clbudget.nets.stored import STORE_DTYPES, stored_bytes  # noqa: F401 (STORE_DTYPES: names)
from clbudget.nets.stored import check_store_dtype as check_dtype_name

TEACHER_METHODS = ("lwf", "icarl", "wa")   # keep a frozen teacher through KeepsTeacher
# method -> (ledger item prefix, frozen part, how many of the T kept copies are frozen)
STORED_PARTS = {**{m: ("old_model", "classifier", lambda T: 1) for m in TEACHER_METHODS},
                "der": ("backbones", "backbone", lambda T: T - 1),
                "memo": ("specialized", "specialized:1", lambda T: T - 1),
                "memo2": ("specialized", "specialized:2", lambda T: T - 1),
                "clr": ("backbone", "backbone", lambda T: 1)}
# memories read through `memory.data()` / `memory.images_at()` / `memory.retained()`: the
# class-balanced ones (BMC's with its expert features) and DER++'s reservoir (CodecMemory.reservoir)
CODEC_METHODS = ("replay", "icarl", "wa", "der", "memo", "memo2", "derpp", "bmc")
OFFSET_BYTES, LENGTH_BYTES = 8, 4          # codecs.OFFSET_DTYPE int64, LENGTH_DTYPE int32
NOTHING_FROZEN = {"bmc": "its base trains at every consolidation and each expert's frozen base "
                         "copy is discarded after its step"}


def check_store_dtype(name: str, method: str | None = None) -> torch.dtype:
    dtype = check_dtype_name(name)
    if name != "fp32" and method is not None and method not in STORED_PARTS:
        why = NOTHING_FROZEN.get(method, "it keeps no frozen network")
        raise ValueError(f"--store-dtype {name} applies to the frozen networks of "
                         f"{', '.join(STORED_PARTS)}; {method} has none to store lower ({why}); "
                         f"use --store-dtype fp32")
    return dtype


def frozen_part(part: str, backbone: str, stream: StreamShape) -> torch.nn.Module:
    """A meta-device copy of what a method keeps frozen (STORED_PARTS), for pricing."""
    from clbudget.nets.backbones import create_backbone, split_backbone
    from clbudget.nets.classifier import Classifier
    with torch.device("meta"):
        if part == "classifier":
            return Classifier.create(backbone, tuple(stream.image_shape), stream.num_classes)
        net = create_backbone(backbone, tuple(stream.image_shape))
        if part == "backbone":
            return net
        return split_backbone(net, int(part.split(":")[1]))[1]


@functools.lru_cache(maxsize=None)
def _part_bytes(part: str, backbone: str, image_shape: tuple, num_classes: int,
                store_dtype: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """((param, buffer) bytes at fp32, the same at `store_dtype`) of one frozen part; built
    once per shape (a meta copy and its stored twin cost ~50 ms, and the allocator prices
    every rung and count it tries)."""
    module = frozen_part(part, backbone, StreamShape(1, image_shape, num_classes))
    fp32 = (sum(p.numel() * 4 for p in module.parameters()),
            sum(b.numel() * b.element_size() for b in module.buffers()))
    return fp32, stored_bytes(module, store_dtype)


def stored_ledger(ledger: Ledger, method: str, stream: StreamShape, backbone: str,
                   store_dtype: str) -> Ledger:
    """The fp32 ledger with the frozen part's k copies repriced at `store_dtype`."""
    if store_dtype == "fp32" or method not in STORED_PARTS:
        return ledger
    prefix, part, copies = STORED_PARTS[method]
    k = copies(stream.num_tasks)
    fp32, low = _part_bytes(part, backbone, stream.network_shape, stream.num_classes,
                            store_dtype)
    delta = {f"{prefix}.params": k * (low[0] - fp32[0]),
             f"{prefix}.buffers": k * (low[1] - fp32[1]),
             f"{prefix}.feature_params": k * (low[0] - fp32[0]),     # memo convention
             prefix: k * (sum(low) - sum(fp32))}                      # one item (old_model)
    return Ledger.of([LedgerItem(i.name, i.kind, i.n_bytes + delta.get(i.name, 0))
                      for i in ledger.items], ledger.convention)


def _transform(ledger: Ledger, *, n: int, codec: str, buffer_bytes: int) -> Ledger:
    items = []
    for it in ledger.items:
        if it.name == "memory.images" and codec != "raw":
            items.append(LedgerItem("memory.codes", "exemplars", buffer_bytes))
            if ledger.convention == "strict":
                items.append(LedgerItem("memory.offsets", "exemplar_aux", OFFSET_BYTES * n))
                items.append(LedgerItem("memory.lengths", "exemplar_aux", LENGTH_BYTES * n))
        else:
            items.append(it)
    return Ledger.of(items, ledger.convention)


def allocate_stored(method: str, budget_bytes: int, stream: StreamShape, *,
                    backbone: str | None = None, config: AllocatorConfig = AllocatorConfig(),
                    codec: str = "raw", bytes_per_image: float | None = None,
                    store_dtype: str = "fp32", policy: str = "fit") -> Allocation:
    """An allocation under an exemplar codec and a store dtype of the frozen networks (module
    docstring)."""
    from clbudget.streams.codecs import parse_codec
    check_store_dtype(store_dtype, method)
    c = parse_codec(codec)
    c.check(stream.image_shape)

    def reprice(led, bb):
        return stored_ledger(led, method, stream, bb, store_dtype)

    try:
        base = allocate(method, budget_bytes, stream, backbone=backbone, config=config,
                        policy=policy, reprice=reprice if store_dtype != "fp32" else None)
    except BudgetError:
        # refused at raw pixel prices; an encoded exemplar may cost less: the codec's own
        # minimum decides below, at the backbone named or the smallest (default) one
        if c.spec == "raw" or method not in CODEC_METHODS:
            raise
        from clbudget.nets.backbones import FAMILIES, default_backbone, family_for
        model = cost_model(method)
        bb = backbone or (FAMILIES[family_for(stream.image_shape)][0] if model.expanding
                          else default_backbone(stream.image_shape))
        base = Allocation(method, bb, model.expansion(stream), 0, 0,
                          model.cost(stream, bb, 0, config.convention), budget_bytes, policy)
    if not base.budgeted or (c.spec, store_dtype) == ("raw", "fp32"):
        return base
    if c.spec == "raw":          # the stored prices decided the backbone and the count
        return dataclasses.replace(base, store_dtype=store_dtype)
    model = cost_model(method)
    if c.spec != "raw" and method not in CODEC_METHODS:
        why = ("keeps no exemplars" if not model.uses_exemplars
               else "keeps its exemplars outside an encoded memory")
        raise ValueError(f"--codec {c.spec}: {method} {why}; codecs apply to "
                         f"{', '.join(CODEC_METHODS)} (use --codec raw)")
    per_image = float(bytes_per_image if bytes_per_image is not None
                      else c.fixed_bytes(stream.image_shape) if c.fixed_size else 0)
    if per_image <= 0:
        raise ValueError(f"codec {c.spec} needs its expected bytes per image (a data sample)")
    conv = config.convention

    def ledger(n, buffer):
        led = _transform(model.cost(stream, base.backbone, n, conv), n=n, codec=c.spec,
                         buffer_bytes=buffer)
        return stored_ledger(led, method, stream, base.backbone, store_dtype)

    fixed = ledger(0, 0).total_bytes
    n, buffer = 0, 0
    if model.uses_exemplars:
        slot = ledger(1, 0).total_bytes - fixed      # the aux arrays of one slot
        n = max(0, int((budget_bytes - fixed) // (slot + per_image)))
        need = config.min_per_class * stream.num_classes
        if n < need or fixed > budget_bytes:
            least = fixed + math.ceil(need * (slot + per_image))
            raise BudgetError(
                f"{format_bytes(budget_bytes)} is below {method}'s minimum of "
                f"{format_bytes(least)} under codec {c.spec} (~{per_image:.0f} B an image) and "
                f"store dtype {store_dtype}: {base.backbone} and {need} exemplar(s) "
                f"({conv} convention)")
        # no slot, no buffer (min_per_class = 0): a buffer the ledger would drop with its
        # zero-byte images item is not allocated either
        buffer = max(0, budget_bytes - fixed - n * slot) if n else 0
    led = ledger(n, buffer)
    if led.total_bytes > budget_bytes:   # cannot happen by construction; never over budget
        raise BudgetError(f"internal: {method} ledger {led.total_bytes} B over {budget_bytes} B")
    return dataclasses.replace(base, n_exemplars=n, per_class_quota=n // stream.num_classes,
                               ledger=led, codec=c.spec, store_dtype=store_dtype,
                               exemplar_buffer_bytes=buffer, bytes_per_image=per_image)


def applies(method: str, codec: str, store_dtype: str) -> bool:
    return ((codec == "raw" or method in CODEC_METHODS)
            and (store_dtype == "fp32" or method in STORED_PARTS))


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
