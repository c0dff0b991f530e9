"""The `clbudget` command line.  Each subcommand is a thin shell over a function.

Errors a user can act on (bad budget, unknown method, infeasible protocol)
print one line `clbudget: error: ...` and exit with status 2, no traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys

from clbudget.cli_ecosystem import add_commands, emit   # data download, check-method
from clbudget.cli_encode import add_encode_command      # encode (feature streams)
from clbudget.cli_atlas import add_parser as add_atlas_command   # atlas (published claims)
from clbudget.budget.accountant import (CONVENTIONS, format_bytes, image_bytes,
                                        model_to_exemplars, parse_budget)
from clbudget.budget.allocator import POLICIES, AllocatorConfig, allocate_protocol
from clbudget.methods.codecs import parse_codec
from clbudget.budget.costs import COST_MODELS, StreamShape, cost_model, head_bytes
import clbudget.methods  # noqa: F401  (installs cost_model's loader of methods from outside)
from clbudget.nets.backbones import BACKBONES, backbone_stats
from clbudget.streams.catalog import DATASETS, dataset_info

UNITS_HELP = ("Budgets are bytes retained across task boundaries. Accepted: plain bytes "
              "(123456), decimal units (8MB = 8*10^6 B), binary units (7.63MiB = 7.63*2^20 B, "
              "1.5GiB), exemplars of the stream's image shape (2000ex: 2000 x C*H*W uint8 "
              "bytes), model equivalents (1xresnet32: one resnet32 under the chosen "
              "convention). Conventions: 'strict' counts every parameter, buffer, head, old "
              "model, label and logit at its stored dtype; 'memo' counts feature-extractor "
              "parameters x 4 bytes plus exemplar pixels, as in MEMO (ICLR 2023), whose "
              "tables say MB but mean MiB.")


class UsageError(ValueError):
    """Bad command-line input: reported in one line, exit status 2."""


def parse_image_shape(text: str) -> tuple[int, int, int]:
    try:
        shape = tuple(int(p) for p in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) <= 0:
        raise UsageError(f"bad image shape {text!r}: expected C,H,W with positive integers, "
                         f"e.g. 3,32,32 (CIFAR) or 1,28,28 (Fashion-MNIST)")
    return shape


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def stream_shape_args(args, need_protocol: bool = True):
    """(image_shape, num_classes) from --dataset and/or --image-shape/--num-classes."""
    shape, classes = None, None
    if getattr(args, "dataset", None):
        info = dataset_info(args.dataset)
        if info.reader == "features":
            raise UsageError("--dataset features has no fixed shape (its file has it); give "
                             "--image-shape and --num-classes, or run --features FILE")
        shape, classes = info.image_shape, info.num_classes or None
    if getattr(args, "image_shape", None):
        shape = parse_image_shape(args.image_shape)
    if getattr(args, "num_classes", None):
        if classes and args.num_classes > classes:
            raise UsageError(f"--num-classes {args.num_classes} exceeds the {classes} classes "
                             f"of {args.dataset}; use at most {classes}")
        classes = args.num_classes
    if shape is None:
        raise UsageError("give --dataset (e.g. cifar100) or --image-shape C,H,W")
    if need_protocol and not classes:
        raise UsageError("give --dataset or --num-classes N (the number of classes)")
    return shape, classes


def model_bytes_fn(image_shape, convention: str, num_classes: int = 0):
    def model_bytes(name: str) -> int:
        return describe_model(name, image_shape, convention, num_classes)["bytes"]
    return model_bytes


def describe_model(name: str, image_shape, convention: str, num_classes: int = 0) -> dict:
    if name not in BACKBONES:
        from clbudget.streams.catalog import nearest
        raise UsageError(f"unknown model {name!r}; known: {', '.join(BACKBONES)} "
                         f"(nearest: {nearest(name, BACKBONES)})")
    s = backbone_stats(name, tuple(image_shape))
    if convention == "memo":
        params, n_bytes = s.params, s.params_bytes
    else:
        head = head_bytes(s.out_dim, num_classes) if num_classes else 0
        params = s.params + head // 4
        n_bytes = s.state_bytes + head
    ex = image_bytes(image_shape)
    return {"model": name, "convention": convention, "image_shape": list(image_shape),
            "num_classes": num_classes, "params": params, "bytes": n_bytes,
            "buffer_bytes": 0 if convention == "memo" else s.buffers_bytes,
            "feature_dim": s.out_dim, "generalized_params": s.generalized_params,
            "specialized_params": s.specialized_params, "exemplar_bytes": ex,
            "exemplar_equivalent": round(model_to_exemplars(n_bytes, image_shape), 2)}


def table(rows: list[dict], columns: list[str]) -> str:
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c)
              for i, c in enumerate(columns)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells])


def cmd_methods(args) -> None:
    from clbudget.methods.registry import load_all
    METHODS = load_all()
    rows = [{"name": m.name, "paper": m.paper, "implemented": m.name in METHODS,
             "recipe": METHODS[m.name].recipe if m.name in METHODS else "",
             "dataset_recipes": dict(METHODS[m.name].dataset_recipes) if m.name in METHODS
             else {},
             "reference": _reference_of(METHODS.get(m.name)),
             "exemplars": m.uses_exemplars, "budgeted": m.budgeted,
             "retains": ", ".join(sorted(k for k in m.cost(
                 StreamShape(2, (3, 32, 32), 10), "resnet32", 10, "strict").by_kind()))}
            for m in COST_MODELS.values()]
    emit(args, {"methods": rows},
         table(rows, ["name", "recipe", "exemplars", "budgeted", "retains", "paper"])
         + "".join(f"\n{r['name']} on {d}: recipe {n}" for r in rows
                   for d, n in r["dataset_recipes"].items())
         + "\n(reference code per method: --json, field 'reference'; or the method's docstring)")


def _reference_of(cls) -> str:
    """The 'Reference:' line of a method module's docstring (the code it follows)."""
    import importlib
    if cls is None:
        return ""
    doc = importlib.import_module(cls.__module__).__doc__ or ""
    lines = doc.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Reference:"):
            text = [line[len("Reference:"):].strip()]
            for cont in lines[i + 1:]:
                if not cont.strip() or ":" in cont.split(" ")[0]:
                    break
                text.append(cont.strip())
            return " ".join(text)
    return ""


