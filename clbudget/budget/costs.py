"""Cost models: each method's ledger as a function of the stream, backbone and exemplars.

A cost model predicts, from shapes alone, the ledger a method's `ledger()` reports
after the last task.  The allocator spends budgets with these; the methods'
tests check that what they really hold equals the prediction.

Storage choices (strict convention):
- exemplars: uint8 pixels at the stream's image shape (a feature stream's vectors at their
  float32 / float16 dtype: `StreamShape.input_dtype`), labels as int16;
- every network: float32 parameters, BN running statistics (float32) and
  `num_batches_tracked` (int64), heads included;
- heads are full-width (all classes of the stream, masked until seen), so a
  network's bytes do not change from task to task.
MEMO convention: feature-extractor parameters x 4 bytes + exemplar pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from clbudget.budget.accountant import check_convention, dtype_bytes, image_bytes
from clbudget.budget.ledger import Ledger
from clbudget.nets.backbones import BackboneStats, backbone_stats

LABEL_DTYPE = torch.int16  # exemplar labels as stored by the exemplar memory
FLOAT_BYTES = 4


@dataclass(frozen=True)
class StreamShape:
    """What the allocator knows of a stream: no data, only its shape."""
    num_tasks: int
    image_shape: tuple[int, ...]       # (C, H, W) images; (D,) feature vectors
    num_classes: int
    input_dtype: str = "uint8"         # the exemplars' stored dtype: uint8 pixels, or a
    #                                    feature stream's float32 / float16 (streams/features.py)
    domain_incremental: bool = False   # every task holds the same classes (streams/
    #                                    multidomain.py): MIND then masks its head too
    network_input: tuple[int, ...] | None = None   # (C, S, S) the networks see when a method
    #                                    resizes its inputs (CLR's input_size); None: image_shape

    @property
    def network_shape(self) -> tuple[int, ...]:
        """The input shape the networks are built for (the backbone's stem and the cost of
        every network), apart from the stored exemplars' `image_shape`."""
        return tuple(self.network_input or self.image_shape)

    @property
    def exemplar_dtype(self) -> torch.dtype:
        """The torch dtype one stored exemplar's values are held at."""
        dtypes = {"uint8": torch.uint8, "float32": torch.float32, "float16": torch.float16}
        if self.input_dtype not in dtypes:
            raise ValueError(f"exemplars are stored as {', '.join(dtypes)}, got "
                             f"{self.input_dtype!r}")
        return dtypes[self.input_dtype]

    @classmethod
    def from_protocol(cls, image_shape, num_classes: int, init: int, inc: int) -> "StreamShape":
        return cls(num_tasks_of(num_classes, init, inc), tuple(int(d) for d in image_shape),
                   num_classes)


def num_tasks_of(num_classes: int, init: int, inc: int) -> int:
    """Tasks of a B{init}Inc{inc} protocol; B0 means the first task has `inc` classes."""
    if inc <= 0:
        raise ValueError(f"--inc must be a positive number of classes, got {inc}")
    if init < 0 or init > num_classes:
        raise ValueError(f"--init must be between 0 and {num_classes} classes, got {init}")
    first = init or inc
    rest = num_classes - first
    if rest < 0 or rest % inc:
        valid = [d for d in range(1, num_classes + 1)
                 if (num_classes - (init or d)) >= 0 and (num_classes - (init or d)) % d == 0]
        raise ValueError(
            f"B{init}Inc{inc} does not divide {num_classes} classes: {first} + k*{inc} != "
            f"{num_classes}; valid --inc for --init {init}: {', '.join(map(str, valid))}")
    return 1 + rest // inc


@dataclass(frozen=True)
class CostModel:
    name: str
    paper: str
    ledger: Callable[[StreamShape, BackboneStats, int, str], list]
    uses_exemplars: bool = False
    expanding: bool = False      # backbone grows with tasks: allocator may pick a smaller one
    per_task: bool = False       # keeps per-task modules (expansion = T)
    budgeted: bool = True        # joint is the upper bound, outside any budget
    logits_per_exemplar: bool = False

    def cost(self, stream: StreamShape, backbone: str, n_exemplars: int,
             convention: str = "strict") -> Ledger:
        check_convention(convention)
        stats = backbone_stats(backbone, stream.network_shape)   # the stem the run builds
        return Ledger.of(self.ledger(stream, stats, n_exemplars, convention), convention)

    def expansion(self, stream: StreamShape) -> int:
        return stream.num_tasks if (self.expanding or self.per_task) else 1


def head_bytes(in_features: int, num_classes: int) -> int:
    return FLOAT_BYTES * (in_features * num_classes + num_classes)


