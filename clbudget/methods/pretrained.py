"""Pretrained backbones (CLR's premise: a rich frozen backbone), from a file or made offline.

From a file.  `load_backbone_weights(path, backbone)` reads a state dict with
`torch.load(..., weights_only=True)` in either layout:
- torchvision's ResNet (`conv1.weight`, `bn1.*`, `layer1.0.conv1.weight`, ...,
  `layer2.0.downsample.0.weight`, `fc.*`), mapped onto clbudget's ImageNet ResNets
  (backbones.py `imagenet_resnet`: `generalized` = stem + layer1..3, `specialized` = layer4 +
  pooling; `downsample` is clbudget's `shortcut`; `fc` is dropped: CLR gives every task its own
  head).  torchvision's stem is 7x7, clbudget's for images up to 64 px is 3x3: such weights
  need a stream of larger images (the error says so);
- clbudget's own (a Backbone's or a Classifier's state dict; `backbone.` prefixes stripped,
  `head.*` dropped).
With internet access, one command writes torchvision's ImageNet ResNet-18 (`TORCHVISION_COMMAND`;
resnet50 / IMAGENET1K_V2 likewise); nothing is downloaded by clbudget.

Offline (no file).  CLR (`CLR.pretrain_offline`) trains the backbone on procedurally rendered
glyph classes disjoint from the stream, at the size its inputs reach the backbone, with a
throw-away head, then freezes it.  A poor man's ImageNet, but it keeps the premise: the
backbone has never seen a class the stream tests.  Disjoint means by class id (the character):
`disjoint_glyph_classes` skips every glyph class id the stream's tasks hold
(`streams.multidomain.source_classes`: a plain, cut (`--num-classes`) or shuffled glyphs stream,
a `glyphs/K` component of a multi-domain stream), whatever the stream's glyphs options.  The
renderings are not a function of the class id alone (they depend on the glyphs seed, style,
size and images per class: `glyphs.render_class`), so a stream at another seed or style holds
other images of the same characters: still the same classes, so still skipped.  Only ids the
stream holds are skipped: a stream of glyphs 68, 56, 78, 8 leaves 0-7, 9-20 to a 20-class
stand-in.

Either way the provenance (source, classes or file, epochs, SHA-256 of the file or of the
resulting weights) goes into the result row (`cost_figures()["pretrain"]`).
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

TORCHVISION_COMMAND = (
    "python -c \"import torch, torchvision; torch.save(torchvision.models.resnet18("
    "weights='IMAGENET1K_V1').state_dict(), 'resnet18-imagenet1k.pt')\"")

_LAYER = re.compile(r"layer([1-4])\.(\d+)\.(.+)")


def is_torchvision(state: dict) -> bool:
    return "conv1.weight" in state and any(k.startswith("layer1.") for k in state)


def _stem_length(backbone: nn.Module) -> int:
    """Children of `generalized` before layer1 (conv, bn, relu[, maxpool])."""
    for i, m in enumerate(backbone.generalized.children()):
        if isinstance(m, nn.Sequential):
            return i
    raise ValueError(f"backbone {getattr(backbone, 'name', '?')} is not an ImageNet ResNet "
                     f"(no layer1): torchvision weights need resnet18/34/50")


def torchvision_key(key: str, stem: int) -> str | None:
    """clbudget's name of torchvision ResNet key `key` (None: not part of the backbone)."""
    if key.startswith("fc."):
        return None
    if key.startswith("conv1."):
        return "generalized.0." + key.removeprefix("conv1.")
    if key.startswith("bn1."):
        return "generalized.1." + key.removeprefix("bn1.")
    m = _LAYER.fullmatch(key)
    if m is None:
        raise ValueError(f"unexpected key {key!r} in a torchvision ResNet state dict")
    layer, block, rest = int(m[1]), m[2], m[3].replace("downsample.", "shortcut.")
    if layer < 4:
        return f"generalized.{stem + layer - 1}.{block}.{rest}"
    return f"specialized.0.{block}.{rest}"


def from_torchvision(state: dict, backbone: nn.Module) -> dict:
    stem = _stem_length(backbone)
    out = {}
    for k, v in state.items():
        name = torchvision_key(k, stem)
        if name is not None:
            out[name] = v
    return out


def torchvision_name(name: str, stem: int) -> str:
    """torchvision's key of clbudget ImageNet ResNet key `name` (`torchvision_key` inverted),
    so that errors about a torchvision file name the file's own keys."""
    part, index, rest = name.split(".", 2)
    rest = rest.replace("shortcut.", "downsample.")
    if part == "specialized":
        return f"layer4.{rest}"
    i = int(index)
    if i >= stem:
        return f"layer{i - stem + 1}.{rest}"
    return {0: "conv1.", 1: "bn1."}.get(i, f"stem.{i}.") + rest