def cmd_recipes(args) -> None:
    from clbudget.train.recipes import RECIPES, get_recipe
    get_recipe("pycil-icarl")   # loads the reference recipes
    rows, lines = [], []
    for name in sorted(RECIPES):
        r = RECIPES[name]
        rows.append({**r.to_dict(), "fingerprint": r.fingerprint})
        lines.append(f"{name}  [{r.fingerprint}]  precision {r.precision}  augmentation "
                     f"{r.augmentation}  normalization {r.normalization}\n  source: {r.source}")
        for phase, c in r.phases:
            sched = (f"{c.schedule} {'/'.join(map(str, c.milestones))}"
                     if c.schedule == "multistep" else c.schedule)
            if c.schedule == "plateau":
                sched = f"plateau patience {c.patience} x{c.gamma:g}"
            extra = "".join(f"  {k} {v:g}" for k, v in (("mixup", c.mixup),
                                                         ("validation", c.validation)) if v)
            if c.sampler != "shuffle":
                extra += f"  sampler {c.sampler}"
            lines.append(f"  {phase:14s} {c.epochs:4d} ep  batch {c.batch_size:4d}  "
                         f"{c.optimizer} lr {c.lr:g}  momentum {c.momentum:g}  wd "
                         f"{c.weight_decay:g}  {sched}  augment {'on' if c.augment else 'off'}"
                         f"{extra}")
    emit(args, {"recipes": rows}, "\n".join(lines))


def cmd_budget_model(args) -> None:
    shape, classes = stream_shape_args(args, need_protocol=False)
    d = describe_model(args.name, shape, args.convention, classes or 0)
    text = (f"{d['model']} ({d['convention']} convention, images {'x'.join(map(str, shape))})\n"
            f"  parameters          {d['params']:,}\n"
            f"  bytes               {format_bytes(d['bytes'])}\n"
            f"  one exemplar        {d['exemplar_bytes']:,} B (uint8 pixels)\n"
            f"  exemplar equivalent {d['exemplar_equivalent']:.2f} exemplars")
    emit(args, d, text)


def cmd_budget_allocate(args) -> None:
    shape, classes = stream_shape_args(args)
    stream = StreamShape.from_protocol(shape, classes, args.init, args.inc)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise UsageError("--methods is empty; e.g. --methods replay,der,memo")
    for m in methods:
        cost_model(m)
    from clbudget.budget.storage import check_store_dtype
    for c in args.codec.split(","):      # bad codec / dtype names before any allocation
        parse_codec(c)
    for d in args.store_dtype.split(","):
        check_store_dtype(d.strip())
    config = AllocatorConfig(convention=args.convention)
    budget = None
    if args.budget is not None:
        budget = parse_budget(args.budget, image_shape=shape,
                              model_bytes=model_bytes_fn(shape, args.convention, classes))
    elif args.protocol == "fit":
        raise UsageError("give --budget (e.g. 7.63MiB, 2000ex, 1xresnet32) or a protocol "
                         "that sets its own budgets (--protocol memo-fair|memo-auc)")
    allocs = allocate_protocol(methods, stream, args.protocol, budget_bytes=budget,
                               backbone=args.backbone, config=config)
    allocs = storage_allocations(args, allocs, methods, stream, budget, config)
    obj = {"protocol": args.protocol, "convention": args.convention, "num_tasks": stream.num_tasks,
           "image_shape": list(shape), "num_classes": classes,
           "allocations": [a.to_dict() for a in allocs]}
    rows = [{"method": a.method + ("" if a.budgeted else " (not budgeted)"),
             "codec": a.codec, "store": a.store_dtype,
             "backbone": a.backbone, "x": a.expansion, "exemplars": f"{a.n_exemplars:,}",
             "per class": a.per_class_quota, "total": format_bytes(a.total_bytes),
             "budget": format_bytes(a.budget_bytes), "slack B": f"{a.slack_bytes:,}"}
            for a in allocs]
    head = (f"{args.protocol} allocation, {args.convention} convention, {stream.num_tasks} tasks, "
            f"{classes} classes of {'x'.join(map(str, shape))}\n")
    emit(args, obj, head + table(rows, list(rows[0])))


