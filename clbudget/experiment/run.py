"""One run: a spec in, a result row out.

spec -> stream (streams/) -> allocation (budget/) -> method (methods/) -> per task:
learn, check the ledger of the allocation's convention against the budget, evaluate -> result row.

With `checkpoints` (experiment/checkpoint.py) the run saves its state after every finished
task and, when a checkpoint of the same spec exists, resumes after its last task: the
result equals an uninterrupted run's.  `run_guarded` adds the run-level fault policy: CUDA
out of memory retried once at half the batch size when asked.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import time
import traceback
from dataclasses import dataclass, field

import numpy as np
import torch

from clbudget.experiment.metrics import seen_accuracy, summarize
from clbudget.budget.accountant import format_bytes, parse_budget
from clbudget.budget.allocator import AllocatorConfig, allocate
from clbudget.budget.costs import StreamShape, cost_model
from clbudget.experiment.env import environment
from clbudget.experiment.evaluate import evaluate
from clbudget.train.fields import check_fields
from clbudget.train.loop import NonFiniteLoss, OutOfMemory, Pipeline, Trainer
from clbudget.train.recipes import (AUGMENTATIONS, declared_dataset, normalization_for,
                                    parse_normalization, phase_epochs, reference_recipe)
from clbudget.nets.backbones import backbone_stats
from clbudget.methods.base import Context, TaskData
from clbudget.methods.registry import method_class


class BudgetExceeded(RuntimeError):
    """A method's ledger grew past its budget: the run refuses to go on."""


class RunFailed(RuntimeError):
    """A run stopped by a fault (non-finite loss, out of memory, ledger over budget); the
    message is its recorded reason.  The command line reports it in one line, exit status 1."""


# faults that stop a run and are recorded as its reason (bugs raise as they are)
RUN_FAULTS = (NonFiniteLoss, torch.cuda.OutOfMemoryError, BudgetExceeded)


