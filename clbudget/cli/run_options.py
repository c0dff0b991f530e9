"""The flags `run` and `sweep` share: the stream, how to train on it, the method's options,
faults (config file, checkpoints, out-of-memory retry), and the RunSpec they make."""
from __future__ import annotations

import argparse
import json

from clbudget.budget.accountant import CONVENTIONS
from clbudget.cli.common import UsageError, add_device_flag, add_json_flag, positive_int
from clbudget.methods.codecs import parse_codec
from clbudget.streams.catalog import DATASETS


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
    r.add_argument("--class-order", choices=("fixed", "per-seed", "unshuffled"),
                   help="fixed (run's default): every seed shuffles the classes with "
                        "--class-order-seed; per-seed (sweep's default): with the run's own "
                        "--seed, as PyCIL run with several seeds (seed CIs then include "
                        "class-order variance; seed 1993 is the fixed order); unshuffled: the "
                        "data set's label order (PyCIL shuffle false)")
    r.add_argument("--class-order-seed", type=int, default=1993,
                   help="seed of the fixed class order (default 1993, PyCIL's)")
    add_device_flag(r)
    r.add_argument("--threads", type=threads_choice,  # threads: experiment/threads.py
                   help="torch CPU threads: N or auto. Default: $CLBUDGET_THREADS, else "
                        "$OMP_NUM_THREADS, else auto: the CPUs the load average leaves idle, "
                        "at least 1 (BENCHMARKS 'Runs on a busy machine')")
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
    add_json_flag(r)
    add_fault_args(r)


def threads_choice(text: str):   # threads: --threads checked (experiment/threads.py)
    from clbudget.experiment.threads import parse_threads
    try:
        return parse_threads(text, source="") or "auto"
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


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


def normalization_choice(text: str) -> str:
    """--normalization's value checked (train/recipes.py `parse_normalization`)."""
    from clbudget.train.recipes import parse_normalization
    try:
        parse_normalization(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text.strip().lower()


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
                   class_order_seed=args.class_order_seed,
                   class_order=args.class_order or "fixed",   # sweep: cmd_sweep's default
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
