"""`clbudget data download` and `clbudget encode`: get a data set (README "Data"), and a
feature file from a frozen encoder (experiment/encode.py), the input of
`clbudget run --features FILE` (README "Feature streams")."""
from __future__ import annotations

import json
import sys

from clbudget.cli.common import add_device_flag, add_json_flag, emit


def add_parser(sub) -> None:
    """`data download` and `encode`."""
    from clbudget.streams.download import ARCHIVES

    d = sub.add_parser("data", help="download a data set (CIFAR-10/100, Tiny-ImageNet)")
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND",
                            parser_class=sub._parser_class)
    dd = dsub.add_parser("download", help="fetch, verify (MD5) and extract an archive",
                         description="Download a data set's canonical archive into DIR "
                                     "(resumable), verify its published MD5, extract it "
                                     "safely, and print the --data-root to pass to run/sweep.")
    dd.add_argument("name", help=f"one of {', '.join(ARCHIVES)}")
    dd.add_argument("--root", required=True, metavar="DIR", help="where to put the data")
    dd.add_argument("--base-url", help="fetch the archive from this folder URL instead of the "
                                       "canonical one (a mirror); also $CLBUDGET_DOWNLOAD_URL")
    dd.add_argument("--timeout", type=float, default=60.0, metavar="S",
                    help="seconds to wait for the server (default 60)")
    add_json_flag(dd)
    dd.set_defaults(func=cmd_data_download)

    e = sub.add_parser(
        "encode", help="extract feature vectors of a data set once with a frozen encoder",
        description="Run a frozen encoder over a data set's train and test images once and "
                    "write their feature vectors (train_x, train_y, test_x, test_y) to an .npz "
                    "or .pt file, for `clbudget run --features FILE` (BMC's reference trains "
                    "its ResMLP on such vectors). Refuses to overwrite without --force.")
    e.add_argument("--dataset", required=True, help="the images to encode (e.g. cifar10, glyphs)")
    e.add_argument("--data-root", help="folder of the data set (not needed for glyphs)")
    e.add_argument("--encoder", required=True,
                   help="a state-dict .pt file (loaded with weights_only=True; give --arch), or "
                        "random:NAME, a clbudget backbone at random init (tests, smoke runs)")
    e.add_argument("--arch", help="the encoder file's architecture: a clbudget backbone (e.g. "
                                  "resnet32) or torchvision:NAME (e.g. torchvision:resnet18)")
    e.add_argument("--out", required=True, help="the feature file to write (.npz or .pt)")
    e.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    e.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                   help="stored dtype of the vectors, the dtype exemplars are held and counted "
                        "at (default float32: D x 4 bytes an exemplar)")
    e.add_argument("--batch-size", type=int, default=256, help="images per forward (256)")
    add_device_flag(e)
    e.add_argument("--seed", type=int, default=0, help="random:NAME's initialisation, and the "
                                                       "per-class subset (default 0)")
    e.add_argument("--max-per-class", type=int, help="cap training images per class")
    e.add_argument("--max-test-per-class", type=int, help="cap test images per class")
    e.add_argument("--glyphs", action="append", metavar="KEY=VALUE",
                   help="glyphs data set options (num_classes, image_size, ...), repeatable")
    e.add_argument("--input-size", metavar="N|stored",
                   help="side the images are resized to before the encoder (bilinear, "
                        "antialiased; Resize(N) + CenterCrop(N)); default: the encoder's "
                        "expected size (a torchvision model's weights' crop size, 224 for "
                        "ResNets; a clbudget backbone's: the stored size); stored or 0: no "
                        "resize")
    e.add_argument("--cache-dir", help="decoded-data cache")
    add_json_flag(e)
    e.set_defaults(func=cmd_encode)


def cmd_data_download(args) -> None:
    from clbudget.streams.download import archive_of, download
    archive = archive_of(args.name)
    root = download(args.name, args.root, base_url=args.base_url, timeout_s=args.timeout,
                    progress=not args.json and sys.stderr.isatty())
    emit(args, {"dataset": archive.dataset, "data_root": str(root), "md5": archive.md5},
         f"{archive.dataset}: {archive.filename} verified (MD5 {archive.md5}), extracted to "
         f"{root}\n  use: --dataset {archive.dataset} --data-root {root}")


def _glyphs(pairs) -> tuple:
    from clbudget.streams import GlyphsOptions
    from clbudget.train.fields import check_fields
    options = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--glyphs expects KEY=VALUE, got {pair!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return tuple(check_fields(GlyphsOptions, options, "glyphs option").items())


def cmd_encode(args) -> None:
    from clbudget.experiment.encode import EncodeSpec, encode, parse_input_size
    size = None if args.input_size is None else parse_input_size(args.input_size)
    spec = EncodeSpec(dataset=args.dataset, out=args.out, encoder=args.encoder, arch=args.arch,
                      input_size=size,
                      data_root=args.data_root, force=args.force, batch_size=args.batch_size,
                      device=args.device, seed=args.seed, dtype=args.dtype,
                      max_per_class=args.max_per_class,
                      max_test_per_class=args.max_test_per_class,
                      glyphs_options=_glyphs(args.glyphs), cache_dir=args.cache_dir)
    done = encode(spec, progress=not args.json and sys.stderr.isatty())
    d = done["train"][1]
    emit(args, done,
         f"{done['out']}: {done['train'][0]:,} train and {done['test'][0]:,} test vectors of "
         f"D={d} ({done['dtype']}, {d * (4 if done['dtype'] == 'float32' else 2):,} B an "
         f"exemplar), {done['num_classes']} classes, encoder {done['encoder']} at "
         f"{'x'.join(map(str, done['input_size']))} px ({done['input_size_source']})\n"
         f"  use: clbudget run --features {done['out']} --method bmc --backbone resmlp ...")
