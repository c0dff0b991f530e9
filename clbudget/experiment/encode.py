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
Inputs to the encoder: uint8 images / 255, resized to the encoder's input size, normalised
per channel by the ImageNet constants of torchvision's weights for a torchvision model, else by
the training set's mean and std (`Pipeline.from_images`); never augmented.  The encoder runs in
eval mode, no gradients, in batches, with a progress bar on a terminal.  The file records (key
`meta`) the encoder, its SHA-256, the normalisation, the input size and where it came from,
the data set and the shapes; a run on the file records that meta in its row
(`feature_meta`, experiment/run.py).

Input size (`--input-size`, `EncodeSpec.input_size`).  By default the encoder's expected size:
for a torchvision model the `crop_size` of its DEFAULT weights' transforms (read from
torchvision, nothing downloaded; ResNets 224), or where torchvision has no weights enum for it,
`TORCHVISION_INPUT_SIZES` (torchvision's crop sizes other than 224, else 224); a clbudget
backbone is built for the images it is given, so its default is the stored size.  `N` resizes to
N x N (a clbudget backbone is then built for N x N); `stored` or 0 keeps the stored size (the
old behaviour: 32-px CIFAR reaches a torchvision ResNet's layer4 as 1x1).  The resize is the
reference's test transform `Resize(S)` + `CenterCrop(S)` (stream_benchmark
datasets/seq_stream.py, 224 px) done in torch (`resize_to`, no torchvision needed): bilinear,
half-pixel centres (`align_corners=False`), `antialias=True` (torchvision's default for tensors
since 0.17, in `transforms.Resize` and the weights' `ImageClassification`; the same as PIL's
bilinear resize, which the reference calls on its PIL images; it changes nothing when
upsampling).  Deviation: the resize is on x / 255 in float32, where PIL rounds the resized
image to uint8 before `ToTensor` (at most 0.5 / 255 apart).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from clbudget.progress import progress_bar

IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))   # torchvision weights
TORCHVISION = "torchvision:"
# torchvision classification models whose DEFAULT weights' eval crop_size is not 224
# (torchvision/models/inception.py, efficientnet.py, swin_transformer.py); any other: 224
IMAGENET_INPUT_SIZE = 224
TORCHVISION_INPUT_SIZES = {
    "inception_v3": 299, "efficientnet_b1": 240, "efficientnet_b2": 288, "efficientnet_b3": 300,
    "efficientnet_b4": 380, "efficientnet_b5": 456, "efficientnet_b6": 528,
    "efficientnet_b7": 600, "efficientnet_v2_s": 384, "efficientnet_v2_m": 480,
    "efficientnet_v2_l": 480, "swin_v2_t": 256, "swin_v2_s": 256, "swin_v2_b": 256}
STORED = "stored"


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
    input_size: int | None = None     # side S the encoder sees; None: its expected size,
    #                                   0: the stored size (`parse_input_size`)

    def __post_init__(self):
        if self.input_size is not None and self.input_size != 0 and self.input_size < 8:
            raise ValueError(f"--input-size must be a side of at least 8 pixels (e.g. 224), "
                             f"0 or {STORED!r} (the stored size), got {self.input_size}; "
                             f"nearest: 8")


def parse_input_size(text) -> int:
    """`--input-size N|stored|0` -> N (0 = the stored size)."""
    value = str(text).strip().lower()
    if value == STORED:
        return 0
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"--input-size must be a side in pixels (e.g. 224), 0 or {STORED!r} "
                         f"(the stored size), got {text!r}") from None


def torchvision_input_size(torchvision, name: str) -> tuple[int, str]:
    """(side, where it comes from) of torchvision model `name`: the `crop_size` of its DEFAULT
    weights' transforms (built, nothing downloaded), else `TORCHVISION_INPUT_SIZES`."""
    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
        crop = weights.transforms().crop_size
        side = int(crop[0] if isinstance(crop, (list, tuple)) else crop)
        return side, (f"torchvision {type(weights).__name__}.{weights.name} transforms "
                      f"crop_size")
    except (AttributeError, ValueError, KeyError, TypeError, IndexError):
        side = TORCHVISION_INPUT_SIZES.get(name, IMAGENET_INPUT_SIZE)
        return side, ("clbudget table of torchvision crop sizes (TORCHVISION_INPUT_SIZES; "
                      "no weights transforms in this torchvision)")


def resize_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, H, W) float -> (B, C, size, size): `Resize(size)` + `CenterCrop(size)` as
    torchvision does them on tensors: the shorter side to `size`, the longer to
    int(size * long / short), bilinear, half-pixel centres, antialias=True; then the centre
    size x size crop (top = round((H' - size) / 2)).  A square image goes to size x size
    directly; `size` 0 or the images' own size returns `x` unchanged."""
    h, w = x.shape[-2:]
    if not size or (h, w) == (size, size):
        return x
    if h == w:
        nh = nw = size
    elif h < w:
        nh, nw = size, int(size * w / h)
    else:
        nh, nw = int(size * h / w), size
    x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
    top, left = int(round((nh - size) / 2.0)), int(round((nw - size) / 2.0))
    return x[..., top:top + size, left:left + size]


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
        record["expected_input_size"], record["expected_input_size_source"] = \
            torchvision_input_size(torchvision, name)
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
                  batch_size: int, dtype: np.dtype, desc: str, progress: bool,
                  input_size: int = 0) -> np.ndarray:
    """(N, D) features of (N, C, H, W) uint8 images: encoder((resize_to(x / 255, S) - mean) /
    std) with S = `input_size` (0: the stored size), in batches, eval mode."""
    encoder.eval()
    m = torch.tensor(mean, device=device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=device).view(1, -1, 1, 1)
    out = []
    for b in progress_bar(range(0, len(x_uint8), batch_size), desc=desc, enabled=progress,
                          unit="batch"):
        xb = torch.from_numpy(np.ascontiguousarray(x_uint8[b:b + batch_size])).to(device)
        f = encoder((resize_to(xb.float() / 255, input_size) - m) / s).flatten(1)
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
    c, h, w = data.image_shape
    # a clbudget backbone is built for what it sees: --input-size N, else the stored size
    network_shape = (c, spec.input_size, spec.input_size) if spec.input_size else (c, h, w)
    encoder, record = build_encoder(spec, network_shape)
    encoder.to(device)
    size, source = (record.pop("expected_input_size", 0),
                    record.pop("expected_input_size_source",
                               f"the stored size (clbudget backbone {record['arch']} is built "
                               f"for the images it is given)"))
    if spec.input_size is not None:
        size = spec.input_size
        source = "--input-size" if size else f"--input-size {STORED}"
    if size and (h, w) == (size, size):
        size = 0                                # already at that size: nothing to resize
    input_hw = [size, size] if size else [h, w]
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
                                        f"encode {part}", progress, size), s.y)
              for part, s in (("train", data.train), ("test", data.test))}
    meta = {**record, "dataset": data.name, "data_root": spec.data_root,
            "image_shape": list(data.image_shape), "input_size": input_hw,
            "input_size_source": source,
            "resize": ("bilinear, antialias=True, align_corners=False (Resize + CenterCrop)"
                       if size else "none"),
            "normalization": norm,
            "mean": list(mean), "std": list(std), "dtype": spec.dtype,
            "max_per_class": spec.max_per_class, "max_test_per_class": spec.max_test_per_class}
    write_features(out, splits["train"], splits["test"], data.class_names, meta, spec.force)
    return {"out": str(out), "train": list(splits["train"].x.shape),
            "test": list(splits["test"].x.shape), "dtype": spec.dtype,
            "num_classes": data.num_classes, **meta}