def bn_set_bytes(s: BackboneStats) -> int:
    """One copy of every BN layer: affine + running mean/var (float32) + num_batches_tracked."""
    return 4 * FLOAT_BYTES * s.bn_channels + dtype_bytes(torch.int64) * s.bn_layers


def net_items(stream, s: BackboneStats, convention, prefix="net", kind="params"):
    """A single-head network: backbone + full-width linear head."""
    if convention == "memo":
        return [(f"{prefix}.feature_params", kind, s.params_bytes)]
    head = head_bytes(s.out_dim, stream.num_classes)
    if kind != "params":  # a kept copy (old model): one item
        return [(prefix, kind, s.state_bytes + head)]
    return [(f"{prefix}.params", "params", s.params_bytes + head),
            (f"{prefix}.buffers", "buffers", s.buffers_bytes)]


def exemplar_items(stream, n, convention, logits=False):
    # at the stored dtype: uint8 pixels, or D * 4 bytes a float32 feature vector
    items = [("memory.images", "exemplars",
              n * image_bytes(stream.image_shape, stream.exemplar_dtype))]
    if convention == "strict":
        items.append(("memory.labels", "exemplar_aux", n * dtype_bytes(LABEL_DTYPE)))
        if logits:
            items.append(("memory.logits", "exemplar_aux",
                          n * stream.num_classes * FLOAT_BYTES))
    return items


def _strict(convention, items):
    return items if convention == "strict" else []


def _finetune(st, s, n, c):
    return net_items(st, s, c)


def _replay(st, s, n, c):
    return net_items(st, s, c) + exemplar_items(st, n, c)


def _lwf(st, s, n, c):
    return net_items(st, s, c) + _strict(c, net_items(st, s, c, "old_model", "old_model"))


def _wa(st, s, n, c):
    return _lwf(st, s, n, c) + exemplar_items(st, n, c)


def _icarl(st, s, n, c):
    return _wa(st, s, n, c) + _strict(
        c, [("class_means", "class_stats", st.num_classes * s.out_dim * FLOAT_BYTES)])


def _ewc(st, s, n, c):
    # Online EWC keeps one running Fisher and one anchor copy of every parameter.
    p = s.params_bytes + head_bytes(s.out_dim, st.num_classes)
    return net_items(st, s, c) + _strict(c, [("fisher", "importance", p),
                                             ("anchor_params", "importance", p)])


def _derpp(st, s, n, c):
    return net_items(st, s, c) + exemplar_items(st, n, c, logits=True)


def _der(st, s, n, c):
    T = st.num_tasks
    if c == "memo":
        items = [("backbones.feature_params", "params", T * s.params_bytes)]
    else:
        items = [("backbones.params", "params", T * s.params_bytes),
                 ("backbones.buffers", "buffers", T * s.buffers_bytes),
                 ("head", "params", head_bytes(T * s.out_dim, st.num_classes))]
    return items + exemplar_items(st, n, c)


def _memo(st, s, n, c):
    T = st.num_tasks
    if c == "memo":
        items = [("generalized.feature_params", "params", FLOAT_BYTES * s.generalized_params),
                 ("specialized.feature_params", "params", T * FLOAT_BYTES * s.specialized_params)]
    else:
        items = [("generalized.params", "params", FLOAT_BYTES * s.generalized_params),
                 ("generalized.buffers", "buffers", s.generalized_buffers_bytes),
                 ("specialized.params", "params", T * FLOAT_BYTES * s.specialized_params),
                 ("specialized.buffers", "buffers", T * s.specialized_buffers_bytes),
                 ("head", "params", head_bytes(T * s.out_dim, st.num_classes))]
    return items + exemplar_items(st, n, c)


def memo2_stats(s: BackboneStats, image_shape) -> BackboneStats:
    """MEMO-2's split: the generalized part's last stage moves into the specialized block
    (nets/backbones.py `split_backbone`, specialized_stages=2)."""
    from dataclasses import replace
    from clbudget.nets.backbones import create_backbone, split_backbone
    with torch.device("meta"):
        net = create_backbone(s.name, tuple(image_shape))
    one, two = split_backbone(net, 1)[1], split_backbone(net, 2)[1]
    p = sum(t.numel() for t in two.parameters()) - sum(t.numel() for t in one.parameters())
    b = (sum(t.numel() * t.element_size() for t in two.buffers())
         - sum(t.numel() * t.element_size() for t in one.buffers()))
    return replace(s, generalized_params=s.generalized_params - p,
                   generalized_buffers_bytes=s.generalized_buffers_bytes - b,
                   specialized_params=s.specialized_params + p,
                   specialized_buffers_bytes=s.specialized_buffers_bytes + b)


def _memo2(st, s, n, c):
    # MEMO-2 (Zhou et al. 2023, section 5 / PyCIL convs/memo_*: the last two stages
    # specialized): MEMO's items over the moved split.
    return _memo(st, memo2_stats(s, st.image_shape), n, c)


