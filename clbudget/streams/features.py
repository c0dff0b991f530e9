"""Feature streams: pre-extracted feature vectors instead of images.

BMC's reference (fostiropoulos/stream_benchmark) trains a ResMLP on feature vectors a frozen
encoder extracted once (datasets/seq_stream.py: `feats_name`, feat_size 768), not a CNN on
pixels.  A feature file is the same data set in that form, and becomes a class-incremental
stream by the usual protocol (`make_stream`: BxIncY, class order, seeds, per-class caps).

The file: `.npz` (numpy, read with allow_pickle=False) or `.pt` (a dict of tensors, read with
`torch.load(..., weights_only=True)`), holding
    train_x  (N, D) float32 or float16    the training vectors, stored as they will be held
    train_y  (N,)   integer               labels 0..K-1, every class present
    test_x   (M, D) same dtype as train_x
    test_y   (M,)   integer               labels 0..K-1, every class present
    class_names (K,) str, optional        (default "0".."K-1")
    meta     str, optional                JSON provenance written by `clbudget encode`
Keys other than these are refused (a typo would otherwise be silently ignored).  float64
vectors are refused with the hint to store float32: the file's dtype is what exemplars are held
and counted at (budget/costs.py: D * 4 bytes an exemplar at float32, D * 2 at float16).

`write_features` writes such a file atomically and refuses to overwrite one without `force`.
A run's key and row hold the file's SHA-256 (`file_sha256`), not its path: a file rewritten in
place is another run, the same file elsewhere the same run (experiment/run.py
`RunSpec.data_sha256`).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .base import FEATURE_DTYPES, DataError, Dataset, Split
from .catalog import nearest

REQUIRED_KEYS = ("train_x", "train_y", "test_x", "test_y")
OPTIONAL_KEYS = ("class_names", "meta")
SUFFIXES = (".npz", ".pt")


def _load_arrays(path: Path) -> dict[str, np.ndarray]:
    if path.suffix == ".npz":
        import zipfile
        try:
            with np.load(path, allow_pickle=False) as f:
                return {k: f[k] for k in f.files}
        except (OSError, ValueError, zipfile.BadZipFile) as e:
            raise DataError(f"feature file {path} is not a readable .npz ({e})") from None
    import pickle
    import torch
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, pickle.UnpicklingError, EOFError) as e:
        raise DataError(f"feature file {path} is not a .pt file loadable with "
                        f"weights_only=True ({e})") from None
    if not isinstance(obj, dict):
        raise DataError(f"feature file {path} holds a {type(obj).__name__}; expected a dict "
                        f"with keys {', '.join(REQUIRED_KEYS)}")
    out = {}
    for k, v in obj.items():
        if torch.is_tensor(v):
            out[k] = v.numpy() if v.dtype != torch.bfloat16 else v.float().numpy()
        elif k == "meta" and isinstance(v, str):
            out[k] = np.asarray(v)
        else:
            out[k] = np.asarray(v)
    return out


def check_features(arrays: dict, where: str = "feature file") -> tuple[Split, Split, tuple]:
    """(train, test, class_names) from the arrays of a feature file; DataError naming the
    first thing wrong (a missing or unknown key, a shape, a dtype, a label)."""
    keys = set(arrays)
    missing = [k for k in REQUIRED_KEYS if k not in keys]
    if missing:
        others = sorted(keys - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
        hint = f" (found {', '.join(others)}; nearest to {missing[0]}: " \
               f"{nearest(missing[0], others)})" if others else ""
        raise DataError(f"{where} lacks {', '.join(missing)}; a feature file holds "
                        f"{', '.join(REQUIRED_KEYS)}{hint}")
    unknown = sorted(keys - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        valid = REQUIRED_KEYS + OPTIONAL_KEYS
        raise DataError(f"{where} has unknown key {unknown[0]!r} (nearest: "
                        f"{nearest(unknown[0], valid)}); keys: {', '.join(valid)}")
    splits = []
    for part in ("train", "test"):
        x, y = np.asarray(arrays[f"{part}_x"]), np.asarray(arrays[f"{part}_y"])
        if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
            raise DataError(f"{where}: {part}_x must be (N, D) with N, D >= 1, got shape "
                            f"{x.shape}" + ("; flatten each vector to D values"
                                            if x.ndim > 2 else ""))
        if x.dtype not in FEATURE_DTYPES:
            hint = ("store it as float32 (x.astype(np.float32)): exemplars are held at "
                    "the file's dtype" if x.dtype.kind == "f" else "features are floats")
            raise DataError(f"{where}: {part}_x must be float32 or float16, got {x.dtype}; {hint}")
        if not np.isfinite(x).all():
            bad = int((~np.isfinite(x)).any(1).sum())
            raise DataError(f"{where}: {part}_x has non-finite values (NaN or inf) in {bad} "
                            f"row(s)")
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{where}: {part}_y must be ({len(x)},), one label per row of "
                            f"{part}_x, got shape {y.shape}")
        if y.dtype.kind not in "iu":
            raise DataError(f"{where}: {part}_y must hold integer labels, got {y.dtype}")
        if y.min() < 0:
            raise DataError(f"{where}: {part}_y has negative label {int(y.min())}; labels are "
                            f"0..K-1")
        splits.append((x, y.astype(np.int64)))
    (tx, ty), (vx, vy) = splits
    if tx.shape[1] != vx.shape[1]:
        raise DataError(f"{where}: train_x has D={tx.shape[1]} features but test_x has "
                        f"D={vx.shape[1]}; both must come from the same encoder")
    if tx.dtype != vx.dtype:
        raise DataError(f"{where}: train_x is {tx.dtype} but test_x is {vx.dtype}; store both "
                        f"at one dtype")
    k = int(ty.max()) + 1
    absent = sorted(set(range(k)) - set(np.unique(ty).tolist()))
    if absent:
        raise DataError(f"{where}: train_y has no sample of class(es) {absent[:5]}; labels "
                        f"must be 0..K-1 with every class present (K = {k})")
    if int(vy.max()) >= k:
        raise DataError(f"{where}: test_y has label {int(vy.max())} but train_y has classes "
                        f"0..{k - 1} only")
    untested = sorted(set(range(k)) - set(np.unique(vy).tolist()))
    if untested:   # every task is evaluated on its classes' test vectors
        raise DataError(f"{where}: test_y has no sample of class(es) {untested[:5]}; every "
                        f"class 0..{k - 1} needs test vectors")
    names = tuple(str(i) for i in range(k))
    if "class_names" in arrays:
        given = np.asarray(arrays["class_names"])
        if given.ndim != 1 or len(given) != k:
            raise DataError(f"{where}: class_names must be ({k},), one name per class, got "
                            f"shape {given.shape}")
        names = tuple(str(n) for n in given.tolist())
    return Split(tx, ty), Split(vx, vy), names


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB blocks (a feature file can be large):
    the identity of a feature stream's data in run keys and rows (experiment/run.py
    `RunSpec.data_sha256`)."""
    import hashlib
    h = hashlib.sha256()
    with open(Path(path).expanduser(), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_features(path: str | os.PathLike) -> Dataset:
    """The Dataset of a feature file (module docstring), named "features"."""
    path = Path(path).expanduser()
    if path.suffix not in SUFFIXES:
        raise DataError(f"feature file {path} must end in {' or '.join(SUFFIXES)}, got "
                        f"{path.suffix or 'no suffix'!r}")
    if not path.is_file():
        raise DataError(f"feature file {path} does not exist"
                        + (" (it is a folder; give the .npz file inside)" if path.is_dir() else "")
                        + "; make one with `clbudget encode`")
    train, test, names = check_features(_load_arrays(path), f"feature file {path}")
    return Dataset("features", train, test, names)


def read_meta(path: str | os.PathLike) -> dict:
    """The provenance a feature file records (`meta`, JSON: `clbudget encode`'s encoder, its
    SHA-256, input size and its source, normalisation), {} if none; a meta that is not a JSON
    object is kept as {"text": its first 1,000 characters}.  A run on the file records this
    in its row (`feature_meta`, experiment/run.py).  An .npz's other arrays are not read."""
    path = Path(path).expanduser()
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as f:
            raw = str(f["meta"]) if "meta" in f.files else None
    else:
        arrays = _load_arrays(path)
        raw = str(arrays["meta"]) if "meta" in arrays else None
    if raw is None:
        return {}
    try:
        meta = json.loads(raw)
    except ValueError:
        meta = None
    return meta if isinstance(meta, dict) else {"text": raw[:1000]}


def write_features(path: str | os.PathLike, train: Split, test: Split,
                   class_names=None, meta: dict | None = None, force: bool = False) -> Path:
    """Write a feature file (.npz or .pt) atomically; refuse an existing file unless `force`."""
    path = Path(path).expanduser()
    if path.suffix not in SUFFIXES:
        raise ValueError(f"--out {path} must end in {' or '.join(SUFFIXES)}, e.g. "
                         f"{path.with_suffix('.npz').name}")
    if path.exists() and not force:
        raise ValueError(f"{path} exists; pass --force to overwrite it")
    arrays = {"train_x": train.x, "train_y": train.y, "test_x": test.x, "test_y": test.y}
    if class_names is not None:
        arrays["class_names"] = np.asarray([str(n) for n in class_names])
    check_features(arrays, f"features for {path}")   # never write a file the reader refuses
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            if path.suffix == ".npz":
                extra = {"meta": np.asarray(json.dumps(meta or {}, sort_keys=True))}
                np.savez(f, **arrays, **extra)
            else:
                import torch
                obj = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()
                       if k != "class_names"}
                if class_names is not None:
                    obj["class_names"] = [str(n) for n in class_names]
                obj["meta"] = json.dumps(meta or {}, sort_keys=True)
                torch.save(obj, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