def storage_allocations(args, allocs, methods, stream, budget, config):
    """`budget allocate --codec/--store-dtype`: the allocation of every method under each
    codec x store dtype that applies to it (budget/storage.py); raw/fp32 as computed."""
    from clbudget.budget.storage import allocate_stored, applies
    from clbudget.methods.codecs import default_bytes_per_image, estimate_bytes_per_image
    codecs = [parse_codec(c).spec for c in args.codec.split(",") if c.strip()]
    dtypes = [d.strip() for d in args.store_dtype.split(",") if d.strip()]
    if codecs == ["raw"] and dtypes == ["fp32"]:
        return allocs
    if args.protocol != "fit":
        raise UsageError("--codec/--store-dtype allocate under the fit protocol (--budget)")
    import numpy as np
    import torch
    sample = None
    if args.sample:
        from clbudget.experiment.run import RunSpec, load
        st = load(RunSpec(method="replay", dataset=args.sample, data_root=args.data_root,
                          init=args.init, inc=args.inc, num_classes=args.num_classes))
        sample = torch.from_numpy(np.ascontiguousarray(st.tasks[0].train.x))
    out = []
    for m in methods:
        for c in codecs:
            for d in dtypes:
                if not applies(m, c, d):
                    continue
                codec = parse_codec(c)
                per = (estimate_bytes_per_image(codec, sample) if sample is not None
                       else default_bytes_per_image(codec, stream.image_shape))
                out.append(allocate_stored(m, budget, stream, backbone=args.backbone,
                                           config=config, codec=c, bytes_per_image=per,
                                           store_dtype=d))
    return out


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the --help to read."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def features_flag(args) -> None:
    """--features FILE is --dataset features --data-root FILE (streams/features.py)."""
    if getattr(args, "features", None):
        if args.data_root and args.data_root != args.features:
            raise UsageError("--features FILE is the data: drop --data-root")
        args.dataset, args.data_root = "features", args.features


def spec_from_args(args, method: str, budget: str):
    from clbudget.experiment.run import RunSpec
    features_flag(args)
    return RunSpec(method=method, dataset=args.dataset, budget=budget, init=args.init,
                   inc=args.inc, data_root=args.data_root, epochs=args.epochs,
                   batch_size=args.batch_size, lr=args.lr, seed=getattr(args, "seed", 0),
                   class_order_seed=args.class_order_seed, class_order=args.class_order,
                   normalization=args.normalization,
                   device=args.device,
                   num_classes=args.num_classes, max_per_class=args.max_per_class,
                   max_test_per_class=args.max_test_per_class, backbone=args.backbone,
                   convention=args.convention, cache_dir=args.cache_dir,
                   method_options=tuple(parse_options(args.option)),
                   glyphs_options=tuple(parse_options(args.glyphs, "--glyphs")),
                   recipe=args.recipe, precision=args.precision,
                   recipe_options=parse_recipe_options(args.recipe_option),
                   codec=parse_codec(args.codec).spec, store_dtype=args.store_dtype)


def cmd_run(args) -> None:
    from clbudget.experiment.store import ResultStore
    from clbudget.experiment.executors import with_bmc_executor
    spec = spec_from_args(args, args.method, args.budget)
    [spec] = with_bmc_executor([spec], args.bmc_executor)
    store = recording(ResultStore(args.out), args) if args.out else None  # fails before training
    checkpoints = checkpoints_from_args(args, store)
    with store.claim(spec.key) if store else contextlib.nullcontext(True) as mine:
        if not mine:
            raise UsageError(f"another clbudget process is running this run ({spec.key}) into "
                             f"{store.path}; wait for it to end")
        row = run_recorded(spec, store, checkpoints, args)
    acc = row["accuracy"]
    pct = lambda v: "n/a" if v is None else f"{100 * v:.2f}%"
    pp = lambda v: "n/a" if v is None else f"{100 * v:.2f} pp"
    # the ledger the budget binds: the convention the allocation was sized under
    binds = lambda c: "  (binds the budget)" if row["allocation"]["convention"] == c else ""
    protocol = "" if args.stream else f" B{args.init}Inc{args.inc}"
    text = (f"{row['method']} on {args.dataset}{protocol} ({row['num_tasks']} tasks), "
            f"seed {args.seed}\n"
            f"  budget              {format_bytes(row['budget_bytes'])}\n"
            f"  held (strict)       {format_bytes(row['ledger']['total_bytes'])}  "
            f"{row['allocation']['backbone']} x{row['allocation']['expansion']}, "
            f"{row['allocation']['n_exemplars']:,} exemplars{binds('strict')}\n"
            f"  held (memo)         {format_bytes(row['ledger_memo']['total_bytes'])}"
            f"{binds('memo')}\n"
            f"  last accuracy       {pct(acc['last'])} (task-aware "
            f"{pct(acc['task_aware']['last'])})\n"
            f"  avg incremental     {pct(acc.get('average_incremental'))}\n"
            f"  forgetting          {pp(acc.get('forgetting_chaudhry', acc.get('forgetting')))}"
            f" (Chaudhry); {pp(acc.get('forgetting_clipped'))} (clipped at 0, as PyCIL/Mammoth)\n"
            f"  wall time           {row['wall_s']:.1f} s on {row['environment']['device_name']}\n"
            f"  epochs per phase    "
            f"{', '.join(f'{p} {e}' for p, e in row.get('phase_epochs', {}).items())}"
            f"{''.join(f'; {p} not run ({why})' for p, why in row.get('phases_not_run', {}).items())}")
    from clbudget.analysis.compute import class_order_text, headline_text, normalization_text
    text += f"\n  normalization       {normalization_text(row)}"
    text += f"\n  class order         {class_order_text(row)}"
    if headline_text(row):
        text += f"\n  headline accuracy   {headline_text(row)}"
    for key, value in row["cost_figures"].items():
        text += f"\n  {key:<19} {value}"
    emit(args, row, text)
    checkpoints.discard(row["run_key"], (row.get("retry") or {}).get("run_key"))


def recording(store, args):
    """The store, set to record this command line in every row it adds (report provenance)."""
    store.command = getattr(args, "command_line", None)
    return store


def checkpoints_from_args(args, store):
    """--checkpoint-dir, else checkpoints/ beside the store, else the cache's checkpoints/."""
    from clbudget.experiment.checkpoint import Checkpoints, default_root
    root = args.checkpoint_dir or default_root(store.path if store else None)
    return Checkpoints(root, keep=args.keep_checkpoints)