@dataclass(frozen=True)
class RunSpec:
    method: str
    dataset: str = "glyphs"
    budget: str = "2000ex"
    init: int = 0
    inc: int = 10
    data_root: str | None = None
    epochs: int | None = None          # overrides the task phases; milestones scale with it
    batch_size: int | None = None
    lr: float | None = None            # overrides every phase's learning rate
    recipe: str | None = None          # training recipe; None = the method's reference recipe
    recipe_options: tuple[tuple[str, object], ...] = ()   # (phase, {field: value})
    precision: str | None = None       # "fp32" | "bf16"; None = the recipe's
    normalization: str = "recipe"      # recipe | train-set | SOURCE:DATASET (train/recipes.py)
    seed: int = 0
    class_order_seed: int = 1993       # the seed of the "fixed" class order
    class_order: str = "fixed"         # fixed | per-seed | unshuffled (streams/protocol.py)
    device: str = "auto"
    num_classes: int | None = None
    max_per_class: int | None = None
    max_test_per_class: int | None = None
    backbone: str | None = None
    convention: str = "strict"
    method_options: tuple[tuple[str, object], ...] = ()   # (field, value) of the method Config
    glyphs_options: tuple[tuple[str, object], ...] = ()
    codec: str = "raw"                 # exemplar codec: raw | jpeg:Q | png | down:S (methods/codecs.py)
    store_dtype: str = "fp32"          # frozen networks' stored dtype: fp32|fp16|bf16|int8
    cache_dir: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)  # nested dataclasses (phase configs) become dicts
        d["method_options"] = dict(d["method_options"])
        d["glyphs_options"] = dict(d["glyphs_options"])
        d["recipe_options"] = dict(d["recipe_options"])
        d.pop("cache_dir")
        return d

    @property
    def key(self) -> str:
        """Identity of the run (everything that changes its result), the resolved recipe's
        values included: a run of the same spec under changed reference settings is another
        run; for a user's method, its file's hash too."""
        d = self.to_dict()
        try:   # values as the Config holds them: T=2, T=2.0 and no T (default 2.0) are one run
            config = method_class(self.method).Config
            given = check_fields(config, d["method_options"], f"{self.method} option")
            default = config()
            d["method_options"] = {k: v for k, v in given.items()
                                   if isinstance(v, dict) or v != getattr(default, k)}
        except (ValueError, TypeError):   # an unknown method or option: the run fails, its key stays
            pass
        for name, default in (("codec", "raw"), ("store_dtype", "fp32"), ("class_order", "fixed"),
                              ("normalization", "recipe")):
            if d[name] == default:   # keys of runs from before these choices stay the same
                d.pop(name)
        try:
            d["recipe_fingerprint"] = self.resolved_recipe().fingerprint
            # Mammoth's best args per buffer size (methods/best_args.py): the buffer is known
            # after allocation only, so the key holds every listed entry's values
            from clbudget.methods.best_args import table_for
            table = table_for(method_class(self.method),
                              declared_dataset(self.dataset, self.normalization))
            if table is not None:
                d["best_args"] = table.fingerprint
        except ValueError:    # an unknown method or recipe: the run fails, its key stays
            pass
        from clbudget.methods.registry import source
        if (src := source(self.method)) is not None:
            d["method_sha256"] = src["sha256"]
        if self.data_sha256 is not None:   # a feature file: its content, not where it lies
            d.pop("data_root")
            d["data_sha256"] = self.data_sha256
        blob = json.dumps(d, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


    @functools.cached_property
    def data_sha256(self) -> str | None:
        """SHA-256 of a feature stream's file (`--features FILE` = dataset "features",
        data_root FILE), read once per spec: two files at one path are two runs, one file at
        two paths is one run.  None for image data sets (their readers' caches key on sizes
        and mtimes, streams/base.py `cache_key`) and for a missing file (loading it fails,
        naming it)."""
        if self.dataset != "features" or not self.data_root:
            return None
        from clbudget.streams.features import file_sha256
        try:
            return file_sha256(self.data_root)
        except OSError:
            return None

    @property
    def order_seed(self) -> int | None:
        """The seed the class order is shuffled with (None: unshuffled)."""
        from clbudget.streams.protocol import order_seed
        return order_seed(self.class_order, self.seed, self.class_order_seed)

    def resolved_recipe(self, n_exemplars: int | None = None):
        """The recipe this spec trains with (train/recipes.py `resolve`) at a buffer of
        `n_exemplars` (None before the allocation: methods/best_args.py's planning entry)."""
        from clbudget.train.recipes import declared_dataset, resolve
        return resolve(method_class(self.method), self.recipe, self.recipe_options,
                       self.precision, self.epochs, self.batch_size, self.lr,
                       dataset=declared_dataset(self.dataset, self.normalization),
                       n_exemplars=n_exemplars)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available here; use --device cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise ValueError(f"--device must be auto, cpu or cuda[:N], got {name!r}")
    return torch.device(name)


def method_config(cls, options: dict):
    """The method's frozen Config with `options` replacing defaults; unknown keys refused."""
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    for key in options:
        if key not in fields:
            from clbudget.streams.catalog import nearest
            raise ValueError(f"{cls.name} has no option {key!r}; options: "
                             f"{', '.join(sorted(fields))} (nearest: {nearest(key, fields)})")
    # values of the fields' types (train/fields.py), before any data is read
    options = check_fields(cls.Config, options, f"{cls.name} option")
    default = cls.Config()
    for key, value in options.items():  # {"epochs": 5} updates a nested phase config
        nested = getattr(default, key)
        if isinstance(value, dict) and dataclasses.is_dataclass(nested):
            options[key] = dataclasses.replace(nested, **value)
    return dataclasses.replace(default, **options)


def check_options(spec: RunSpec) -> None:
    """The spec's method, recipe and glyphs options checked against their dataclasses' field types
    (ValueError, one line): what `sweep` checks for every method before any cell runs."""
    spec.order_seed                   # the class order protocol
    parse_normalization(spec.normalization)
    method_config(method_class(spec.method), dict(spec.method_options))
    spec.resolved_recipe()            # recipe name, phases and their field types
    if spec.glyphs_options:
        from clbudget.streams import GlyphsOptions
        check_fields(GlyphsOptions, dict(spec.glyphs_options), "glyphs option")


def stream_key(spec: RunSpec) -> tuple:
    """What decides the stream a spec trains on: cells with equal keys share one load."""
    return (spec.dataset, spec.data_root, spec.init, spec.inc, spec.order_seed,
            spec.num_classes, spec.max_per_class, spec.max_test_per_class, spec.seed,
            spec.glyphs_options, spec.cache_dir)


def failed_row(spec: RunSpec, error: BaseException) -> dict:
    """The row of a run that ended in `error` (call inside the except block: it keeps the
    traceback)."""
    return {"run_key": spec.key, "status": "failed", "method": spec.method,
            "spec": spec.to_dict(), "reason": f"{type(error).__name__}: {error}",
            "traceback": traceback.format_exc(limit=8)}


def load(spec: RunSpec):
    from clbudget.streams import GlyphsOptions, dataset_info, load_stream
    from clbudget.streams.multidomain import is_stream_spec, load_multidomain, parse_stream
    stream_spec = is_stream_spec(spec.dataset)   # several data sets or domains (--stream)
    if stream_spec:
        parse_stream(spec.dataset)
    else:
        dataset_info(spec.dataset)   # an unknown name is the first thing to report
    glyphs = None
    if spec.glyphs_options:
        if spec.dataset != "glyphs" and not stream_spec:
            raise ValueError(f"glyphs options apply to --dataset glyphs, not {spec.dataset!r}")
        options = dict(spec.glyphs_options)
        fields = {f.name for f in dataclasses.fields(GlyphsOptions)}
        for key in options:
            if key not in fields:
                from clbudget.streams.catalog import nearest
                raise ValueError(f"unknown glyphs option {key!r}; options: "
                                 f"{', '.join(sorted(fields))} (nearest: {nearest(key, fields)})")
        glyphs = GlyphsOptions(**check_fields(GlyphsOptions, options, "glyphs option"))
    if stream_spec:   # tasks and classes come from the spec: --init/--inc do not apply
        if spec.num_classes is not None:
            raise ValueError(f"--num-classes does not apply to --stream {spec.dataset}; "
                             f"give each data set's classes as NAME/K")
        return load_multidomain(spec.dataset, spec.data_root, class_order_seed=spec.order_seed,
                                max_per_class=spec.max_per_class,
                                max_test_per_class=spec.max_test_per_class,
                                cache_dir=spec.cache_dir, glyphs_options=glyphs,
                                sample_seed=spec.seed)
    return load_stream(spec.dataset, spec.data_root, spec.init, spec.inc,
                       class_order_seed=spec.order_seed, num_classes=spec.num_classes,
                       max_per_class=spec.max_per_class,
                       max_test_per_class=spec.max_test_per_class, cache_dir=spec.cache_dir,
                       glyphs_options=glyphs, sample_seed=spec.seed)


def to_device(stream, device) -> list[TaskData]:
    """The tasks on `device`.  On a domain-incremental stream every class is new in task 0
    and none later (`TaskData.classes` empty): heads hold all classes from task 0 on."""
    def t(a):
        return torch.from_numpy(np.ascontiguousarray(a)).to(device)
    later_empty = getattr(stream, "domain_incremental", False)
    return [TaskData(task.index, () if later_empty and task.index else tuple(task.classes),
                     t(task.train.x), t(task.train.y).long(), t(task.test.x),
                     t(task.test.y).long()) for task in stream.tasks]


def run_increments(stream, method: str) -> tuple[int, ...]:
    """New classes per task as methods see them: the stream's increments, or (K, 0, .., 0) on
    a domain-incremental stream, where only DOMAIN_INCREMENTAL_METHODS run."""
    if not getattr(stream, "domain_incremental", False):
        return tuple(stream.increments)
    from clbudget.streams.multidomain import DOMAIN_INCREMENTAL_METHODS, DOMAIN_REFUSALS
    if method not in DOMAIN_INCREMENTAL_METHODS:
        why = DOMAIN_REFUSALS.get(method, "its training or heads slice the classes new in each "
                                          "task, and later tasks bring none")
        raise ValueError(f"{method} does not run on the domain-incremental stream "
                         f"{stream.dataset_name}: {why}; methods that run there: "
                         f"{', '.join(DOMAIN_INCREMENTAL_METHODS)}")
    return (stream.num_classes,) + (0,) * (stream.num_tasks - 1)


def prepare(spec: RunSpec, stream=None):
    """Everything before training: stream, allocation, method.  Raises on bad input."""
    cls = method_class(spec.method)
    options = dict(spec.method_options)
    config = method_config(cls, options)
    spec.resolved_recipe()            # a bad recipe or option fails before any data is read
    device = resolve_device(spec.device)
    stream = stream if stream is not None else load(spec)
    shape = StreamShape(stream.num_tasks, tuple(stream.image_shape), stream.num_classes,
                        stream.input_dtype)
    if getattr(stream, "domain_incremental", False):   # the same classes in every task
        shape = dataclasses.replace(shape, domain_incremental=True)
    network = cls.network_input_shape(config, shape.image_shape)   # CLR's input_size
    if network != tuple(shape.image_shape):
        shape = dataclasses.replace(shape, network_input=network)
    features = shape.input_dtype != "uint8"   # a feature stream (streams/features.py)
    if features and spec.codec != "raw":
        raise ValueError(f"--codec {spec.codec} encodes images; a feature stream keeps its "
                         f"vectors at their dtype: use --codec raw")
    budget_bytes = parse_budget(
        spec.budget, image_shape=shape.image_shape, dtype=shape.exemplar_dtype,
        model_bytes=lambda name: backbone_stats(name, shape.image_shape).params_bytes)
    from clbudget.budget.storage import allocate_stored
    from clbudget.methods.codecs import estimate_bytes_per_image, parse_codec
    codec = parse_codec(spec.codec)
    per_image = (estimate_bytes_per_image(codec, torch.from_numpy(np.ascontiguousarray(stream.tasks[0].train.x)),
                                          spec.seed) if spec.codec != "raw" else None)
    allocation = allocate_stored(spec.method, budget_bytes, shape, backbone=spec.backbone,
                                 config=AllocatorConfig(convention=spec.convention),
                                 codec=codec.spec, bytes_per_image=per_image,
                                 store_dtype=spec.store_dtype)
    from clbudget.nets.mlp import CONV_METHODS
    if allocation.backbone == "resmlp" and spec.method in CONV_METHODS:
        raise ValueError(f"{spec.method} {CONV_METHODS[spec.method]}; resmlp has none: run "
                         f"{spec.method} on images with a CNN backbone")
    # the recipe and Mammoth's best args of this buffer size (methods/best_args.py)
    recipe = spec.resolved_recipe(allocation.n_exemplars)
    from clbudget.methods.best_args import choose, configure
    declared = declared_dataset(spec.dataset, spec.normalization)
    best = choose(cls, declared, allocation.n_exemplars, options, recipe.name,
                  imposed=spec.recipe is not None
                  and spec.recipe != reference_recipe(cls, declared, allocation.n_exemplars))
    config = configure(config, best, options)
    torch.manual_seed(spec.seed)
    generator = torch.Generator().manual_seed(spec.seed)
    train_x = np.concatenate([t.train.x for t in stream.tasks])
    if features:   # vectors: no augmentation, standardised per dimension or not at all
        from clbudget.train.features import feature_inputs
        recipe, norm, pipeline = feature_inputs(recipe, train_x, spec.normalization)
    else:
        norm = normalization_for(recipe, spec.dataset, train_x, spec.normalization)
        pipeline = Pipeline(norm.mean, norm.std, brightness=AUGMENTATIONS[recipe.augmentation])
    trainer = Trainer(device, pipeline, generator, amp=recipe.precision == "bf16")
    from clbudget.streams.multidomain import source_classes
    ctx = Context(shape, run_increments(stream, spec.method), allocation, trainer, recipe, norm,
                  dataset=spec.dataset, source_classes=source_classes(stream), best_args=best)
    return stream, ctx, cls(ctx, config)


def run_experiment(spec: RunSpec, *, progress: bool = False, stream=None, on_task=None,
                   checkpoints=None) -> dict:
    """Train `spec.method` through the stream; return the result row.

    checkpoints: a `checkpoint.Checkpoints`; the state is saved after every task and a
    checkpoint of this spec is resumed from (row["resumed_tasks"] = tasks it held).
    on_task(index, row) is called after each task's evaluation and checkpoint."""
    stream, ctx, method = prepare(spec, stream)
    ctx.trainer.progress = progress
    from clbudget.train.flops import FlopTally, flop_fields
    tally = ctx.trainer.flops = FlopTally()
    if ctx.device.type == "cuda":   # peak_memory_bytes: this run's, not the process's
        torch.cuda.reset_peak_memory_stats(ctx.device)
    tasks = to_device(stream, ctx.device)
    allocation = ctx.allocation
    T = len(tasks)
    done = {"tag": [[None] * T for _ in range(T)], "taw": [[None] * T for _ in range(T)],
            "seen_acc": [], "task_wall_s": [], "losses": [], "train_images": [],
            "elapsed_s": 0.0,
            # the method's other classifiers (iCaRL's CNN): the same three per name
            "also": {name: {"tag": [[None] * T for _ in range(T)],
                            "taw": [[None] * T for _ in range(T)], "seen_acc": []}
                     for name in type(method).also_scores}}
    start = 0
    if checkpoints is not None:
        saved = checkpoints.load(spec, ctx.device)
        if saved is not None:
            start = _restore(saved, method, ctx, done)
            tally.restore(done.pop("flops", None))
    tag, taw = done["tag"], done["taw"]
    seen_acc, task_wall_s, losses = done["seen_acc"], done["task_wall_s"], done["losses"]
    train_images = done["train_images"]
    t_start = time.perf_counter() - done["elapsed_s"]
    for task in tasks[start:]:
        t0, images_before = time.perf_counter(), ctx.trainer.images_processed
        method.begin_task(task)
        stats = method.learn(task)
        method.end_task(task)
        if ctx.device.type == "cuda":
            torch.cuda.synchronize()
        task_wall_s.append(time.perf_counter() - t0)
        train_images.append(ctx.trainer.images_processed - images_before + _extra_images(stats))
        losses.append(stats.get("loss", []) if isinstance(stats, dict) else [])
        check_budget(method, allocation, task.index)
        row = evaluate(method, tasks, task.index)
        for j in range(task.index + 1):
            taw[task.index][j] = row["taw"][j]
            if row["tag"] is not None:
                tag[task.index][j] = row["tag"][j]
        seen_acc.append(row["seen"])
        for name, attr in type(method).also_scores.items():
            other = evaluate(method, tasks, task.index, getattr(method, attr))
            into = done["also"][name]
            for j in range(task.index + 1):
                into["taw"][task.index][j] = other["taw"][j]
                into["tag"][task.index][j] = other["tag"][j]
            into["seen_acc"].append(other["seen"])
        if checkpoints is not None:
            done["elapsed_s"] = time.perf_counter() - t_start
            _save(checkpoints, spec, method, ctx, {**done, "flops": tally.state()},
                  task.index + 1)
        if on_task:
            on_task(task.index, row)
    wall_s = time.perf_counter() - t_start
    agnostic = seen_acc[0] is not None
    # every task-aware curve (the headline's, and each `also_scores` classifier's below) is the
    # accuracy over every seen test image, as the TAG one: tasks weigh by their test images
    sizes = [len(t.y_test) for t in tasks]
    aware = summarize(taw, [seen_accuracy(r[:i + 1], sizes) for i, r in enumerate(taw)])
    # a task-aware-only method (CLR) is headlined by its task-aware accuracy, labelled so
    accuracy = summarize(tag, seen_acc) if agnostic else dict(aware)
    accuracy["matrix"] = tag if agnostic else taw
    accuracy["setting"] = "task-agnostic" if agnostic else "task-aware"
    accuracy["task_aware"] = aware
    accuracy["task_aware"]["matrix"] = taw
    if type(method).headline:   # two classifiers: each named, the headline's also at the top
        accuracy["headline"] = type(method).headline
        accuracy["also"] = list(type(method).also_scores)
        accuracy[type(method).headline] = {k: v for k, v in accuracy.items()
                                           if k not in ("headline", "also")}
        for name, d in done["also"].items():
            accuracy[name] = summarize(d["tag"], d["seen_acc"])
            accuracy[name].update(matrix=d["tag"], setting="task-agnostic")
            accuracy[name]["task_aware"] = summarize(   # per image, as the headline's
                d["taw"], [seen_accuracy(r[:i + 1], sizes) for i, r in enumerate(d["taw"])])
            accuracy[name]["task_aware"]["matrix"] = d["taw"]
    strict = method.ledger("strict")
    return {
        "run_key": spec.key, "status": "finished", "method": spec.method,
        "spec": spec.to_dict(), "budget_bytes": allocation.budget_bytes,
        "budgeted": method.budgeted,
        "allocation": {k: v for k, v in allocation.to_dict().items() if k != "ledger"},
        "predicted_ledger": allocation.ledger.to_dict(),
        "ledger": strict.to_dict(), "ledger_memo": method.ledger("memo").to_dict(),
        "cost_figures": method.cost_figures(),
        "recipe": {**ctx.recipe.to_dict(), "fingerprint": ctx.recipe.fingerprint,
                   "imposed": spec.recipe is not None and spec.recipe != reference_recipe(
                       type(method), declared_dataset(spec.dataset, spec.normalization),
                       allocation.n_exemplars),
                   "applied_normalization": normalization_label(ctx.normalization)},
        # Mammoth's best args (derpp, ewc): the listed buffer size used and its file
        **({"best_args": ctx.best_args.to_dict(), "recipe_source": ctx.best_args.text()}
           if ctx.best_args is not None else {}),
        "normalization": applied_normalization(ctx),
        # {phase: epochs} of the phases that ran: --epochs moves task phases only
        "phase_epochs": {p: e for p, e in phase_epochs(ctx.recipe).items()
                         if p not in method.phases_not_run()},
        "phases_not_run": method.phases_not_run(),   # {phase: why}, e.g. CLR's weights file
        "train_images": sum(train_images), "train_images_per_task": train_images,
        "accuracy": accuracy, "num_tasks": T, "increments": list(stream.increments),
        "class_order": list(stream.class_order), "seed": spec.seed,
        "class_order_seed": spec.class_order_seed, "class_order_protocol": spec.class_order,
        "class_order_shuffle_seed": spec.order_seed, "losses": losses,
        "wall_s": wall_s, "task_wall_s": task_wall_s,
        "peak_memory_bytes": peak_memory(ctx.device), "environment": environment(ctx.device),
        "paper": cost_model(spec.method).paper if spec.method in _cost_names() else "",
        "resumed_tasks": start,
        **_memory_fields(method),
        "method_source": _method_source(spec.method),
        **({"data_sha256": spec.data_sha256, "feature_meta": _feature_meta(spec.data_root)}
           if spec.data_sha256 else {}),
        **flop_fields(tally, method, tasks),
    }


def _feature_meta(path) -> dict:
    """A feature file's recorded provenance (streams/features.py `read_meta`: the encoder, its
    input size and where that came from, ...), or where it cannot be read, why."""
    from clbudget.streams.features import read_meta
    try:
        return read_meta(path)
    except (OSError, ValueError, KeyError) as e:
        return {"unreadable": f"{type(e).__name__}: {e}"}


def applied_normalization(ctx) -> dict:
    """What normalised this run's inputs: the kind, source and data set of its
    `Normalization` with the mean and std the trainer's Pipeline applied."""
    pipeline = ctx.trainer.pipeline
    return {**ctx.normalization.to_dict(), "mean": list(pipeline.mean),
            "std": list(pipeline.std)}


def normalization_label(n) -> str:
    """"constants:pycil:cifar10" / "train-set" / "none" (feature streams): compared between
    runs (recipes.training_differs)."""
    return f"constants:{n.source}:{n.dataset}" if n.kind == "constants" else n.kind


def _memory_fields(method) -> dict:
    """Exemplars held and, for an encoded memory, its codec, bytes used of the buffer, the
    bytes of the transient decoded copy replay makes and the entries the reservoir dropped
    because the bytes were short (methods/codecs.py)."""
    memory = getattr(method, "memory", None)
    if memory is None:
        return {}
    out = {"exemplars_held": len(memory)}
    if hasattr(memory, "codec_spec"):
        out.update(codec=memory.codec_spec, codec_used_bytes=int(memory.used_bytes),
                   codec_buffer_bytes=int(memory.codes.numel()),
                   decoded_transient_bytes=int(memory.decoded_bytes()),
                   codec_evicted_for_bytes=int(memory.evicted_for_bytes))
    return out


def _extra_images(stats) -> int:
    """Training images a method processed outside this run's trainer (BMC's experts train
    with their own trainers, possibly in other processes, and report them)."""
    return int(stats.get("images_processed", 0)) if isinstance(stats, dict) else 0


def check_budget(method, allocation, task_index: int) -> None:
    """Refuse a ledger over budget.  The budget binds the ledger of the convention the
    allocation was sized under (`allocation.ledger.convention`): a memo-sized budget is
    checked against the memo ledger, a strict one against the strict ledger."""
    convention = allocation.ledger.convention
    ledger = method.ledger(convention)
    if method.budgeted and ledger.total_bytes > allocation.budget_bytes:
        raise BudgetExceeded(
            f"{allocation.method} holds {format_bytes(ledger.total_bytes)} ({convention} "
            f"convention) after task {task_index}, over its budget of "
            f"{format_bytes(allocation.budget_bytes)}: {ledger.by_kind()}")


def _save(checkpoints, spec: RunSpec, method, ctx, done: dict, tasks_done: int) -> None:
    from clbudget.experiment.checkpoint import rng_state
    checkpoints.save(spec, {"tasks_done": tasks_done, "method": method.state_dict(),
                            "rng": rng_state(ctx.trainer.generator, ctx.device),
                            # JSON keeps every float exactly and loads with weights_only
                            "progress": json.dumps(done, default=_plain)})


def _plain(obj):
    """A loss a method returned as a tensor or numpy number, as JSON sees it."""
    return obj.tolist() if hasattr(obj, "tolist") else str(obj)


def _restore(saved: dict, method, ctx, done: dict) -> int:
    """Put a checkpoint's state into a freshly prepared run; returns the tasks it holds."""
    from clbudget.experiment.checkpoint import set_rng_state
    method.load_state_dict(saved["method"])
    set_rng_state(saved["rng"], ctx.trainer.generator)
    done.update(json.loads(saved["progress"]))
    return int(saved["tasks_done"])


def run_guarded(spec: RunSpec, *, retry_smaller_batch: bool = False, **kw) -> dict:
    """run_experiment; on CUDA out of memory in training, once more at half the batch size
    when `retry_smaller_batch` (the row keeps `spec`'s run_key, its "spec" is the one that
    ran, "retry" says why).  Faults raise as they are (RUN_FAULTS)."""
    try:
        return run_experiment(spec, **kw)
    except OutOfMemory as e:
        if not retry_smaller_batch or e.batch_size < 2:
            raise
        first, half = str(e), e.batch_size // 2
    _free_cuda()
    smaller = dataclasses.replace(spec, batch_size=half)
    try:
        row = run_experiment(smaller, **kw)
    except OutOfMemory as e:
        again, before = str(e).split(";")[0], first.split(";")[0]
        raise OutOfMemory(f"{again}, the retry at half the batch size ({before}); rerun "
                          f"with --batch-size {max(1, e.batch_size // 2)}", e.batch_size) from None
    row["run_key"] = spec.key
    row["retry"] = {"reason": first, "batch_size": half, "run_key": smaller.key}
    return row


def _free_cuda() -> None:
    import gc
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _method_source(name: str):
    """Import path, file and SHA-256 of a user's method (None for a built-in)."""
    from clbudget.methods.registry import source
    return source(name)


def _cost_names():
    from clbudget.budget.costs import COST_MODELS
    return COST_MODELS


def peak_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    try:
        import resource
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
    except (ImportError, OSError):
        return 0
