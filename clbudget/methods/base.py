"""The Method base: what every continual learner provides to a run.

A method is built from a `Context` (stream shape, allocation, trainer) and a
frozen `Config` of hyper-parameters whose defaults are its paper's.  Per task the
run calls `begin_task`, `learn`, `end_task`; evaluation calls `scores`
(task-agnostic, (B, K) over all classes; the evaluator masks unseen ones) and
`task_scores` (task-aware).  How it trains (epochs, lr, schedule, batch, precision per
phase) is not in its Config but in its recipe (`ctx.recipe`, train/recipes.py); `phase()`
reads it.  `retained()` names every tensor and module kept
across the task boundary; `ledger()` is computed from it, so the ledger is the
bytes really held.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from clbudget.budget.allocator import Allocation
from clbudget.budget.costs import StreamShape
from clbudget.budget.ledger import Ledger
from clbudget.train.loop import LoopConfig, Trainer
from clbudget.train.recipes import Recipe
from clbudget.methods.memory import ExemplarMemory


@dataclass(frozen=True)
class TaskData:
    """One task on the run's device: uint8 images, int64 remapped labels."""
    index: int
    classes: tuple[int, ...]
    x: torch.Tensor        # (N, C, H, W) uint8
    y: torch.Tensor        # (N,) int64
    x_test: torch.Tensor
    y_test: torch.Tensor


@dataclass
class Context:
    stream: StreamShape
    increments: tuple[int, ...]
    allocation: Allocation
    trainer: Trainer
    recipe: Recipe          # the resolved training recipe (train/recipes.py)
    normalization: object = None   # the applied train/recipes.Normalization (recorded in rows)
    dataset: str = ""       # the stream's data set name (RunSpec.dataset), "" when unknown
    # {data set: original labels the stream's tasks hold} (streams.multidomain.source_classes),
    # e.g. {"cifar10": (..), "glyphs": (8, 56, 68, 78)}; None when built without a stream
    source_classes: dict | None = None
    best_args: object = None   # methods/best_args.Choice of a method with Mammoth's tables

    @property
    def device(self) -> torch.device:
        return self.trainer.device

    @property
    def offsets(self) -> tuple[int, ...]:
        out, acc = [], 0
        for k in self.increments:
            out.append(acc)
            acc += k
        return tuple(out)


@dataclass(frozen=True)
class NoOptions:
    """The Config of a method without mechanism hyper-parameters (its training is its recipe)."""