def run_recorded(spec, store, checkpoints, args) -> dict:
    """Run (resuming a checkpoint); a fault (non-finite loss, out of memory, over budget) is
    stored as a failed row with its reason and raised as RunFailed (one line, exit 1)."""
    from clbudget.experiment.run import RUN_FAULTS, RunFailed, run_guarded
    from clbudget.experiment.run import failed_row
    try:
        row = run_guarded(spec, progress=not args.json and sys.stderr.isatty(),
                          checkpoints=checkpoints, retry_smaller_batch=args.retry_smaller_batch)
    except RUN_FAULTS as e:
        row = failed_row(spec, e)
        if store:
            store.add(row)
        checkpoints.discard(spec.key)
        where = f"; recorded as failed in {store.path}" if store else ""
        raise RunFailed(f"{spec.method} run failed: {row['reason']}{where}") from None
    if store:
        store.add(row)
    return row


def executor_from_args(args):
    """The sweep's executor: local (default) or Ray with its resources per cell."""
    from clbudget.experiment.executors import make_executor
    ray_flags = {"address": "--address", "gpus_per_run": "--gpus-per-run",
                 "cpus_per_run": "--cpus-per-run", "max_retries": "--max-retries",
                 "ship_data": "--ship-data"}
    given = {k: v for k in ray_flags if (v := getattr(args, k)) is not None and v is not False}
    if args.executor == "local" and given:
        raise UsageError(f"{', '.join(ray_flags[k] for k in given)} apply to --executor ray; "
                         f"add --executor ray or drop them")
    return make_executor(args.executor, **given)


def _recipe_label(spec) -> str:
    try:
        r = spec.resolved_recipe()
    except ValueError:
        return "?"
    return f"{r.name} [{r.fingerprint}]"


def cmd_sweep(args) -> None:
    from clbudget.experiment.executors import with_bmc_executor
    from clbudget.experiment import sweep
    from clbudget.experiment.store import ResultStore
    from clbudget.experiment.run import load
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise UsageError("--methods is empty; e.g. --methods replay,icarl,der")
    seeds = sweep.parse_seeds(args.seeds)
    base = spec_from_args(args, methods[0], "1B")
    from clbudget.experiment.run import check_options
    for m in methods:   # bad --option / --glyphs values: exit 2 before any data or cell
        check_options(dataclasses.replace(base, method=m))
    info = None if args.stream else dataset_info(args.dataset)
    if args.stream:   # tasks and shape from the stream itself
        stream = load(base)
        shape = StreamShape(stream.num_tasks, tuple(stream.image_shape), stream.num_classes,
                            domain_incremental=getattr(stream, "domain_incremental", False))
    elif base.glyphs_options:  # the generated data set's own size
        from clbudget.streams import GlyphsOptions
        g = dict(base.glyphs_options)
        size = g.get("image_size", GlyphsOptions.image_size)
        shape = StreamShape.from_protocol((3, size, size), args.num_classes or g.get(
            "num_classes", GlyphsOptions.num_classes), args.init, args.inc)
    elif info.num_classes:  # shape from metadata: no data needed to plan
        shape = StreamShape.from_protocol(info.image_shape, args.num_classes or info.num_classes,
                                          args.init, args.inc)
    else:
        stream = load(base)
        shape = StreamShape(stream.num_tasks, tuple(stream.image_shape), stream.num_classes,
                            stream.input_dtype)
    budgets = ()
    if args.budgets:
        if args.protocol and args.protocol != "fit":
            raise UsageError(f"give --budgets or --protocol {args.protocol}, not both")
        budgets = sweep.parse_budget_list(args.budgets, image_shape=shape.image_shape,
                                          model_bytes=model_bytes_fn(shape.image_shape, "memo"),
                                          dtype=shape.exemplar_dtype)
    cells = sweep.plan(methods, seeds, base, shape, budgets=budgets, protocol=args.protocol)
    from clbudget.budget.storage import expand_storage
    cells = expand_storage(cells, args.codecs, args.store_dtypes)
    cells = with_bmc_executor(cells, args.bmc_executor)
    for line in sweep.recipe_warnings(cells):     # methods trained with differing recipes
        print(line, file=sys.stderr)
    executor = executor_from_args(args)   # bad executor options fail before anything runs
    store = recording(ResultStore(args.out), args)
    plan_rows = []
    for c in cells:
        a = sweep.allocation_of(c, shape)
        plan_rows.append({"method": c.method, "budget": c.budget, "codec": c.codec,
                          "store_dtype": c.store_dtype,
                          "bytes": format_bytes(sweep.budget_bytes(c.budget, shape.image_shape,
                                                                   shape.exemplar_dtype)),
                          "seed": c.seed, "recipe": _recipe_label(c),
                          "status": store.status(c.key) or "to run",
                          "backbone": a.backbone if not isinstance(a, str) else "-",
                          "exemplars": a.n_exemplars if not isinstance(a, str) else "-",
                          "allocation": a.to_dict() if not isinstance(a, str) else a})
    if args.dry_run:
        text = f"{len(cells)} cells ({shape.num_tasks} tasks), store {store.path}\n"
        emit(args, {"cells": plan_rows}, text + table(
            plan_rows, ["method", "budget", "bytes", "codec", "store_dtype", "seed", "recipe",
                        "backbone", "exemplars", "status"]))
        return
    summary = sweep.run_cells(cells, store, progress=not args.json and sys.stderr.isatty(),
                              retry_failed=args.retry_failed, executor=executor,
                              checkpoints=checkpoints_from_args(args, store),
                              retry_smaller_batch=args.retry_smaller_batch)
    text = (f"sweep: {summary['finished']} finished, {summary['failed']} failed, "
            f"{summary['skipped']} already done, of {summary['cells']} cells "
            f"in {summary['wall_s']:.1f} s; store {store.path}")
    obj = {**summary, "store": str(store.path)}
    if args.report:
        report_obj, report_text = make_report(store.path, args.report)
        obj["report"], text = report_obj, text + "\n" + report_text
    emit(args, obj, text)


