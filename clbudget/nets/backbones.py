"""Backbones, each split into "generalized" and "specialized" blocks.

The split is MEMO's (Zhou et al., ICLR 2023): shallow layers generalize across
tasks, deep layers specialize, so an expanding method can share the former and
add only the latter per task.

CIFAR ResNets (He et al. 2016, 16/32/64 channels, option-A parameter-free
shortcuts, as in PyCIL and MEMO): generalized = conv1 + stage1 + stage2,
specialized = stage3.  resnet32 has 463,504 parameters (conv weights + BN
affine), the number every "model = 603 exemplars" figure rests on.

ImageNet ResNets resnet10/18/26/34 (torchvision layout; resnet26 uses
bottlenecks as in MEMO's code): generalized = stem + layer1..3, specialized =
layer4.  Images of at most 64 pixels get the CIFAR stem (3x3 stride-1 conv, no
max-pool), as in the Dark Experience Replay code; larger images get the 7x7
stride-2 stem and max-pool.

conv2: MEMO's tiny two-block ConvNet (64 channels), the smallest rung of the
CIFAR ladder.

Initialisation, as the code each layout comes from:
- CIFAR ResNets: PyCIL convs/cifar_resnet.py `CifarResNet.__init__`: every conv weight
  normal(0, sqrt(2 / (k * k * out_channels))), BatchNorm weight 1, bias 0 (`pycil_cifar_init`);
- ImageNet ResNets on large images: PyCIL convs/resnet.py (torchvision's): conv weights
  Kaiming-normal, fan_out, ReLU gain; BatchNorm weight 1, bias 0 (no zero-init of the last BN);
- ImageNet ResNets with the CIFAR stem (images <= 64 pixels): Mammoth's ResNet18
  (backbone/ResNetBlock.py) keeps PyTorch's default initialisation, and so do we;
- conv2: PyCIL/MEMO convs/conv_cifar.py has no initialisation of its own: PyTorch's default.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import torch
from torch import nn
import torch.nn.functional as F


class ShortcutA(nn.Module):
    """Option-A shortcut: subsample by 2 and zero-pad channels (no parameters)."""

    def __init__(self, out_channels: int):
        super().__init__()
        self.out_channels = out_channels

    def forward(self, x):
        x = x[:, :, ::2, ::2]
        pad = self.out_channels - x.shape[1]
        return F.pad(x, (0, 0, 0, 0, 0, pad))


class CifarBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv_a = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn_a = nn.BatchNorm2d(out_channels)
        self.conv_b = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn_b = nn.BatchNorm2d(out_channels)
        self.shortcut = (ShortcutA(out_channels)
                         if stride != 1 or in_channels != out_channels else nn.Identity())

    def forward(self, x):
        out = F.relu(self.bn_a(self.conv_a(x)))
        out = self.bn_b(self.conv_b(out))
        return F.relu(out + self.shortcut(x))


def _cifar_stage(in_channels: int, out_channels: int, n_blocks: int, stride: int):
    blocks = [CifarBlock(in_channels, out_channels, stride)]
    blocks += [CifarBlock(out_channels, out_channels, 1) for _ in range(n_blocks - 1)]
    return nn.Sequential(*blocks)


class Pool(nn.Module):
    """Global average pool to a (B, C) feature vector."""

    def forward(self, x):
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


class Backbone(nn.Module):
    """features(x) = specialized(generalized(x)); `out_dim` is the feature width."""

    def __init__(self, name: str, generalized: nn.Module, specialized: nn.Module, out_dim: int):
        super().__init__()
        self.name = name
        self.generalized = generalized
        self.specialized = specialized
        self.out_dim = out_dim

    def forward(self, x):  # (B, C, H, W) -> (B, out_dim)
        return self.specialized(self.generalized(x))


@torch.no_grad()
def pycil_cifar_init(module: nn.Module) -> nn.Module:
    """PyCIL convs/cifar_resnet.py: conv weights normal(0, sqrt(2 / (k*k*out))), BN (1, 0)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            m.weight.normal_(0, (2.0 / n) ** 0.5)
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.fill_(1)
            m.bias.zero_()
    return module


