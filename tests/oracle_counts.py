"""A second, torch-free count of what clbudget's cost models price (issue 23): parameters and
buffers of the CIFAR backbones worked out from their layer lists, and every method's ledger
written from DESIGN.md section 2 and the storage rules of budget/costs.py and nets/stored.py.

Written without reading nets/backbones.py's counting code: the architectures are the papers'
(He et al. 2016 CIFAR ResNets, 16/32/64 channels, option-A parameter-free shortcuts; MEMO's
conv2: two 3x3 conv(+bias)/BN/ReLU/max-pool blocks of 64 channels), each layer written out.
Nothing here imports torch or clbudget.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Conv:
    cin: int
    cout: int
    k: int
    bias: bool = False


@dataclass(frozen=True)
class BN:
    c: int


def conv2_stages(c_in: int) -> list[list]:
    """[block a, block b]: conv 3x3 (bias) + BN, twice, 64 channels."""
    return [[Conv(c_in, 64, 3, True), BN(64)], [Conv(64, 64, 3, True), BN(64)]]


def cifar_resnet_stages(depth: int, c_in: int) -> list[list]:
    """[stem, stage1, stage2, stage3]: n = (depth - 2) / 6 basic blocks per stage."""
    n = (depth - 2) // 6
    stem = [Conv(c_in, 16, 3), BN(16)]
    stages = [stem]
    width_in = 16
    for width in (16, 32, 64):
        layers = []
        for b in range(n):
            cin = width_in if b == 0 else width
            layers += [Conv(cin, width, 3), BN(width), Conv(width, width, 3), BN(width)]
        width_in = width
        stages.append(layers)
    return stages


def stages_of(arch: str, c_in: int) -> list[list]:
    if arch == "conv2":
        return conv2_stages(c_in)
    return cifar_resnet_stages(int(arch[len("resnet"):]), c_in)


def flat(stages) -> list:
    return [layer for s in stages for layer in s]


def n_params(layers) -> int:
    total = 0
    for l in layers:
        if isinstance(l, Conv):
            total += l.cin * l.cout * l.k * l.k + (l.cout if l.bias else 0)
        else:
            total += 2 * l.c                     # BN weight + bias
    return total


def buffer_bytes(layers, dtype: str = "fp32") -> int:
    """BN running mean + var (float32, or 2 bytes at fp16/bf16) + int64 num_batches_tracked."""
    per = 2 if dtype in ("fp16", "bf16") else 4
    return sum(2 * per * l.c + 8 for l in layers if isinstance(l, BN))


def param_bytes(layers, dtype: str = "fp32") -> int:
    """Parameter bytes once stored at `dtype` (nets/stored.py's rule, counted by hand):
    fp16/bf16 2 bytes each; int8: conv weights 1 byte + one float32 scale per output channel,
    conv biases and BN affine float32."""
    if dtype == "fp32":
        return 4 * n_params(layers)
    if dtype in ("fp16", "bf16"):
        return 2 * n_params(layers)
    total = 0
    for l in layers:
        if isinstance(l, Conv):
            total += l.cin * l.cout * l.k * l.k + 4 * l.cout + (4 * l.cout if l.bias else 0)
        else:
            total += 4 * 2 * l.c
    return total


def head_param_bytes(d: int, k: int, dtype: str = "fp32") -> int:
    """nn.Linear(d, k): weight + bias."""
    if dtype == "fp32":
        return 4 * (d * k + k)
    if dtype in ("fp16", "bf16"):
        return 2 * (d * k + k)
    return d * k + 4 * k + 4 * k                 # int8 codes + float32 scale and bias per row


def bn_channels(layers) -> int:
    return sum(l.c for l in layers if isinstance(l, BN))


def bn_layers(layers) -> int:
    return sum(1 for l in layers if isinstance(l, BN))


def kxk_channels(layers) -> int:
    return sum(l.cout for l in layers if isinstance(l, Conv) and l.k > 1)


def conv_weights(layers) -> int:
    return sum(l.cin * l.cout * l.k * l.k for l in layers if isinstance(l, Conv))


OUT_DIM = 64     # conv2 and the CIFAR ResNets end in 64 channels, globally pooled


def split(arch: str, c_in: int, specialized_stages: int = 1):
    """(generalized layers, specialized layers): MEMO's split (the last stage specialized);
    MEMO-2 moves one more stage (for conv2, its whole first block) into the specialized part."""
    stages = stages_of(arch, c_in)
    cut = len(stages) - specialized_stages
    return flat(stages[:cut]), flat(stages[cut:])


def oracle_ledger(method: str, arch: str, num_tasks: int, image_shape, num_classes: int,
                  n: int, convention: str, store_dtype: str = "fp32") -> dict:
    """{item name: (kind, bytes)} of a method's ledger after the last task, by hand.

    Strict: every network at float32 with BN buffers, full-width heads, uint8 images + int16
    labels.  Memo: feature-extractor parameters x 4 + uint8 images.  `store_dtype`: the frozen
    copies (teacher; DER's T-1 old backbones; MEMO's T-1 old specialized blocks; CLR's
    backbone) held at that dtype."""
    T, K, d = num_tasks, num_classes, store_dtype
    c, h, w = image_shape
    layers = flat(stages_of(arch, c))
    P4, B = 4 * n_params(layers), buffer_bytes(layers)
    head = 4 * (OUT_DIM * K + K)
    strict = convention == "strict"
    out: dict = {}

    def net():
        if strict:
            out["net.params"] = ("params", P4 + head)
            out["net.buffers"] = ("buffers", B)
        else:
            out["net.feature_params"] = ("params", P4)

    def exemplars(logits: bool = False):
        out["memory.images"] = ("exemplars", n * c * h * w)
        if strict:
            out["memory.labels"] = ("exemplar_aux", 2 * n)
            if logits:
                out["memory.logits"] = ("exemplar_aux", 4 * n * K)

    def teacher():
        if strict:    # backbone + head, parameters and buffers, at the stored dtype
            out["old_model"] = ("old_model", param_bytes(layers, d) + head_param_bytes(OUT_DIM, K, d)
                                + buffer_bytes(layers, d))

    if method in ("finetune", "joint"):
        net()
    elif method == "replay":
        net(); exemplars()
    elif method == "lwf":
        net(); teacher()
    elif method == "wa":
        net(); teacher(); exemplars()
    elif method == "icarl":
        net(); teacher(); exemplars()
        if strict:
            out["class_means"] = ("class_stats", 4 * K * OUT_DIM)
    elif method == "ewc":
        net()
        if strict:
            out["fisher"] = ("importance", P4 + head)
            out["anchor_params"] = ("importance", P4 + head)
    elif method == "derpp":
        net(); exemplars(logits=True)
    elif method == "bmc":
        net(); exemplars()
        out["memory.features"] = ("exemplar_aux", 4 * n * OUT_DIM)
    elif method == "der":   # the newest backbone trains at fp32; T-1 old ones stored
        params = P4 + (T - 1) * param_bytes(layers, d)
        if strict:
            out["backbones.params"] = ("params", params)
            out["backbones.buffers"] = ("buffers", B + (T - 1) * buffer_bytes(layers, d))
            out["head"] = ("params", 4 * (T * OUT_DIM * K + K))
        else:
            out["backbones.feature_params"] = ("params", params)
        exemplars()
    elif method in ("memo", "memo2"):
        g, s = split(arch, c, 1 if method == "memo" else 2)
        spec = 4 * n_params(s) + (T - 1) * param_bytes(s, d)
        if strict:
            out["generalized.params"] = ("params", 4 * n_params(g))
            out["generalized.buffers"] = ("buffers", buffer_bytes(g))
            out["specialized.params"] = ("params", spec)
            out["specialized.buffers"] = ("buffers", buffer_bytes(s) + (T - 1) * buffer_bytes(s, d))
            out["head"] = ("params", 4 * (T * OUT_DIM * K + K))
        else:
            out["generalized.feature_params"] = ("params", 4 * n_params(g))
            out["specialized.feature_params"] = ("params", spec)
        exemplars()
    elif method == "clr":   # frozen backbone; per task: 3x3 depthwise kernels, BN, head
        kernels = T * 4 * 9 * kxk_channels(layers)
        if strict:
            out["backbone.params"] = ("params", param_bytes(layers, d))
            out["backbone.buffers"] = ("buffers", buffer_bytes(layers, d))
            out["clr.kernels"] = ("per_task", kernels)
            out["clr.bn"] = ("per_task", T * (16 * bn_channels(layers) + 8 * bn_layers(layers)))
            out["clr.heads"] = ("per_task", head)   # T heads of inc classes: K rows in all
        else:
            out["backbone.feature_params"] = ("params", param_bytes(layers, d))
            out["clr.kernels"] = ("per_task", kernels)
            out["clr.bn_affine"] = ("per_task", T * 8 * bn_channels(layers))
    elif method == "mind":  # one uint8 task index per conv weight; a BN set per task
        net()
        out["masks"] = ("masks", conv_weights(layers))
        out["bn_per_task"] = ("per_task", T * (16 * bn_channels(layers) + 8 * bn_layers(layers))
                              if strict else T * 8 * bn_channels(layers))
    else:
        raise KeyError(method)
    return {k: v for k, v in out.items() if v[1]}