def existing_store(path):
    """The results store at PATH (a sweep folder or an SQLite file); never creates one."""
    from pathlib import Path
    from clbudget.experiment.store import ResultStore
    p = Path(path)
    found = (p / "results.sqlite").is_file() if p.is_dir() else p.is_file()
    if not found:
        raise UsageError(f"no results store at {path} (expected {p / 'results.sqlite'} or an "
                         f"SQLite file); run `clbudget sweep ... --out {path}` first")
    return ResultStore(p)


def cmd_report(args) -> None:
    emit(args, *make_report(args.dir, args.out, args.figures, forgetting=args.forgetting))


def make_report(store_dir, out=None, figures=None, forgetting="chaudhry") -> tuple[dict, str]:
    """Write the report of a store; (JSON object, text summary)."""
    from pathlib import Path
    from clbudget.analysis.report import json_safe, write_report
    store = existing_store(store_dir)
    rows = store.rows()
    if not rows:
        raise UsageError(f"{store.path} holds no runs; run `clbudget sweep ... --out {store_dir}`")
    out = Path(out) if out else Path(store_dir) / "report"
    result = write_report(rows, out, figures_dir=figures, forgetting=forgetting)
    report, files = result["report"], result["files"]
    obj = {"out": str(out), "files": files, "n_finished": report["n_finished"],
           "n_failed": report["n_failed"], "settings": report["settings"],
           "auc": [{"setting": a["setting_label"], "method": a["label"], "unit": a["unit"],
                    "auc_a": a["auc_a"], "auc_l": a["auc_l"], "unit_pct": a["unit_pct"],
                    "auc_a_pct": a["auc_a_pct"], "auc_l_pct": a["auc_l_pct"],
                    "budgets_bytes": a["budgets_bytes"]}
                   for a in report["auc"]],
           "forgetting": report["forgetting"],
           "failed": report["failed"], "recipe_warnings": report["recipe_warnings"]}
    for line in report["recipe_warnings"]:
        print(f"warning: {line}", file=sys.stderr)
    text = (f"report of {report['n_finished']} finished and {report['n_failed']} failed runs "
            f"({', '.join(report['settings']) or 'no setting'})\n"
            f"  html       {files['html']}\n  markdown   {files['markdown']}\n"
            f"  table      {files['csv']} (AUC: {files['auc_csv']})\n"
            f"  figures    {len(files['figures'])} x PNG + PDF in {out / 'figures'}")
    for path in files["copied"]:
        text += f"\n  copied     {path}"
    for f in report["failed"]:
        text += f"\n  failed: {f['method']} budget {f['budget']} seed {f['seed']}: {f['reason']}"
    return json_safe(obj), text


def cmd_audit(args) -> None:
    from clbudget.analysis.audit import claim_budget_bytes, load_claim, render_audit, run_audit
    from clbudget.analysis.report import json_safe
    from clbudget.experiment.store import ResultStore
    if not args.claim and not args.store:
        raise UsageError("give a claim file (YAML or JSON) and/or --store DIR, e.g. "
                         "clbudget audit examples/claims/der_vs_icarl.yaml --store DIR")
    claim = load_claim(args.claim) if args.claim else None
    if claim is None and args.budget:
        raise UsageError("--budget sets a claim's aligned budget; give a claim file")
    if claim is not None and args.metric:
        raise UsageError("with a claim file, its 'metric' key says what the accuracies are; "
                         "drop --metric")
    if args.run and not args.store:
        raise UsageError("--run needs --store DIR: the results store to write the runs to")
    store = None
    if args.store:
        store = recording(ResultStore(args.store), args) if args.run else existing_store(args.store)
    result = run_audit(store, claim, run=args.run,
                       budget_bytes=claim_budget_bytes(claim, args.budget) if args.budget else None,
                       metric=args.metric or "last", tolerance=args.tolerance,
                       device=args.device, data_root=args.data_root, epochs=args.epochs,
                       progress=not args.json and sys.stderr.isatty())
    for pair in result.get("pairs", ()):        # unequal training beside equal bytes
        for f in pair.get("flags", ()):
            if f.get("kind") == "recipe":
                print(f"warning: {pair.get('label_a')} vs {pair.get('label_b')}: "
                      f"{f['message']}", file=sys.stderr)
    emit(args, json_safe(result), render_audit(result))


def parse_options(pairs, flag: str = "--option") -> list:
    """key=value pairs (value parsed as JSON when it is JSON, else kept as text)."""
    out = []
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} expects key=value, got {pair!r}")
        try:
            out.append((key, json.loads(value)))
        except json.JSONDecodeError:
            out.append((key, value))
    # a key given twice (a config file's, then the command line's): the later value wins
    last = {key: value for key, value in out}
    return [(key, last[key]) for key in dict.fromkeys(key for key, _ in out)]