@torch.no_grad()
def torchvision_resnet_init(module: nn.Module) -> nn.Module:
    """PyCIL convs/resnet.py (torchvision): Kaiming-normal fan_out ReLU convs, BN (1, 0)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
    return module


def cifar_resnet(depth: int, in_channels: int = 3) -> Backbone:
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
    n = (depth - 2) // 6
    generalized = nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        _cifar_stage(16, 16, n, 1), _cifar_stage(16, 32, n, 2))
    specialized = nn.Sequential(_cifar_stage(32, 64, n, 2), Pool())
    return pycil_cifar_init(Backbone(f"resnet{depth}", generalized, specialized, 64))


def _conv_block(in_channels: int, out_channels: int):
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1),
                         nn.BatchNorm2d(out_channels), nn.ReLU(), nn.MaxPool2d(2))


def conv2(in_channels: int = 3) -> Backbone:
    return Backbone("conv2", _conv_block(in_channels, 64),
                    nn.Sequential(_conv_block(64, 64), Pool()), 64)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _projection(in_channels, out, stride)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.shortcut = _projection(in_channels, out, stride)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        return F.relu(self.bn3(self.conv3(out)) + self.shortcut(x))


def _projection(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                         nn.BatchNorm2d(out_channels))


def _layer(block, in_channels: int, planes: int, n_blocks: int, stride: int):
    layers = [block(in_channels, planes, stride)]
    layers += [block(planes * block.expansion, planes, 1) for _ in range(n_blocks - 1)]
    return nn.Sequential(*layers)


def imagenet_resnet(name: str, block, layers, in_channels: int = 3,
                    small_images: bool = False) -> Backbone:
    if small_images:  # CIFAR-style stem: keep 32x32 resolution into layer1
        stem = [nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU()]
    else:
        stem = [nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                nn.MaxPool2d(3, 2, 1)]
    e = block.expansion
    generalized = nn.Sequential(*stem, _layer(block, 64, 64, layers[0], 1),
                                _layer(block, 64 * e, 128, layers[1], 2),
                                _layer(block, 128 * e, 256, layers[2], 2))
    specialized = nn.Sequential(_layer(block, 256 * e, 512, layers[3], 2), Pool())
    net = Backbone(name, generalized, specialized, 512 * e)
    return net if small_images else torchvision_resnet_init(net)


# name -> builder(in_channels, image_size) -> Backbone
BACKBONES: dict[str, Callable[[int, int], Backbone]] = {
    "conv2": lambda c, s: conv2(c),
    "resnet14": lambda c, s: cifar_resnet(14, c),
    "resnet20": lambda c, s: cifar_resnet(20, c),
    "resnet26": lambda c, s: cifar_resnet(26, c),
    "resnet32": lambda c, s: cifar_resnet(32, c),
    "resnet44": lambda c, s: cifar_resnet(44, c),
    "resnet56": lambda c, s: cifar_resnet(56, c),
    "resnet10": lambda c, s: imagenet_resnet("resnet10", BasicBlock, (1, 1, 1, 1), c, s <= 64),
    "resnet18": lambda c, s: imagenet_resnet("resnet18", BasicBlock, (2, 2, 2, 2), c, s <= 64),
    "resnet26i": lambda c, s: imagenet_resnet("resnet26i", Bottleneck, (2, 2, 2, 2), c, s <= 64),
    "resnet34": lambda c, s: imagenet_resnet("resnet34", BasicBlock, (3, 4, 6, 3), c, s <= 64),
    "resnet50": lambda c, s: imagenet_resnet("resnet50", Bottleneck, (3, 4, 6, 3), c, s <= 64),
    # Mammoth backbone/ResNetBlock.py resnet18 (nf=64): CIFAR stem conv3x3 stride 1, no
    # maxpool, at every image size; BasicBlocks (2, 2, 2, 2), 1x1-conv + BN shortcuts;
    # PyTorch's default initialisation.  11,168,832 backbone parameters (+ 5,130 for a
    # 10-class head: 11,173,962, tests/test_protocol.py)
    "mammoth-resnet18": lambda c, s: imagenet_resnet("mammoth-resnet18", BasicBlock,
                                                     (2, 2, 2, 2), c, True),
    # stream_benchmark backbone/MLP.py ResMLP (nets/mlp.py): built from the whole input
    # shape (`SHAPE_BUILDERS`), flattened; the backbone of feature streams
    "resmlp": None,
}
# backbones built from the whole input shape instead of (channels, image size)
SHAPE_BUILDERS = ("resmlp",)

# The ladders expanding methods climb, smallest first (MEMO section 5).
FAMILIES: dict[str, tuple[str, ...]] = {
    "cifar": ("conv2", "resnet14", "resnet20", "resnet26", "resnet32"),
    "imagenet": ("resnet10", "resnet18", "resnet26i", "resnet34"),
    "features": ("resmlp",),     # feature streams: (D,) vectors (streams/features.py)
}


def family_for(image_shape) -> str:
    """CIFAR ladder for images up to 64 pixels, ImageNet ladder above; feature vectors (D,):
    the MLP."""
    if len(image_shape) == 1:
        return "features"
    return "cifar" if max(image_shape[1:]) <= 64 else "imagenet"


def default_backbone(image_shape) -> str:
    family = family_for(image_shape)
    return FAMILIES[family][-1] if family in ("cifar", "features") else "resnet18"


def create_backbone(name: str, image_shape=(3, 32, 32)) -> Backbone:
    if name not in BACKBONES:
        from clbudget.streams.catalog import nearest
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)} "
                         f"(nearest: {nearest(name, BACKBONES)})")
    if name in SHAPE_BUILDERS:
        from clbudget.nets.mlp import resmlp_parts
        return Backbone(name, *resmlp_parts(image_shape))
    if len(image_shape) != 3:
        raise ValueError(f"backbone {name} takes images (C, H, W), got inputs of shape "
                         f"{tuple(image_shape)}: feature vectors need --backbone "
                         f"{', '.join(FAMILIES['features'])}")
    return BACKBONES[name](int(image_shape[0]), int(max(image_shape[1:])))


def split_backbone(backbone, specialized_stages: int = 1) -> tuple[nn.Module, nn.Module]:
    """(generalized, specialized) with the last `specialized_stages` - 1 stages of the
    backbone's generalized part moved into the specialized block (MEMO-2: 2)."""
    if specialized_stages == 1:
        return backbone.generalized, backbone.specialized
    children = list(backbone.generalized.children())
    stages = [i for i, m in enumerate(children) if isinstance(m, nn.Sequential)]
    if not stages:          # a generalized part without stages (conv2) is one stage
        children, stages = [backbone.generalized], [0]
    moved = specialized_stages - 1
    if len(stages) < moved:
        raise ValueError(f"{specialized_stages} specialized stages need {moved} stages in "
                         f"{backbone.name}'s generalized part, it has {len(stages)}; use a "
                         f"ResNet (e.g. resnet32)")
    cut = stages[-moved]
    return (nn.Sequential(*children[:cut]),
            nn.Sequential(*children[cut:], *backbone.specialized.children()))


