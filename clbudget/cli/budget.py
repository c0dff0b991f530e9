"""`clbudget budget model` and `clbudget budget allocate`: bytes of a model, and one budget
spent per method (budget/allocator.py, budget/storage.py)."""
from __future__ import annotations

from clbudget.budget.accountant import (CONVENTIONS, format_bytes, image_bytes,
                                        model_to_exemplars, parse_budget)
from clbudget.budget.allocator import POLICIES, AllocatorConfig, allocate_protocol
from clbudget.budget.costs import StreamShape, cost_model, head_bytes
from clbudget.cli.common import (UNITS_HELP, UsageError, add_json_flag, emit, positive_int,
                                 table)
from clbudget.methods.codecs import parse_codec
from clbudget.nets.backbones import BACKBONES, backbone_stats
from clbudget.streams.catalog import DATASETS, dataset_info


def add_parser(sub) -> None:
    """`budget model` and `budget allocate`."""
    b = sub.add_parser("budget", help="bytes of models; allocate a budget to methods",
                       description=UNITS_HELP)
    bsub = b.add_subparsers(dest="budget_command", required=True, metavar="SUBCOMMAND",
                            parser_class=sub._parser_class)

    def shape_flags(q, classes_help):
        q.add_argument("--dataset", help=f"resolves image shape and classes: {', '.join(DATASETS)}")
        q.add_argument("--image-shape", help="C,H,W of one stored uint8 image, e.g. 3,32,32")
        q.add_argument("--num-classes", type=positive_int, help=classes_help)
        q.add_argument("--convention", choices=CONVENTIONS, default="strict",
                       help="strict (default): everything at its dtype; memo: feature-extractor "
                            "parameters x 4 B + exemplar pixels")
        add_json_flag(q)

    bm = bsub.add_parser("model", help="parameters and bytes of a backbone, in exemplars",
                         description="Bytes of one model and how many uint8 exemplars they buy. "
                                     + UNITS_HELP)
    bm.add_argument("name", help=f"backbone: {', '.join(BACKBONES)}")
    shape_flags(bm, "strict convention: include a linear head over N classes")
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
    shape_flags(ba, "number of classes (keeps the first N of the class order)")
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


def parse_image_shape(text: str) -> tuple[int, int, int]:
    try:
        shape = tuple(int(p) for p in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) <= 0:
        raise UsageError(f"bad image shape {text!r}: expected C,H,W with positive integers, "
                         f"e.g. 3,32,32 (CIFAR) or 1,28,28 (Fashion-MNIST)")
    return shape


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