def parse_recipe_options(pairs) -> tuple:
    """--recipe-option PHASE.FIELD=VALUE or PHASE={"field": value, ...} -> ((phase, {..}), ..)."""
    merged: dict = {}
    for key, value in parse_options(pairs, "--recipe-option"):
        phase, dot, field = key.partition(".")
        if dot:
            merged.setdefault(phase, {})[field] = value
        elif isinstance(value, dict):
            merged.setdefault(phase, {}).update(value)
        else:
            raise UsageError(f"--recipe-option expects PHASE.FIELD=VALUE (e.g. later.epochs=5) "
                             f"or PHASE={{...}}, got {key}={value!r}")
    return tuple(merged.items())


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="clbudget", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Memory-budget-aware evaluation of class-incremental continual "
                    "learning.\n\n" + UNITS_HELP)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                         parser_class=Parser)

    m = sub.add_parser("methods", help="list the methods, what they retain, their papers")
    m.add_argument("--json", action="store_true", help="print one JSON object")
    m.set_defaults(func=cmd_methods)

    rc = sub.add_parser("recipes", help="the training recipes: phases, optimisation, precision")
    rc.add_argument("--json", action="store_true", help="print one JSON object")
    rc.set_defaults(func=cmd_recipes)

    b = sub.add_parser("budget", help="bytes of models; allocate a budget to methods",
                       description=UNITS_HELP)
    bsub = b.add_subparsers(dest="budget_command", required=True, metavar="SUBCOMMAND",
                           parser_class=Parser)

    def common(q, classes_help):
        q.add_argument("--dataset", help=f"resolves image shape and classes: {', '.join(DATASETS)}")
        q.add_argument("--image-shape", help="C,H,W of one stored uint8 image, e.g. 3,32,32")
        q.add_argument("--num-classes", type=positive_int, help=classes_help)
        q.add_argument("--convention", choices=CONVENTIONS, default="strict",
                       help="strict (default): everything at its dtype; memo: feature-extractor "
                            "parameters x 4 B + exemplar pixels")
        q.add_argument("--json", action="store_true", help="print one JSON object")

    bm = bsub.add_parser("model", help="parameters and bytes of a backbone, in exemplars",
                         description="Bytes of one model and how many uint8 exemplars they buy. "
                                     + UNITS_HELP)
    bm.add_argument("name", help=f"backbone: {', '.join(BACKBONES)}")
    common(bm, "strict convention: include a linear head over N classes")
    bm.set_defaults(func=cmd_budget_model, image_shape_default="3,32,32")

    ba = bsub.add_parser("allocate", help="spend one budget per method",
                         description="Spend a budget per method: backbone, expansion, "
                                     "exemplars, ledger. " + UNITS_HELP)
    ba.add_argument("--budget", help="bytes each method may retain, e.g. 7.63MiB, 8MB, 2000ex, "
                                     "1xresnet32 (omit for memo-fair / memo-auc)")
    ba.add_argument("--methods", required=True, help="comma-separated, e.g. replay,icarl,der,memo")
    ba.add_argument("--init", type=positive_int, required=True,
                    help="classes in the first task (0: same as --inc, i.e. B0IncJ)")
    ba.add_argument("--inc", type=positive_int, required=True, help="classes per later task")
    ba.add_argument("--protocol", choices=POLICIES, default="fit",
                    help="fit (default): model fixed, exemplars fill; memo-fair / memo-auc: the "
                         "MEMO paper's protocols")
    ba.add_argument("--backbone", help="fix the backbone (default: resnet32 for <=64 px images, "
                                       "resnet18 above; DER/MEMO climb the ladder)")
    common(ba, "number of classes (keeps the first N of the class order)")
    ba.add_argument("--codec", default="raw",
                    help="exemplar codec(s), comma-separated: raw (default), jpeg:Q, png, down:S")
    ba.add_argument("--store-dtype", default="fp32",
                    help="store dtype(s) of the frozen networks, comma-separated: fp32 (default), "
                         "fp16, bf16, int8 (weight-only)")
    ba.add_argument("--sample", metavar="DATASET",
                    help="measure jpeg/png bytes per image on 256 training images of this data "
                         "set (with --data-root); default: a CIFAR-10 table scaled by pixels")
    ba.add_argument("--data-root", help="--sample: folder of the data set")
    ba.set_defaults(func=cmd_budget_allocate)

    r = sub.add_parser("run", help="train one method through a stream under a byte budget",
                       description="Train one method on a class-incremental stream under a "
                                   "budget and report accuracy and bytes held. " + UNITS_HELP)
    r.add_argument("--method", required=True, help="a name from `clbudget methods`, or your "
                                                    "own: pkg.module:Class (README 'Your own "
                                                    "method')")
    r.add_argument("--budget", required=True, help="bytes retained, e.g. 6MiB, 1xresnet32+2000ex")
    r.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    add_stream_args(r)
    r.add_argument("--out", help="results store (SQLite file or folder) to append the row to")
    r.set_defaults(func=cmd_run)

    w = sub.add_parser("sweep", help="methods x budgets x seeds on one stream, resumable",
                       description="Run every (method, budget, seed) cell on one stream into a "
                                   "results store; rerunning the same command runs only the "
                                   "missing cells. A finetune reference per seed is added so "
                                   "relative time is defined. " + UNITS_HELP)
    w.add_argument("--methods", required=True, help="comma-separated, e.g. replay,icarl,der "
                                                     "or pkg.module:Class")
    w.add_argument("--budgets", help="a list (2000ex,5000ex) or a range LOW:HIGH:COUNT "
                                     "(7.6MiB:23.5MiB:5)")
    w.add_argument("--protocol", choices=POLICIES, help="memo-auc / memo-fair: the MEMO "
                                                         "paper's budgets instead of --budgets")
    w.add_argument("--seeds", default="0", help="e.g. 0,1,2 or 0-2 (default 0)")
    w.add_argument("--codecs", help="exemplar codecs as a sweep dimension, e.g. "
                                    "raw,jpeg:75,jpeg:50,down:16 (default: --codec)")
    w.add_argument("--store-dtypes", help="store dtypes of the frozen networks as a sweep "
                                          "dimension, e.g. fp32,fp16,int8 (default: "
                                          "--store-dtype)")
    add_stream_args(w)
    w.add_argument("--out", required=True, help="sweep folder (holds results.sqlite)")
    w.add_argument("--dry-run", action="store_true", help="print the cells and allocations, run nothing")
    w.add_argument("--retry-failed", action="store_true", help="run failed cells again")
    w.add_argument("--report", metavar="DIR", help="when the sweep ends, write its report "
                                                   "(HTML, Markdown, CSV, figures) into DIR")
    w.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local (default): cells one after another here; ray: every cell a Ray "
                        "task (needs the extra clbudget[ray]; README 'Beyond one machine')")
    w.add_argument("--address", help="--executor ray: the cluster, auto (an existing one), "
                                     "local (a new one here) or HOST:PORT (default: RAY_ADDRESS, "
                                     "else a cluster started here with `ray start`, else new)")
    w.add_argument("--gpus-per-run", type=float, metavar="G",
                   help="--executor ray: GPUs per cell, e.g. 0.25 (default: 1 if the cluster "
                        "has GPUs and --device is not cpu, else 0)")
    w.add_argument("--cpus-per-run", type=float, metavar="N",
                   help="--executor ray: CPUs per cell, also its torch threads (default 1)")
    w.add_argument("--max-retries", type=positive_int, metavar="N",
                   help="--executor ray: retries of a cell whose worker died or that raised a "
                        "non-deterministic error, before it is recorded failed (default 2)")
    w.add_argument("--ship-data", action="store_true",
                   help="--executor ray: load each stream once here and put it in Ray's object "
                        "store (workers need not see --data-root)")
    w.set_defaults(func=cmd_sweep)

    rp = sub.add_parser("report", help="figures, HTML/Markdown report and CSV of a sweep folder",
                        description="Figures (accuracy vs budget, Pareto front, accuracy vs "
                                    "relative time, per-task accuracy, ledger breakdown; PNG + "
                                    "PDF), a self-contained HTML report, a Markdown summary and "
                                    "CSV tables of a sweep folder's results store.")
    rp.add_argument("dir", metavar="DIR", help="sweep folder holding results.sqlite")
    rp.add_argument("--out", help="where to write (default DIR/report)")
    rp.add_argument("--figures", help="also copy the Pareto PNG into this folder (e.g. figures/)")
    rp.add_argument("--forgetting", choices=("chaudhry", "clipped"), default="chaudhry",
                    help="forgetting the tables show (table.csv has both): chaudhry (default), "
                         "max over the rows before the last (Chaudhry et al. 2018), can be "
                         "negative; clipped, max over all rows, never below 0, as PyCIL and "
                         "Mammoth report it")
    rp.add_argument("--json", action="store_true", help="print one JSON object")
    rp.set_defaults(func=cmd_report)

    au = sub.add_parser("audit", help="fairness audit of a claim file or a results store",
                        description="Memory of each compared method under both conventions, "
                                    "whether budgets were aligned, and the comparison at aligned "
                                    "budgets with a 95% CI (paired t-test on matching seeds, "
                                    "else Welch). Claim schema: clbudget/analysis/audit.py, "
                                    "example: examples/claims/der_vs_icarl.yaml.")
    au.add_argument("claim", nargs="?", metavar="CLAIM", help="claim file (.yaml, .yml, .json)")
    au.add_argument("--store", help="results store (sweep folder or SQLite file) to read runs "
                                    "from; alone: audit every pair of methods in it")
    au.add_argument("--run", action="store_true", help="run the missing aligned cells into "
                                                        "--store first (trains!)")
    au.add_argument("--budget", help="aligned budget for the claim (default: per pair, the "
                                     "larger memory), e.g. 18.5MiB")
    au.add_argument("--metric", choices=("last", "average_incremental"),
                    help="store audit: accuracy compared (default last)")
    au.add_argument("--tolerance", type=float, default=0.01,
                    help="budgets / ledger totals within this fraction count as equal (0.01)")
    au.add_argument("--epochs", type=positive_int, help="--run: epochs of the runs")
    au.add_argument("--device", default="auto", help="--run: auto (default), cpu or cuda[:N]")
    au.add_argument("--data-root", help="--run: folder of the data set")
    au.add_argument("--json", action="store_true", help="print one JSON object")
    au.set_defaults(func=cmd_audit)

    add_commands(sub)
    add_encode_command(sub)
    add_atlas_command(sub)
    return p


