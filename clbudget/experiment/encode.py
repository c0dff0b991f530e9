"""`clbudget encode`: run a frozen encoder over a data set once and cache its feature vectors
as a feature file (streams/features.py), the input of a feature stream (`run --features`).

Encoders (`--encoder`):
- `random:NAME`: clbudget backbone NAME (nets/backbones.py) at its random initialisation under
  `--seed`: for tests and smoke runs, no file needed;
- `FILE.pt --arch NAME`: a state dict loaded with `torch.load(..., weights_only=True)` into
  clbudget backbone NAME (a backbone's own keys, or a Classifier's with their "backbone."
  prefix; a head's keys are ignored);
- `FILE.pt --arch torchvision:NAME`: a torchvision classification model's state dict (e.g.
  resnet18's) with its final `fc` replaced by the identity, so the features are the pooled
  penultimate layer.  torchvision is imported only here (an optional dependency).
Inputs to the encoder: uint8 images / 255, normalised per channel by the ImageNet constants of
torchvision's weights for a torchvision model, else by the training set's mean and std
(`Pipeline.from_images`); never augmented.  The encoder runs in eval mode, no gradients, in
batches, with a progress bar on a terminal.  The file records (key `meta`) the encoder, its
SHA-256, the normalisation, the data set and the shapes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from clbudget.progress import progress_bar

IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))   # torchvision weights
TORCHVISION = "torchvision:"


@dataclass(frozen=True)
class EncodeSpec:
    dataset: str
    out: str
    encoder: str                      # "random:NAME" or a state-dict file
    arch: str | None = None           # for a file: a clbudget backbone or torchvision:NAME
    data_root: str | None = None
    force: bool = False
    batch_size: int = 256
    device: str = "auto"
    seed: int = 0
    dtype: str = "float32"            # the stored dtype of the vectors: float32 | float16
    max_per_class: int | None = None
    max_test_per_class: int | None = None
    glyphs_options: tuple = ()
    cache_dir: str | None = None


def _sha256(path: Path) -> str:
    from clbudget.streams.features import file_sha256
    return file_sha256(path)


def build_encoder(spec: EncodeSpec, image_shape) -> tuple[nn.Module, dict]:
    """(the frozen encoder, what the file records of it)."""
    from clbudget.nets.backbones import create_backbone
    if spec.encoder.startswith("random:"):
        if spec.arch is not None:
            raise ValueError(f"--arch applies to an encoder file; {spec.encoder} names its "
                             f"backbone itself")
        name = spec.encoder.split(":", 1)[1]
        torch.manual_seed(spec.seed)
        return create_backbone(name, image_shape), {"encoder": spec.encoder,
                                                    "arch": name, "seed": spec.seed}
    path = Path(spec.encoder).expanduser()
    if not path.is_file():
        raise ValueError(f"--encoder {spec.encoder}: no such file; give a state-dict .pt file "
                         f"(with --arch) or random:NAME (e.g. random:resnet32)")
    if not spec.arch:
        raise ValueError(f"--encoder {path.name} needs --arch: a clbudget backbone (e.g. "
                         f"resnet32) or torchvision:NAME (e.g. torchvision:resnet18)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"--encoder {path.name} holds a {type(state).__name__}, not a state dict")
    record = {"encoder": str(path), "arch": spec.arch, "sha256": _sha256(path)}
    if spec.arch.startswith(TORCHVISION):
        try:
            import torchvision
        except ImportError as e:
            raise ValueError(f"--arch {spec.arch} needs torchvision, which is not installed "
                             f"({e}); pip install torchvision, or use a clbudget backbone") from None
        name = spec.arch[len(TORCHVISION):]
        try:
            net = torchvision.models.get_model(name, weights=None)
        except ValueError as e:
            raise ValueError(f"--arch {spec.arch}: {e}") from None
        net.load_state_dict(state)
        if hasattr(net, "fc"):
            net.fc = nn.Identity()
        return net, record
    net = create_backbone(spec.arch, image_shape)
    own = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")} \
        or {k: v for k, v in state.items() if not k.startswith("head.")}
    try:
        net.load_state_dict(own)
    except RuntimeError as e:   # missing / unexpected keys, shapes
        first = str(e).splitlines()[1].strip() if "\n" in str(e) else str(e)
        raise ValueError(f"--encoder {path.name} does not fit --arch {spec.arch}: "
                         f"{first[:300]}") from None
    return net, record


@torch.no_grad()
def encode_images(encoder: nn.Module, x_uint8: np.ndarray, mean, std, device,
                  batch_size: int, dtype: np.dtype, desc: str, progress: bool) -> np.ndarray:
    """(N, D) features of (N, C, H, W) uint8 images: encoder((x / 255 - mean) / std), in
    batches, eval mode."""
    encoder.eval()
    m = torch.tensor(mean, device=device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=device).view(1, -1, 1, 1)
    out = []
    for b in progress_bar(range(0, len(x_uint8), batch_size), desc=desc, enabled=progress,
                          unit="batch"):
        xb = torch.from_numpy(np.ascontiguousarray(x_uint8[b:b + batch_size])).to(device)
        f = encoder((xb.float() / 255 - m) / s).flatten(1)
        out.append(f.float().cpu().numpy().astype(dtype))
    return np.concatenate(out)


def encode(spec: EncodeSpec, progress: bool = False) -> dict:
    """Encode the data set of `spec` and write its feature file; returns what was written."""
    from clbudget.experiment.run import resolve_device
    from clbudget.streams import GlyphsOptions, load_dataset
    from clbudget.streams.base import Split
    from clbudget.streams.features import SUFFIXES, write_features
    from clbudget.train.loop import Pipeline
    out = Path(spec.out).expanduser()
    if out.suffix not in SUFFIXES:    # before any image is read
        raise ValueError(f"--out {out} must end in {' or '.join(SUFFIXES)}")
    if out.exists() and not spec.force:
        raise ValueError(f"{out} exists; pass --force to overwrite it")
    if spec.dtype not in ("float32", "float16"):
        raise ValueError(f"--dtype must be float32 or float16, got {spec.dtype!r}")
    glyphs = GlyphsOptions(**dict(spec.glyphs_options)) if spec.glyphs_options else None
    data = load_dataset(spec.dataset, spec.data_root, cache_dir=spec.cache_dir,
                        glyphs_options=glyphs, max_per_class=spec.max_per_class,
                        max_test_per_class=spec.max_test_per_class, sample_seed=spec.seed)
    if data.train.x.dtype != np.uint8:
        raise ValueError(f"--dataset {spec.dataset} holds feature vectors already; encode images")
    device = resolve_device(spec.device)
    encoder, record = build_encoder(spec, data.image_shape)
    encoder.to(device)
    if spec.arch and spec.arch.startswith(TORCHVISION):
        mean, std = IMAGENET_MEAN_STD
        norm = "imagenet constants (torchvision weights)"
    else:
        stats = Pipeline.from_images(data.train.x)
        mean, std = stats.mean, stats.std
        norm = "train-set mean/std per channel"
    if len(mean) != data.image_shape[0]:
        raise ValueError(f"the encoder's normalisation has {len(mean)} channels, the images "
                         f"{data.image_shape[0]}")
    dtype = np.dtype(spec.dtype)
    splits = {part: Split(encode_images(encoder, s.x, mean, std, device, spec.batch_size, dtype,
                                        f"encode {part}", progress), s.y)
              for part, s in (("train", data.train), ("test", data.test))}
    meta = {**record, "dataset": data.name, "data_root": spec.data_root,
            "image_shape": list(data.image_shape), "normalization": norm,
            "mean": list(mean), "std": list(std), "dtype": spec.dtype,
            "max_per_class": spec.max_per_class, "max_test_per_class": spec.max_test_per_class}
    write_features(out, splits["train"], splits["test"], data.class_names, meta, spec.force)
    return {"out": str(out), "train": list(splits["train"].x.shape),
            "test": list(splits["test"].x.shape), "dtype": spec.dtype,
            "num_classes": data.num_classes, **meta}
