"""The claims atlas, part 2 of 5: shapes the atlas prices from — datasets and backbones.

Datasets: the shape stored exemplars have (uint8 pixels, or a feature stream's float vectors)
and the class count.  Those clbudget loads come from its catalog (`streams/catalog.py`); the
others are in `DATASETS`; a *task stream* (`TASK_STREAMS`) is a fixed sequence of tasks of
unequal class counts (no B/Inc split: a claim's init and inc are null).

Backbones, by the name a claim file uses:
- **built**: clbudget builds them (`nets/backbones.py`) and their parameters and buffers are
  counted from the module (meta device, `backbone_stats`).  The ImageNet form of a ResNet (7x7
  stride-2 stem and max-pool) is built at 224x224 whatever the stream's images, because
  clbudget gives images of at most 64 pixels the CIFAR stem; `resnet18-cifar` is Mammoth's
  ResNet-18 (3x3 stem at every size, clbudget's `mammoth-resnet18`).
- **formula**: clbudget does not build them; their parameter counts are derived from the
  architecture, the source of each cited beside its function.

A formula backbone has no BatchNorm, and no generalized/specialized split: clbudget's MEMO,
CLR and MIND byte models need a built one (refused otherwise).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

# ---------------------------------------------------------------- datasets

# Data sets clbudget does not load: (C, H, W) of a stored uint8 image, classes.
DATASETS: dict[str, tuple[tuple[int, int, int], int]] = {
    # ILSVRC-2012, images resized to 224x224 as stored by PyCIL / PODNet / DyTox pipelines
    "imagenet1k": ((3, 224, 224), 1000),
    # ImageNet-R (Hendrycks et al. 2021): 200 classes, the prompt methods' 224x224 input
    "imagenet-r": ((3, 224, 224), 200),
    "imagenet-a": ((3, 224, 224), 200),
    # CUB-200-2011 at 224x224 (pre-trained-model CIL benchmarks)
    "cub200": ((3, 224, 224), 200),
    # DomainNet, 345 classes, at 224x224 (CODA-Prompt's configs/domainnet_prompt.yaml)
    "domainnet": ((3, 224, 224), 345),
    # CORe50 (Lomonaco & Maltoni 2017): 50 objects, the 128x128 cropped release
    "core50": ((3, 128, 128), 50),
    # 5-datasets (Ebrahimi et al. 2020): CIFAR-10, MNIST, SVHN, notMNIST, Fashion-MNIST,
    # 10 classes each, all padded / replicated to 3x32x32
    "5datasets": ((3, 32, 32), 50),
    "svhn": ((3, 32, 32), 10),
}


@dataclass(frozen=True)
class TaskStream:
    """A fixed sequence of tasks, each its own data set, stored as feature vectors."""
    feature_shape: tuple[int, ...]
    input_dtype: str          # the stored exemplar's dtype
    num_classes: int
    tasks: int
    backbone: str             # the backbone the stream's benchmark trains on its features


TASK_STREAMS: dict[str, TaskStream] = {
    # BMC's Stream (Fostiropoulos et al., CVPR 2023): 71 image-classification data sets in
    # sequence, one a task (fostiropoulos/stream_benchmark @ d50b37a8 datasets/seq_stream.py:
    # `include_ds`, 71 names; `feat_size = 768`, the CLIP ViT-L/14 image features of
    # fostiropoulos/auto-dataset autods/feat_extractors/clip.py, float32 numpy arrays);
    # a buffer item is stored at float32 (utils/buffer.py `init_tensors`: every attribute but
    # the labels is torch.float32); 2,866 classes (the BMC poster, seed 000).
    "stream71": TaskStream((768,), "float32", 2866, 71, "resmlp-clip-features"),
}

# clbudget's catalog names the atlas uses as they are (and loads: runnable claims)
CATALOG = ("cifar10", "cifar100", "tinyimagenet", "imagenet100", "mnist", "fashion-mnist")


@dataclass(frozen=True)
class DatasetShape:
    name: str
    image_shape: tuple[int, ...]   # (C, H, W) images, (D,) feature vectors
    num_classes: int
    loadable: bool          # clbudget reads it (`clbudget sweep --dataset NAME`)
    input_dtype: str = "uint8"     # a stored exemplar's dtype
    tasks: int | None = None       # a task stream's fixed number of tasks (else None)

    @property
    def exemplar_bytes(self) -> int:
        """One stored exemplar's values (no label)."""
        from clbudget.budget.costs import StreamShape
        from clbudget.budget.accountant import image_bytes
        return image_bytes(self.image_shape, StreamShape(1, self.image_shape, 1,
                                                         self.input_dtype).exemplar_dtype)


