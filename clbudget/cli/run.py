"""`clbudget run` (one method through a stream under a byte budget) and `clbudget sweep`
(methods x budgets x seeds into a results store, resumable; experiment/sweep.py)."""
from __future__ import annotations

import contextlib
import dataclasses
import sys

from clbudget.budget.accountant import format_bytes
from clbudget.budget.allocator import POLICIES
from clbudget.budget.costs import StreamShape
from clbudget.cli.budget import model_bytes_fn
from clbudget.cli.common import UNITS_HELP, UsageError, emit, positive_int, recording, table
from clbudget.cli.report import make_report
from clbudget.cli.run_options import add_stream_args, spec_from_args
from clbudget.streams.catalog import dataset_info


def add_parser(sub) -> None:
    """`run` and `sweep`."""
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
        from clbudget.experiment.threads import torch_threads
        with torch_threads(args.threads):   # threads: --threads N, else the auto choice
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
    if row.get("recipe_source"):   # Mammoth's best args (derpp, ewc): which listed buffer size
        text += f"\n  best args           {row['recipe_source']}"
    if headline_text(row):
        text += f"\n  headline accuracy   {headline_text(row)}"
    for key, value in row["cost_figures"].items():
        text += f"\n  {key:<19} {value}"
    emit(args, row, text)
    checkpoints.discard(row["run_key"], (row.get("retry") or {}).get("run_key"))


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
    return make_executor(args.executor, threads=args.threads, **given)   # threads: --threads


def _recipe_label(spec, allocation=None) -> str:
    """"name [fingerprint]" of the recipe a cell trains with, at its allocation's buffer
    (Mammoth's best args pick the recipe by buffer size: methods/best_args.py)."""
    n = getattr(allocation, "n_exemplars", None)
    try:
        r = spec.resolved_recipe(n)
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
    order = args.class_order   # none named: per-seed, or the fixed order of a store's runs
    if order is None:
        order, note = sweep.default_class_order(cells, store)
        cells = [dataclasses.replace(c, class_order=order) for c in cells]
        if note:
            print(note, file=sys.stderr)
    plan_rows = []
    for c in cells:
        a = sweep.allocation_of(c, shape)
        plan_rows.append({"method": c.method, "budget": c.budget, "codec": c.codec,
                          "store_dtype": c.store_dtype,
                          "bytes": format_bytes(sweep.budget_bytes(c.budget, shape.image_shape,
                                                                   shape.exemplar_dtype)),
                          "seed": c.seed, "recipe": _recipe_label(c, a),
                          "status": store.status(c.key) or "to run",
                          "backbone": a.backbone if not isinstance(a, str) else "-",
                          "exemplars": a.n_exemplars if not isinstance(a, str) else "-",
                          "allocation": a.to_dict() if not isinstance(a, str) else a})
    if args.dry_run:
        text = (f"{len(cells)} cells ({shape.num_tasks} tasks, class order {order}), "
                f"store {store.path}\n")
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