def normalization_choice(text: str) -> str:
    """--normalization's value checked (train/recipes.py `parse_normalization`)."""
    from clbudget.train.recipes import parse_normalization
    try:
        parse_normalization(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text.strip().lower()


def add_stream_args(r) -> None:
    """Arguments shared by `run` and `sweep`: the stream and how to train on it."""
    r.add_argument("--dataset", default="glyphs", help=f"one of {', '.join(DATASETS)}")
    r.add_argument("--data-root", help="folder of the data set (not needed for glyphs)")
    r.add_argument("--features", metavar="FILE", help="a feature file (.npz/.pt: train_x, "
                   "train_y, test_x, test_y; `clbudget encode` writes one) instead of images: "
                   "--dataset features --data-root FILE (README 'Feature streams')")
    r.add_argument("--stream", help="several data sets or domains instead of --dataset: "
                   "NAME[/K][:T]+NAME[/K][:T]... (multi-domain, e.g. cifar10:2+fashion-mnist:2+"
                   "glyphs/10:1) or NAME[/K]@D0,D1,... (domain-incremental); --data-root "
                   "NAME=PATH,... (streams/multidomain.py)")
    r.add_argument("--init", type=positive_int, help="classes of the first task (0: --inc)")
    r.add_argument("--codec", default="raw", help="exemplar codec: raw (default), jpeg:Q, png, "
                                                  "down:S (README 'Spending bytes')")
    r.add_argument("--store-dtype", default="fp32", choices=("fp32", "fp16", "bf16", "int8"),
                   help="dtype the frozen networks are held at: teachers (lwf, icarl, wa), old "
                        "backbones (der), old specialized blocks (memo, memo2), the backbone "
                        "(clr); int8 is weight-only (default fp32)")
    r.add_argument("--inc", type=positive_int, help="classes per later task")
    r.add_argument("--epochs", type=positive_int,
                   help="epochs of the phases that train on the task (BMC's experts, CLR's "
                        "task, MIND's distillation; others keep their recipe's, see --recipe-option; default: "
                        "the paper's)")
    r.add_argument("--batch-size", type=positive_int, help="default: the paper's")
    r.add_argument("--lr", type=float,
                   help="learning rate of the task phases, as --epochs (default: the paper's)")
    r.add_argument("--normalization", default="recipe", type=normalization_choice,
                   help="recipe (default: the recipe's published constants for --dataset, "
                        "else the training set's mean/std), train-set, or SOURCE:DATASET "
                        "constants, e.g. pycil:cifar10 for a CIFAR-10 ImageFolder tree "
                        "(which also picks the DATASET's recipe for Mammoth's methods)")
    r.add_argument("--class-order", default="fixed", choices=("fixed", "per-seed", "unshuffled"),
                   help="fixed (default): every seed shuffles the classes with "
                        "--class-order-seed; per-seed: with the run's own --seed, as PyCIL run "
                        "with several seeds (seed CIs then include class-order variance); "
                        "unshuffled: the data set's label order (PyCIL shuffle false)")
    r.add_argument("--class-order-seed", type=int, default=1993,
                   help="seed of the fixed class order (default 1993, PyCIL's)")
    r.add_argument("--device", default="auto", help="auto (default), cpu or cuda[:N]")
    r.add_argument("--num-classes", type=positive_int, help="keep the first N classes of the order")
    r.add_argument("--max-per-class", type=positive_int, help="cap training images per class")
    r.add_argument("--max-test-per-class", type=positive_int, help="cap test images per class")
    r.add_argument("--backbone", help="fix the backbone (default: the allocator's choice)")
    r.add_argument("--convention", choices=CONVENTIONS, default="strict",
                   help="which ledger the budget binds (both are reported)")
    r.add_argument("--recipe", help="train every method with this recipe (`clbudget recipes`; "
                   "default: each method's reference recipe)")
    r.add_argument("--recipe-option", action="append", metavar="PHASE.FIELD=VALUE",
                   help="change one field of a recipe phase, e.g. later.epochs=5; repeatable")
    r.add_argument("--precision", choices=("fp32", "bf16"),
                   help="training and evaluation precision (default: the recipe's, fp32)")
    r.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="a field of the method's hyper-parameter dataclass, repeatable")
    r.add_argument("--glyphs", action="append", metavar="KEY=VALUE",
                   help="glyphs data set: num_classes, train_per_class, test_per_class, "
                        "image_size, seed, style (synbols|plain); repeatable")
    r.add_argument("--cache-dir", help="decoded-data cache (default $CLBUDGET_CACHE or ~/.cache/clbudget)")
    r.add_argument("--bmc-executor", choices=("local", "ray"), default="local",
                   help="bmc: train each expert here (local, default) or as a Ray task whose "
                        "buffer comes back through the object store (ray)")
    r.add_argument("--json", action="store_true", help="print one JSON object")
    add_fault_args(r)


