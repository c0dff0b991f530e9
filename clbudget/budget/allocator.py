"""Spend one budget per method: backbone, expansion, exemplars.

Policies
- `fit` (default): the model's cost is fixed; exemplars fill the rest.
  Expanding methods (DER, MEMO) with no backbone named climb their family's
  ladder: the largest backbone whose T-task cost still leaves
  `reserve_per_class` exemplars per class, then exemplars fill the rest.
- `memo-fair` (MEMO, ICLR 2023, section 5): every method gets DER's cost of T
  full backbones + `base_exemplars` exemplars; a method whose model costs less
  turns the difference into extra exemplars.
- `memo-auc` (MEMO, section 5): five budget points.  Point 0 is an exemplar
  method's single backbone + `base_exemplars` (DER and MEMO then use T x the
  smallest rung, conv2 on CIFAR); points 1-4 are DER's cost with T x each
  larger rung + `base_exemplars`, which DER and MEMO use while every other method
  keeps its default backbone and tops up exemplars to the same bytes.

An allocation never exceeds its budget; an infeasible budget raises
`BudgetError` naming the method's minimum.  With a fixed backbone, more budget
never gives fewer exemplars; on the ladder, more budget never gives a smaller
backbone (a larger backbone can leave fewer exemplars: that is the trade-off).
"""
from __future__ import annotations

from dataclasses import dataclass

from clbudget.budget.accountant import check_convention, format_bytes
from clbudget.budget.costs import CostModel, StreamShape, cost_model
from clbudget.budget.ledger import Ledger
from clbudget.nets.backbones import BACKBONES, FAMILIES, default_backbone, family_for

POLICIES = ("fit", "memo-fair", "memo-auc")


class BudgetError(ValueError):
    """A budget a method cannot be run within."""


@dataclass(frozen=True)
class Allocation:
    method: str
    backbone: str
    expansion: int          # backbones (DER), specialized blocks (MEMO), per-task modules; else 1
    n_exemplars: int
    per_class_quota: int    # exemplars per class once every class is seen
    ledger: Ledger          # preview after the last task
    budget_bytes: int
    policy: str
    budgeted: bool = True
    codec: str = "raw"               # exemplar codec (methods/codecs.py, budget/storage.py)
    store_dtype: str = "fp32"        # dtype frozen networks are held at (budget/storage.py)
    exemplar_buffer_bytes: int = 0   # a codec memory's byte buffer (0: raw pixels)
    bytes_per_image: float = 0.0     # a codec's expected encoded bytes per exemplar

    @property
    def total_bytes(self) -> int:
        return self.ledger.total_bytes

    @property
    def slack_bytes(self) -> int:
        return self.budget_bytes - self.total_bytes

    def to_dict(self) -> dict:
        stored = ({"codec": self.codec, "store_dtype": self.store_dtype,
                   "exemplar_buffer_bytes": self.exemplar_buffer_bytes,
                   "bytes_per_image": self.bytes_per_image}
                  if (self.codec, self.store_dtype) != ("raw", "fp32") else {})
        return {**stored, "method": self.method, "backbone": self.backbone, "expansion": self.expansion,
                "n_exemplars": self.n_exemplars, "per_class_quota": self.per_class_quota,
                "total_bytes": self.total_bytes, "budget_bytes": self.budget_bytes,
                "slack_bytes": self.slack_bytes, "policy": self.policy,
                "convention": self.ledger.convention, "budgeted": self.budgeted,
                "ledger": self.ledger.to_dict()}


@dataclass(frozen=True)
class AllocatorConfig:
    convention: str = "strict"
    min_per_class: int = 1        # an exemplar method needs at least this many per class
    reserve_per_class: int = 20   # what the ladder keeps for exemplars (iCaRL's 2000 on 100 classes)
    base_exemplars: int = 2000    # MEMO protocols: DER's exemplars (MEMO section 5)

    def __post_init__(self):
        check_convention(self.convention)
        if self.min_per_class < 0 or self.reserve_per_class < self.min_per_class:
            raise ValueError("need 0 <= min_per_class <= reserve_per_class, got "
                             f"{self.min_per_class} and {self.reserve_per_class}")


def _check_backbone(name: str) -> str:
    if name not in BACKBONES:
        from clbudget.streams.catalog import nearest
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)} "
                         f"(nearest: {nearest(name, BACKBONES)})")
    return name


def _cost(model: CostModel, stream: StreamShape, backbone: str, n: int, config: AllocatorConfig,
          reprice=None) -> Ledger:
    """The model's ledger, repriced by `reprice(ledger, backbone)` where given (a frozen part
    stored at a lower dtype: budget/storage.py)."""
    ledger = model.cost(stream, backbone, n, config.convention)
    return reprice(ledger, backbone) if reprice else ledger