class Method:
    name: ClassVar[str] = ""
    Config: ClassVar[type] = NoOptions
    recipe: ClassVar[str] = "pycil-icarl"        # the reference recipe (train/recipe_book.py)
    phases: ClassVar[tuple[str, ...]] = ("first", "later")   # training phases it runs
    # the phases that train it on its tasks: the run-wide --epochs/--lr/--batch-size change
    # these only; others (consolidation, pre-training, a teacher) keep their recipe's values;
    # None: every phase is a task phase
    task_phases: ClassVar[tuple[str, ...] | None] = None
    phase_fallbacks: ClassVar[dict] = {}         # task phase -> the imposed recipe's phase to use
    budgeted: ClassVar[bool] = True
    task_aware_only: ClassVar[bool] = False   # CLR: the paper's setting needs a task oracle
    # a method with two classifiers (iCaRL: NME and the linear head, both logged by PyCIL):
    # the name of `scores`' classifier, the headline of its rows ("" = its only one), and
    # the others' names -> method names; rows carry each one's accuracy under its name
    # reference recipes per data set (Mammoth's methods: seq-cifar10 vs seq-cifar100);
    # a data set not listed trains with `recipe`
    dataset_recipes: ClassVar[dict] = {}
    # Mammoth's per-data-set best arguments (methods/best_args.py): catalogue data set ->
    # Table of Config values and recipe per listed buffer size; `best_args_defaults` says
    # where the Config defaults (used on data sets Mammoth does not list) come from
    best_args: ClassVar[dict] = {}
    best_args_defaults: ClassVar[str] = ""
    headline: ClassVar[str] = ""
    also_scores: ClassVar[dict] = {}

    @classmethod
    def network_input_shape(cls, config, image_shape: tuple) -> tuple:
        """The input shape this method's networks are built for, given its config and the
        stream's stored image shape (the allocator prices the networks at it): the stored
        shape, unless the method resizes its inputs (CLR's `input_size`)."""
        return tuple(image_shape)

    @classmethod
    def recipe_for(cls, dataset: str | None, n_exemplars: int | None = None) -> str:
        """The reference recipe of a run on `dataset` (its declared name: run.py) with a
        buffer of `n_exemplars`: its best-arguments table's entry (methods/best_args.py;
        None: the planning entry), else `dataset_recipes`, else `recipe`."""
        from clbudget.methods.best_args import table_for
        from clbudget.streams.catalog import dataset_info
        if (table := table_for(cls, dataset)) is not None:
            return table.entry(n_exemplars).recipe
        try:
            key = dataset_info(dataset).name if dataset else None
        except ValueError:
            key = dataset
        return cls.dataset_recipes.get(key, cls.recipe)

    def __init__(self, ctx: Context, config=None):
        self.ctx = ctx
        self.config = config if config is not None else self.Config()
        self.task = -1
        self.old = 0      # classes seen before the current task
        self.seen = 0     # classes seen including the current task

    # --- conveniences ---------------------------------------------------------------
    @property
    def trainer(self) -> Trainer:
        return self.ctx.trainer

    @property
    def device(self) -> torch.device:
        return self.ctx.device

    def phase(self, name: str | None = None) -> LoopConfig:
        """The recipe's optimisation of phase `name`; by default the current task's (the
        first task vs later ones)."""
        return self.ctx.recipe.phase(name or ("first" if self.task == 0 else "later"))

    def new_memory(self, logits_dim: int = 0) -> ExemplarMemory:
        a = self.ctx.allocation
        if a.codec != "raw":   # encoded exemplars (methods/codecs.py)
            from clbudget.methods.codecs import CodecMemory, parse_codec
            return CodecMemory(a.n_exemplars, a.exemplar_buffer_bytes, self.ctx.stream.image_shape,
                               self.device, parse_codec(a.codec), logits_dim)
        return ExemplarMemory(a.n_exemplars, self.ctx.stream.image_shape, self.device, logits_dim,
                              dtype=self.ctx.stream.exemplar_dtype)

    def features_of(self, net) -> callable:
        """uint8 images -> features, in eval mode, for herding and class means."""
        def features(x):
            net.eval()
            return self.trainer.predict(net.features, x)
        return features

    # --- lifecycle --------------------------------------------------------------------
    def begin_task(self, task: TaskData) -> None:
        self.task = task.index
        self.old = self.seen
        self.seen += len(task.classes)

    def learn(self, task: TaskData) -> dict:
        raise NotImplementedError

    def end_task(self, task: TaskData) -> None:
        """After learning: update memories, teachers, statistics.  Default: nothing."""

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) normalized inputs -> (B, K) task-agnostic scores."""
        raise NotImplementedError

    def task_scores(self, x: torch.Tensor, task: int) -> torch.Tensor:
        """Task-aware scores; the evaluator restricts them to the task's classes."""
        return self.scores(x)

    def modules(self) -> list[nn.Module]:
        found = []
        for value in vars(self).values():
            if isinstance(value, nn.Module):
                found.append(value)
            elif isinstance(value, (list, tuple)):
                found += [v for v in value if isinstance(v, nn.Module)]
        return found

    def eval(self) -> None:
        for m in self.modules():
            m.eval()

    # --- accounting -------------------------------------------------------------------
    def retained(self) -> list[tuple[str, str, object]]:
        """(name, kind, tensor | module) of everything kept across the task boundary."""
        raise NotImplementedError

    def feature_modules(self) -> list[nn.Module]:
        """Feature extractors kept for inference (MEMO convention counts their parameters)."""
        raise NotImplementedError

    def ledger(self, convention: str = "strict") -> Ledger:
        items = []
        if convention == "memo":
            # parameters at the bytes they are held in: 4 each at float32 (the convention's
            # "x 4"), fewer for a frozen part stored lower (nets/stored.py)
            items.append(("feature_params", "params", sum(
                p.numel() * p.element_size() for m in self.feature_modules()
                for p in m.parameters())))
            items += [(n, k, _bytes(obj)) for n, k, obj in self.retained() if k == "exemplars"]
            items += self.memo_extra()
            return Ledger.of(items, "memo")
        for name, kind, obj in self.retained():
            if isinstance(obj, nn.Module) and kind == "params":
                items.append((f"{name}.params", "params", _bytes(list(obj.parameters()))))
                items.append((f"{name}.buffers", "buffers", _bytes(list(obj.buffers()))))
            else:
                items.append((name, kind, _bytes(obj)))
        return Ledger.of(items, "strict")

    def memo_extra(self) -> list:
        """MEMO-convention items beyond feature parameters and exemplar pixels."""
        return []

    def cost_figures(self) -> dict:
        """A paper's own cost figures (BMC communication, CLR fraction, MIND masks)."""
        return {}

    def phases_not_run(self) -> dict[str, str]:
        """{phase: why} of the recipe's phases this run does not train (CLR's pre-training
        when a weights file gives the backbone): the row's `phase_epochs` leaves them out."""
        return {}

    # --- checkpoints (experiment/checkpoint.py) --------------------------------------------
    rebuilt: ClassVar[tuple[str, ...]] = ("ctx", "config")   # made again from the spec

    def state_dict(self) -> dict:
        """Everything the method holds but `rebuilt`, as tensors and plain containers (loadable
        with torch.load(..., weights_only=True)).  Generic: it walks the attributes, so grown
        networks (DER, MEMO), per-task module lists (CLR, MIND), memories, teachers and
        counters need no per-method code."""
        from clbudget.methods.state import encode
        attrs = {k: v for k, v in vars(self).items() if k not in self.rebuilt}
        return {"class": f"{type(self).__module__}:{type(self).__qualname__}",
                "attrs": encode(attrs)}

    def load_state_dict(self, state: dict) -> None:
        """Replace this (freshly built) method's state by a `state_dict()` of the same method."""
        from clbudget.methods.state import CheckpointError, decode
        name = f"{type(self).__module__}:{type(self).__qualname__}"
        attrs = decode(state["attrs"])
        fresh = set(vars(self)) - set(self.rebuilt)
        # attributes set later with a class-level default (KeepsTeacher.old_net) may be extra
        odd = (fresh - set(attrs)) | {k for k in set(attrs) - fresh if not hasattr(type(self), k)}
        if state["class"] != name or odd:
            raise CheckpointError(
                f"checkpoint holds a {state['class']} whose attributes do not match this "
                f"clbudget's {name} ({', '.join(sorted(odd)) or 'class'}): written by another "
                f"version; delete the checkpoint to start the run over")
        for key, value in attrs.items():
            setattr(self, key, value)


def _bytes(obj) -> int:
    if isinstance(obj, nn.Module):
        return sum(t.numel() * t.element_size() for t in obj.state_dict().values()
                   if torch.is_tensor(t))
    if isinstance(obj, (list, tuple)):
        return sum(_bytes(o) for o in obj)
    if torch.is_tensor(obj):
        return obj.numel() * obj.element_size()
    raise TypeError(f"cannot count bytes of {type(obj).__name__}")