def add_fault_args(r) -> None:
    """`run` and `sweep`: config file, checkpoints, out-of-memory retry."""
    r.add_argument("--config", metavar="FILE", help="YAML or JSON file of defaults for these "
                   "flags (keys: flag names with underscores, e.g. budget, epochs, option); "
                   "flags given here override it")
    r.add_argument("--checkpoint-dir", metavar="DIR",
                   help="where runs save their state after each task, to resume when rerun "
                        "(default: checkpoints/ beside --out, else $CLBUDGET_CACHE/checkpoints)")
    r.add_argument("--keep-checkpoints", action="store_true",
                   help="keep a run's checkpoint after its row is stored")
    r.add_argument("--retry-smaller-batch", action="store_true",
                   help="on CUDA out of memory, run once more at half the batch size")


def stream_or_protocol(parser, args, argv) -> None:
    """--stream SPEC stands for --dataset (its tasks come from SPEC); else --init/--inc are
    required."""
    if args.stream:
        given = [f for f in ("--dataset", "--init", "--inc", "--num-classes", "--features")
                 if any(a == f or a.startswith(f + "=") for a in argv)]
        if given:
            parser.error(f"{', '.join(given)} do not apply to --stream (its spec gives the data "
                         f"sets, classes NAME/K and tasks NAME:T)")
        args.dataset, args.init, args.inc = args.stream, 0, 0
    elif args.init is None or args.inc is None:
        parser.error("the following arguments are required: --init, --inc (or give --stream)")


def main(argv=None) -> int:
    from clbudget.configfile import apply_config
    from clbudget.experiment.run import RunFailed
    from clbudget.experiment.store import StoreWriteError
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        apply_config(parser, argv)   # --config FILE: its values become the flags' defaults
    except ValueError as e:
        print(f"clbudget: error: {e}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    import shlex
    args.command_line = "clbudget " + shlex.join(argv)
    if hasattr(args, "stream"):
        stream_or_protocol(parser, args, argv)
    if getattr(args, "image_shape_default", None) and not (args.image_shape or args.dataset):
        args.image_shape = args.image_shape_default
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("clbudget: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and closed: not an error
        sys.stdout = open(os.devnull, "w")
        return 0
    except (RunFailed, StoreWriteError) as e:  # a fault, recorded where it could be: one line
        print(f"clbudget: error: {e}", file=sys.stderr)
        return 1
    except (ValueError, KeyError) as e:  # user errors: one line, no traceback
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"clbudget: error: {msg}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