def _fill(model: CostModel, stream: StreamShape, backbone: str, budget_bytes: int,
          config: AllocatorConfig, policy: str, reprice=None) -> Allocation | None:
    """Exemplars filling what the model leaves; None if below the minimum."""
    fixed = _cost(model, stream, backbone, 0, config, reprice).total_bytes
    if fixed > budget_bytes:      # the model alone is over (min_per_class = 0 included)
        return None
    n = 0
    if model.uses_exemplars:
        per = _cost(model, stream, backbone, 1, config, reprice).total_bytes - fixed
        n = (budget_bytes - fixed) // per
        if n < config.min_per_class * stream.num_classes:
            return None
    return Allocation(model.name, backbone, model.expansion(stream), n,
                      n // stream.num_classes, _cost(model, stream, backbone, n, config, reprice),
                      budget_bytes, policy)


def minimum_bytes(method: str, stream: StreamShape, backbone: str,
                  config: AllocatorConfig = AllocatorConfig(), reprice=None) -> int:
    model = cost_model(method)
    n = config.min_per_class * stream.num_classes if model.uses_exemplars else 0
    return _cost(model, stream, backbone, n, config, reprice).total_bytes


def allocate(method: str, budget_bytes: int, stream: StreamShape, *, backbone: str | None = None,
             config: AllocatorConfig = AllocatorConfig(), policy: str = "fit",
             reprice=None) -> Allocation:
    """The `fit` policy (also the per-point step of the MEMO protocols).  `reprice(ledger,
    backbone)`: prices of a storage choice (budget/storage.py), used for every decision."""
    model = cost_model(method)
    if budget_bytes <= 0:
        raise BudgetError(f"budget must be positive, got {budget_bytes} bytes")
    if not model.budgeted:  # joint: trained and reported, never charged
        bb = _check_backbone(backbone or default_backbone(stream.image_shape))
        ledger = model.cost(stream, bb, 0, config.convention)
        return Allocation(method, bb, 1, 0, 0, ledger, budget_bytes, policy, budgeted=False)
    if backbone is None and model.expanding:
        ladder = FAMILIES[family_for(stream.image_shape)]
        for bb in reversed(ladder):  # largest rung that keeps the reserve
            reserve = config.reserve_per_class * stream.num_classes
            if minimum_with(model, stream, bb, reserve, config, reprice) <= budget_bytes:
                return _fill(model, stream, bb, budget_bytes, config, policy, reprice)
        for bb in ladder:            # else the smallest rung that keeps the minimum
            if alloc := _fill(model, stream, bb, budget_bytes, config, policy, reprice):
                return alloc
        backbone = ladder[0]
    backbone = _check_backbone(backbone or default_backbone(stream.image_shape))
    if alloc := _fill(model, stream, backbone, budget_bytes, config, policy, reprice):
        return alloc
    need = minimum_bytes(method, stream, backbone, config, reprice)
    what = f"{stream.num_tasks} tasks of {backbone}" if model.expansion(stream) > 1 else backbone
    extra = (f" and {config.min_per_class} exemplar(s) per class x {stream.num_classes} classes"
             if model.uses_exemplars else "")
    raise BudgetError(f"{format_bytes(budget_bytes)} is below {method}'s minimum of "
                      f"{format_bytes(need)} for {what}{extra} ({config.convention} convention)")


def minimum_with(model: CostModel, stream, backbone, n_exemplars, config, reprice=None) -> int:
    return _cost(model, stream, backbone, n_exemplars if model.uses_exemplars else 0, config,
                 reprice).total_bytes


def memo_budget_points(stream: StreamShape, config: AllocatorConfig = AllocatorConfig()):
    """MEMO's AUC budget points as (budget_bytes, rung for expanding methods)."""
    ladder = FAMILIES[family_for(stream.image_shape)]
    base = config.base_exemplars
    single = cost_model("replay").cost(stream, default_backbone(stream.image_shape), base,
                                       config.convention).total_bytes
    points = [(single, ladder[0])]
    points += [(cost_model("der").cost(stream, bb, base, config.convention).total_bytes, bb)
               for bb in ladder[1:]]
    return points


def allocate_protocol(methods, stream: StreamShape, protocol: str = "fit", *,
                      budget_bytes: int | None = None, backbone: str | None = None,
                      config: AllocatorConfig = AllocatorConfig()) -> list[Allocation]:
    """Allocations for several methods under one policy (memo-auc: five points each)."""
    if protocol not in POLICIES:
        from clbudget.streams.catalog import nearest
        raise ValueError(f"unknown protocol {protocol!r}; use one of {', '.join(POLICIES)} "
                         f"(nearest: {nearest(protocol, POLICIES)})")
    if protocol == "fit":
        if budget_bytes is None:
            raise ValueError("the fit protocol needs a budget (--budget)")
        return [allocate(m, budget_bytes, stream, backbone=backbone, config=config)
                for m in methods]
    if budget_bytes is not None:
        raise ValueError(f"the {protocol} protocol sets its own budgets; drop --budget")
    ladder = FAMILIES[family_for(stream.image_shape)]
    if protocol == "memo-fair":
        points = [(cost_model("der").cost(stream, ladder[-1], config.base_exemplars,
                                          config.convention).total_bytes, ladder[-1])]
    else:
        points = memo_budget_points(stream, config)
    return [allocate(m, budget, stream, config=config, policy=protocol,
                     backbone=rung if cost_model(m).expanding else backbone)
            for budget, rung in points for m in methods]