def sha256_of(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def weights_sha256(module: nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def load_backbone_weights(path, backbone: nn.Module, device=None) -> dict:
    """Load a torchvision- or clbudget-format state dict file into `backbone`; its provenance."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"backbone_weights: no file {str(path)!r}; to get torchvision's "
                         f"ImageNet ResNet-18 run: {TORCHVISION_COMMAND}")
    state = torch.load(path, map_location=device or "cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f"backbone_weights {str(path)!r} is not a state dict of tensors")
    fmt = "torchvision" if is_torchvision(state) else "clbudget"
    if fmt == "torchvision":
        state = from_torchvision(state, backbone)
    else:
        state = {k.removeprefix("backbone."): v for k, v in state.items()
                 if not k.startswith("head.")}
    own = backbone.state_dict()
    arch = getattr(backbone, "name", "?")
    # errors name the file's own keys (torchvision's names for a torchvision file)
    named = ((lambda k: torchvision_name(k, _stem_length(backbone))) if fmt == "torchvision"
             else (lambda k: k))
    missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or extra:
        raise ValueError(f"backbone_weights {str(path)!r} ({fmt} layout) does not fit backbone "
                         f"{arch}: missing {len(missing)} keys {[named(k) for k in missing[:4]]}, "
                         f"unexpected {len(extra)} keys {[named(k) for k in extra[:4]]}; pass "
                         f"the --backbone the file was saved from (resnet18, resnet50, ...)")
    wrong = [k for k, v in state.items() if v.shape != own[k].shape]
    if wrong:
        k = wrong[0]
        hint = (" (torchvision's 7x7 stem needs images larger than 64 px: pass CLR's "
                "input_size=224, the reference's resolution)"
                if k == "generalized.0.weight" else "")
        raise ValueError(f"backbone_weights {str(path)!r}: {len(wrong)} tensors of the wrong "
                         f"shape, first {named(k)} {tuple(state[k].shape)} where backbone "
                         f"{arch} needs {tuple(own[k].shape)}{hint}")
    backbone.load_state_dict(state)
    return {"source": "weights", "format": fmt, "path": str(path), "sha256": sha256_of(path)}


def provenance_label(pretrain: dict, arch: str) -> str:
    """The backbone's provenance as reports print it (after "backbone: "):
    'torchvision resnet18 from resnet18-imagenet1k.pt (sha256 <12 hex digits>)' for a file (its
    layout, the architecture it was loaded into, the file's name, the first 12 hex digits of
    its SHA-256), 'glyphs stand-in (20 classes)' for the offline pre-training,
    'first task (B50, old protocol)' for the first-task protocol."""
    source = pretrain.get("source")
    if source == "weights":
        return (f"{pretrain['format']} {arch} from {Path(pretrain['path']).name} "
                f"(sha256 {pretrain['sha256'][:12]})")
    if source == "glyphs":
        if not pretrain.get("done"):
            return "glyphs stand-in (not trained yet)"
        n, asked = len(pretrain["glyph_classes"]), pretrain.get("requested_classes")
        if asked and n < asked:   # the stream holds the rest of the alphabet
            return f"glyphs stand-in ({n} of {asked} classes: the alphabet ran out)"
        return f"glyphs stand-in ({n} classes)"
    if source == "first_task":
        return f"first task (B{pretrain['classes']}, old protocol)"
    raise ValueError(f"unknown backbone source {source!r}; known: weights, glyphs, first_task")


def disjoint_glyph_classes(held, n: int, first: int = 0) -> list[int]:
    """The first `n` glyph class ids (alphabet indices), from `first` on, that are not in
    `held` (the glyph class ids the stream's tasks hold; empty for a stream without glyphs: a
    CIFAR-100 stream gets 0-19, a stream of 120 classes too).  Fewer than `n` when the
    alphabet runs out (recorded: CLR's provenance holds the requested and the given count);
    ValueError saying what to do when fewer than 2 remain (no classification to train)."""
    from clbudget.streams.glyphs import ALPHABET
    held = {int(c) for c in held}
    free = [c for c in range(first, len(ALPHABET)) if c not in held]
    if len(free) < 2:
        from_zero = len([c for c in range(len(ALPHABET)) if c not in held])
        lower = (f"pretrain_first_class=0 (leaves {from_zero}), " if first and from_zero >= 2
                 else "")
        raise ValueError(
            f"CLR's offline pre-training needs at least 2 glyph classes the stream does not "
            f"hold; the alphabet has {len(ALPHABET)}, the stream holds {len(held)} of them and "
            f"from index {first} {len(free)} remain{' ' + str(free) if free else ''}: "
            f"{lower}give the stream fewer glyph classes (--num-classes N, glyphs/K in a "
            f"--stream, or the glyphs option num_classes, at most {len(ALPHABET) - 2}), or "
            f"pass backbone_weights=FILE (a pre-trained backbone)")
    return free[:n]


def glyph_images(labels: list[int], per_class: int, image_shape, seed: int = 0):
    """(x uint8 (N, C, S, S), y int64 (N,) in 0..len(labels)-1) rendered glyphs."""
    from clbudget.streams.glyphs import ALPHABET, GlyphsOptions, _fonts_by_char, render_class
    c, size = int(image_shape[0]), int(max(image_shape[1:]))
    options = GlyphsOptions(num_classes=len(ALPHABET), train_per_class=per_class,
                            image_size=size, seed=seed)
    fonts = _fonts_by_char(ALPHABET)
    xs = [render_class(options, "train", lab, np.arange(per_class), fonts[lab])
          for lab in labels]
    x = torch.from_numpy(np.concatenate(xs))
    if c == 1:
        x = x.float().mean(1, keepdim=True).round().to(torch.uint8)
    y = torch.arange(len(labels)).repeat_interleave(per_class)
    return x, y