def dataset_names() -> tuple[str, ...]:
    return CATALOG + tuple(DATASETS) + tuple(TASK_STREAMS)


def dataset_shape(name: str) -> DatasetShape:
    """The dataset's stored image shape and classes; ValueError naming the nearest name."""
    if name in CATALOG:
        from clbudget.streams.catalog import dataset_info
        info = dataset_info(name)
        return DatasetShape(name, tuple(info.image_shape), info.num_classes, True)
    if name in DATASETS:
        shape, classes = DATASETS[name]
        return DatasetShape(name, shape, classes, False)
    if name in TASK_STREAMS:
        t = TASK_STREAMS[name]
        return DatasetShape(name, t.feature_shape, t.num_classes, False, t.input_dtype, t.tasks)
    from clbudget.streams.catalog import nearest
    raise ValueError(f"unknown dataset {name!r}; nearest: {nearest(str(name), dataset_names())!r}")


# ---------------------------------------------------------------- backbones

@dataclass(frozen=True)
class Built:
    """A backbone clbudget builds: its name there, and whether it is the ImageNet form."""
    clbudget_name: str
    imagenet_form: bool = False


@dataclass(frozen=True)
class Formula:
    """A backbone priced from its architecture: params (all float32), output width, conv
    weights (what a per-weight mask covers), BatchNorm widths and layers, and the (c_out x
    c_in) channel pairs of its convolutions: all of them (`conv_pairs`: one MTL scaling
    weight each) and those of the residual blocks' 3x3 convolutions (`block_conv_pairs`: one
    parallel 1x1 adapter weight each, SSRE)."""
    params: int
    out_dim: int
    conv_weights: int = 0
    bn_channels: int = 0
    bn_layers: int = 0
    conv_pairs: int = 0
    block_conv_pairs: int = 0


def basic_resnet(nf: int, blocks=(2, 2, 2, 2), in_channels: int = 3, *, bn: bool = True,
                 conv_bias: bool = False) -> Formula:
    """A ResNet of BasicBlocks with a 3x3 stride-1 stem conv and widths nf, 2nf, 4nf, 8nf; a
    1x1-conv shortcut where the shape changes; a BatchNorm after every conv (`bn`) or a bias
    on every conv (`conv_bias`).  GEM's reduced ResNet-18 (facebookresearch/
    GradientEpisodicMemory model/common.py `ResNet18(nclasses, nf=20)`, used by A-GEM, ER,
    GDumb on CIFAR) is nf=20; nf=64 is Mammoth's ResNet-18 (checked against clbudget's built
    `mammoth-resnet18` in tests/test_atlas.py); nf=64 without BatchNorm, every conv with a
    bias, is SSRE's `resnet18_cbam1` (`ssre_resnet18`)."""
    conv = 9 * in_channels * nf                       # stem conv 3x3
    pairs, block_pairs = in_channels * nf, 0
    outs = [nf]                                       # output channels of every conv
    c_in = nf
    for stage, n in enumerate(blocks):
        c = nf * 2 ** stage
        for b in range(n):
            stride = 2 if stage and not b else 1
            conv += 9 * c_in * c + 9 * c * c          # conv_a, conv_b
            pairs += c_in * c + c * c
            block_pairs += c_in * c + c * c
            outs += [c, c]
            if stride != 1 or c_in != c:              # projection shortcut
                conv += c_in * c
                pairs += c_in * c
                outs.append(c)
            c_in = c
    extra = 2 * sum(outs) if bn else 0
    extra += sum(outs) if conv_bias else 0
    return Formula(conv + extra, c_in, conv, sum(outs) if bn else 0, len(outs) if bn else 0,
                   pairs, block_pairs)


def ssre_resnet18(shape) -> Formula:
    """SSRE's backbone (zhukaii/SSRE @ 5475c980 utils/model/backbone/resnet18_no1.py
    `resnet18_cbam1`): a 3x3 stride-1 stem conv (line 70, bias=True), BasicBlocks (2, 2, 2, 2)
    of 3x3 convs with biases (`conv3x3`, bias=True) and NO BatchNorm (`conv_block` is a conv
    and, in mode 'parallel_adapters', a 1x1 adapter), 1x1 shortcut convs with biases; feature
    width 512 (line 79).  11,159,232 conv weights + 4,800 biases = 11,164,032 parameters; the
    adapters are priced by SSRE's row (atlas_prices.py)."""
    return basic_resnet(64, in_channels=shape[0], bn=False, conv_bias=True)