def _bmc(st, s, n, c):
    # BMC (Fostiropoulos et al. 2023): the base network and the replay memory.  Each memory
    # sample keeps, beside its uint8 image and int16 label, the float32 features (out_dim) of
    # the expert that sent it: the targets of the batched distillation loss.  Experts and the
    # buffers they send are discarded after consolidation (communication, not memory).  The
    # features are counted in both conventions: they are the distillation targets.
    return net_items(st, s, c) + exemplar_items(st, n, c) + [
        ("memory.features", "exemplar_aux", n * s.out_dim * FLOAT_BYTES)]


def clr_kernel_params(s: BackboneStats) -> int:
    """One task's reprogramming: a depthwise 3x3 kernel per channel after each kxk conv."""
    return 9 * s.kxk_conv_channels


def _clr(st, s, n, c):
    T = st.num_tasks
    if c == "memo":
        return [("backbone.feature_params", "params", s.params_bytes),
                ("clr.kernels", "per_task", T * FLOAT_BYTES * clr_kernel_params(s)),
                ("clr.bn_affine", "per_task", T * 2 * FLOAT_BYTES * s.bn_channels)]
    return [("backbone.params", "params", s.params_bytes),
            ("backbone.buffers", "buffers", s.buffers_bytes),
            ("clr.kernels", "per_task", T * FLOAT_BYTES * clr_kernel_params(s)),
            ("clr.bn", "per_task", T * bn_set_bytes(s)),
            ("clr.heads", "per_task", head_bytes(s.out_dim, st.num_classes))]


def _mind(st, s, n, c):
    T = st.num_tasks
    # one uint8 task index per conv weight; on a domain-incremental stream per head weight too
    # (methods/mind.py `gated_weights`: the head's weights are given out like a conv's)
    masks = s.conv_weights + (s.out_dim * st.num_classes if st.domain_incremental else 0)
    if c == "memo":   # masks counted: inference cannot pick a subnetwork without them
        return net_items(st, s, c) + [("masks", "masks", masks),
                                      ("bn_per_task", "per_task",
                                       T * 2 * FLOAT_BYTES * s.bn_channels)]
    return net_items(st, s, c) + [
        ("masks", "masks", masks),
        ("bn_per_task", "per_task", T * bn_set_bytes(s))]


COST_MODELS: dict[str, CostModel] = {m.name: m for m in (
    CostModel("finetune", "baseline: plain fine-tuning", _finetune),
    CostModel("joint", "upper bound: all data of all seen tasks (not budgeted)", _finetune,
              budgeted=False),
    CostModel("replay", "exemplar replay (PyCIL 'Replay')", _replay, uses_exemplars=True),
    CostModel("icarl", "Rebuffi et al., CVPR 2017", _icarl, uses_exemplars=True),
    CostModel("wa", "Zhao et al., CVPR 2020", _wa, uses_exemplars=True),
    CostModel("lwf", "Li & Hoiem, TPAMI 2017", _lwf),
    CostModel("ewc", "Schwarz et al., ICML 2018 (online EWC)", _ewc),
    CostModel("der", "Yan et al., CVPR 2021", _der, uses_exemplars=True, expanding=True),
    CostModel("derpp", "Buzzega et al., NeurIPS 2020", _derpp, uses_exemplars=True,
              logits_per_exemplar=True),
    CostModel("memo", "Zhou et al., ICLR 2023", _memo, uses_exemplars=True, expanding=True),
    CostModel("memo2", "Zhou et al., ICLR 2023 (last two stages specialized)", _memo2,
              uses_exemplars=True, expanding=True),
    CostModel("bmc", "Fostiropoulos et al., CVPR 2023", _bmc, uses_exemplars=True),
    CostModel("clr", "Ge et al., ICCV 2023", _clr, per_task=True),
    CostModel("mind", "Bonato et al., AAAI 2024", _mind, per_task=True),
)}


# Loaders of methods from outside (pkg.module:Class, an entry point): loading one registers its
# cost model (methods/external.py) or raises.  The methods layer, above this one, installs the
# registry's loader when its package is imported (methods/__init__.py), so budget/ never imports
# methods/ (issue 15); without it, only the built-in cost models are known.
METHOD_LOADERS: list[Callable[[str], object]] = []


def cost_model(name: str) -> CostModel:
    if name not in COST_MODELS:   # a method from outside (pkg.module:Class, an entry point)
        for load in METHOD_LOADERS:
            load(name)
    if name not in COST_MODELS:
        from clbudget.streams.catalog import nearest
        raise ValueError(f"unknown method {name!r}; known: {', '.join(COST_MODELS)} "
                         f"(nearest: {nearest(name, COST_MODELS)})")
    return COST_MODELS[name]