@dataclass(frozen=True)
class BackboneStats:
    """Shapes of a backbone, counted without allocating it (meta device)."""
    name: str
    out_dim: int
    params: int                  # all parameters (conv weights, biases, BN affine)
    buffers_bytes: int           # BN running stats + num_batches_tracked, at dtype
    generalized_params: int
    generalized_buffers_bytes: int
    specialized_params: int
    specialized_buffers_bytes: int
    bn_channels: int             # sum of BatchNorm widths (per-task BN costs)
    bn_layers: int
    kxk_conv_channels: int       # output channels of convs with kernel > 1 (CLR reprogramming)
    conv_weights: int            # conv weight elements (what MIND's masks cover)

    @property
    def params_bytes(self) -> int:  # float32 parameters
        return 4 * self.params

    @property
    def state_bytes(self) -> int:
        return self.params_bytes + self.buffers_bytes


def _count(module: nn.Module) -> tuple[int, int]:
    params = sum(p.numel() for p in module.parameters())
    buffers = sum(b.numel() * b.element_size() for b in module.buffers())
    return params, buffers


@lru_cache(maxsize=None)
def backbone_stats(name: str, image_shape=(3, 32, 32)) -> BackboneStats:
    with torch.device("meta"):
        net = create_backbone(name, tuple(image_shape))
    g_params, g_buffers = _count(net.generalized)
    s_params, s_buffers = _count(net.specialized)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    kxk = [m for m in net.modules() if isinstance(m, nn.Conv2d) and max(m.kernel_size) > 1]
    return BackboneStats(
        name=name, out_dim=net.out_dim,
        params=g_params + s_params, buffers_bytes=g_buffers + s_buffers,
        generalized_params=g_params, generalized_buffers_bytes=g_buffers,
        specialized_params=s_params, specialized_buffers_bytes=s_buffers,
        bn_channels=sum(m.num_features for m in bns), bn_layers=len(bns),
        kxk_conv_channels=sum(m.out_channels for m in kxk),
        conv_weights=sum(m.weight.numel() for m in net.modules() if isinstance(m, nn.Conv2d)))