def vit(depth: int, width: int, mlp: int, patch: int, image: int = 224,
        in_channels: int = 3) -> Formula:
    """A ViT without its classification head (timm `VisionTransformer`, qkv with bias):
    patch embedding conv (C*p*p*D + D), class token (D), position embeddings
    ((N + 1) * D), `depth` blocks of two LayerNorms (4D), qkv (3D*D + 3D), projection
    (D*D + D), MLP (D*M + M + M*D + D), and the final LayerNorm (2D).
    ViT-B/16 (Dosovitskiy et al. 2021, Table 1; timm `vit_base_patch16_224`): 12 layers,
    width 768, MLP 3072, patch 16 at 224x224: 85,798,656 parameters (86,567,656 with the
    1000-class head)."""
    tokens = (image // patch) ** 2 + 1
    block = 4 * width + (3 * width * width + 3 * width) + (width * width + width) \
        + (width * mlp + mlp) + (mlp * width + width)
    params = (in_channels * patch * patch * width + width) + width + tokens * width \
        + depth * block + 2 * width
    return Formula(params, width)   # conv_weights 0: per-weight masks on a transformer unpriced


def dytox_convit(image: int) -> Formula:
    """DyTox's shared encoder (Douillard et al., CVPR 2022; arthurdouillard/dytox
    options/model/cifar_dytox.yaml and imagenet_dytox.yaml: ConViT, embed_dim 384, depth 6,
    num_heads 12, local_up_to_layer 5, class_attention true, mlp_ratio 4, qkv_bias False;
    patch 4 at 32x32 (CIFAR), 16 at 224x224 (ImageNet)).  continual/dytox.py keeps
    patch_embed, pos_embed, the 5 GPSA self-attention blocks (SAB) and the 1 class-attention
    block (TAB); the ConViT's final norm and head are not used.  continual/convit.py:
    - patch embedding: Conv2d(3, D, p, p) = 3*p*p*D + D; position embeddings N*D (no class
      token position);
    - SAB = 2 LayerNorms (4D) + GPSA [qk D*2D, v D*D (no bias), proj D*D + D, pos_proj
      Linear(3, H) = 3H + H, gating H] + MLP [D*4D + 4D + 4D*D + D];
    - TAB = 4D + ClassAttention [q, k, v 3*D*D (no bias), proj D*D + D] + MLP.
    The task tokens (one D-vector per task, the first is the ConViT's cls token) and the
    per-task classifiers are priced by DyTox's byte model (atlas_prices.py)."""
    D, H, depth, sabs = 384, 12, 6, 5
    patch = 4 if image <= 64 else 16
    size = image if image <= 64 else 224
    n = (size // patch) ** 2
    mlp = D * 4 * D + 4 * D + 4 * D * D + D
    sab = 4 * D + (2 * D * D + D * D + D * D + D + 3 * H + H + H) + mlp
    tab = 4 * D + (3 * D * D + D * D + D) + mlp
    params = (3 * patch * patch * D + D) + n * D + sabs * sab + (depth - sabs) * tab
    return Formula(params, D)


BACKBONES: dict[str, Built | Callable[[tuple], Formula]] = {
    # built by clbudget: CIFAR ResNets (PyCIL convs/cifar_resnet.py layout) and conv2
    **{name: Built(name) for name in ("conv2", "resnet14", "resnet20", "resnet26", "resnet32",
                                      "resnet44", "resnet56")},
    # ImageNet ResNets (torchvision layout), always in their ImageNet form
    **{name: Built(name, imagenet_form=True) for name in ("resnet10", "resnet18", "resnet34",
                                                          "resnet50")},
    "resnet18-cifar": Built("mammoth-resnet18"),   # Mammoth backbone/ResNetBlock.py resnet18
    # stream_benchmark backbone/MLP.py ResMLP on the stream's 768-d CLIP features
    # (nets/mlp.py; datasets/seq_stream.py `get_backbone`)
    "resmlp-clip-features": Built("resmlp"),
    # priced from their architecture (the functions above), given the stream's (C, H, W)
    "resnet18-reduced": lambda shape: basic_resnet(20, in_channels=shape[0]),
    "vit-b16": lambda shape: vit(12, 768, 3072, 16),
    # ViT-S/16 (Touvron et al. 2021, DeiT-S; timm `vit_small_patch16_224`): 12 layers,
    # width 384 (6 heads), MLP 1536, patch 16
    "vit-s16": lambda shape: vit(12, 384, 1536, 16),
    "dytox-convit": lambda shape: dytox_convit(max(shape[1:])),
    "resnet18-ssre": ssre_resnet18,
}

# A claim's `backbone: unstated` (the source names none) is priced as the backbone its other
# methods share, else as the dataset's convention here: CIFAR-100, iCaRL's 32-layer CIFAR
# ResNet (srebuffi/iCaRL main_cifar_100_theano.py n = 5; PyCIL's and MEMO's resnet32);
# ImageNet, ResNet-18 (iCaRL Sec. 4, LUCIR Sec. 4.1, PyCIL); a task stream, its benchmark's.
CONVENTION_BACKBONE = {"cifar100": "resnet32", "imagenet100": "resnet18",
                       "imagenet1k": "resnet18",
                       **{name: t.backbone for name, t in TASK_STREAMS.items()}}
UNSTATED = "unstated"


# transformer blocks of the formula ViTs (adapters are added to each)
TRANSFORMER_DEPTH = {"vit-b16": 12, "vit-s16": 12}


def backbone_names() -> tuple[str, ...]:
    return tuple(BACKBONES) + (UNSTATED,)


def is_built(name: str) -> bool:
    return isinstance(BACKBONES.get(name), Built)


def network_input(name: str, image_shape) -> tuple[int, ...]:
    """The input a built backbone is built for: the ImageNet form at 224x224, else the
    stream's own images (or feature vectors)."""
    spec = BACKBONES[name]
    if isinstance(spec, Built) and spec.imagenet_form:
        return (int(image_shape[0]), 224, 224)
    return tuple(int(d) for d in image_shape)


def same_network_at(name: str, image_shape) -> bool:
    """Whether `clbudget run --backbone <clbudget name>` on these images builds this very
    network (the ImageNet form on <= 64-pixel images gets clbudget's CIFAR stem: not)."""
    spec = BACKBONES[name]
    if not isinstance(spec, Built):
        return False
    return not spec.imagenet_form or (len(image_shape) == 3 and max(image_shape[1:]) > 64)


@lru_cache(maxsize=None)
def atlas_backbone_stats(name: str, image_shape: tuple[int, ...]):
    """`BackboneStats` (nets/backbones.py) of an atlas backbone on these images: counted
    from clbudget's module where it builds one, else from the formula."""
    from clbudget.nets.backbones import BackboneStats, backbone_stats
    if name not in BACKBONES:
        from clbudget.streams.catalog import nearest
        raise ValueError(f"unknown backbone {name!r}; nearest: {nearest(name, BACKBONES)!r}")
    spec = BACKBONES[name]
    if isinstance(spec, Built):
        return backbone_stats(spec.clbudget_name, network_input(name, image_shape))
    if len(image_shape) != 3:
        raise ValueError(f"{name} takes images (C, H, W), not feature vectors "
                         f"{tuple(image_shape)}")
    f = spec(tuple(int(d) for d in image_shape))
    # BN running mean and var (float32) + num_batches_tracked (int64) per BN layer
    buffers = 8 * f.bn_channels + 8 * f.bn_layers
    return BackboneStats(name=name, out_dim=f.out_dim, params=f.params, buffers_bytes=buffers,
                         generalized_params=f.params, generalized_buffers_bytes=buffers,
                         specialized_params=0, specialized_buffers_bytes=0,
                         bn_channels=f.bn_channels, bn_layers=f.bn_layers,
                         kxk_conv_channels=0, conv_weights=f.conv_weights)


@lru_cache(maxsize=None)
def conv_channel_pairs(name: str, image_shape: tuple[int, ...]) -> int:
    """Sum of c_out x c_in // groups over every convolution of an atlas backbone: the
    number of MTL scaling weights (one a kernel, `Conv2dMtl.mtl_weight` of shape (c_out,
    c_in, 1, 1)) a branch of it carries.  Counted from clbudget's module (meta device) where
    it builds one, else from the formula."""
    spec = BACKBONES[name]
    if isinstance(spec, Built):
        import torch
        from torch import nn
        from clbudget.nets.backbones import create_backbone
        with torch.device("meta"):
            net = create_backbone(spec.clbudget_name, network_input(name, image_shape))
        return sum(m.out_channels * m.in_channels // m.groups for m in net.modules()
                   if isinstance(m, nn.Conv2d))
    return spec(tuple(int(d) for d in image_shape)).conv_pairs


def block_conv_pairs(name: str, image_shape: tuple[int, ...]) -> int:
    """c_out x c_in of the residual blocks' 3x3 convs of a formula backbone (SSRE's parallel
    1x1 adapters, one weight each); 0 for the others."""
    spec = BACKBONES[name]
    return 0 if isinstance(spec, Built) else spec(tuple(int(d) for d in image_shape)) \
        .block_conv_pairs
