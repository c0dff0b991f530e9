"""Byte accounting against numbers counted by hand (issue 23, part A).

Expected values never come from the code under test: literal arithmetic from the layer
shapes (a 3x3 conv 16->16 is 16*16*9 = 2304 weights), or tests/oracle_counts.py, a torch-free
second count of the architectures and of every method's ledger written from DESIGN.md
section 2.  Streams: B5Inc1 over 8 classes (unequal first task) at 3x32x32, B0Inc2 over 10
classes at 1x28x28 (Fashion-MNIST's shape) and B2Inc2 over 6 classes at 3x64x64.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from clbudget.budget.accountant import (format_bytes, module_bytes, parse_budget)
from clbudget.budget.allocator import AllocatorConfig, BudgetError, allocate
from clbudget.budget.costs import COST_MODELS, StreamShape
from clbudget.budget.storage import STORED_PARTS, allocate_stored, stored_ledger
from clbudget.nets.backbones import backbone_stats, create_backbone
from clbudget.nets.stored import store_as, stored_bytes
from tests import oracle_counts as oc

B5INC1 = StreamShape(4, (3, 32, 32), 8)       # 5 + 1 + 1 + 1 classes
FMNIST = StreamShape(5, (1, 28, 28), 10)      # B0Inc2
BIG = StreamShape(3, (3, 64, 64), 6)          # B2Inc2
STREAMS = {"b5inc1": B5INC1, "fmnist": FMNIST, "64px": BIG}
BACKBONES = ("conv2", "resnet20", "resnet32")


def by_item(ledger) -> dict:
    return {i.name: (i.kind, i.n_bytes) for i in ledger.items}


# --- the architectures, counted as literals --------------------------------------------------

def test_the_second_counter_gives_the_literal_resnet32_and_conv2_counts():
    # resnet32 (n = 5): stem conv 3->16 (432) + BN (32)
    stem = 3 * 16 * 9 + 2 * 16
    stage1 = 5 * (2 * 2304 + 2 * 2 * 16)                          # 16->16 convs are 2304 each
    stage2 = (4608 + 9216 + 2 * 2 * 32) + 4 * (2 * 9216 + 2 * 2 * 32)
    stage3 = (18432 + 36864 + 2 * 2 * 64) + 4 * (2 * 36864 + 2 * 2 * 64)
    assert stem + stage1 + stage2 + stage3 == 463_504
    layers = oc.flat(oc.stages_of("resnet32", 3))
    assert oc.n_params(layers) == 463_504 and oc.param_bytes(layers) == 1_854_016
    # 31 BN layers, 16 + 10*16 + 10*32 + 10*64 = 1136 channels: mean+var float32 + int64 counter
    assert oc.buffer_bytes(layers) == 8 * 1136 + 8 * 31 == 9_336
    # conv2: conv 3->64 3x3 + bias, BN 64, conv 64->64 3x3 + bias, BN 64
    assert oc.n_params(oc.flat(oc.conv2_stages(3))) == (1728 + 64 + 128) + (36864 + 64 + 128) == 38_976
    assert oc.n_params(oc.flat(oc.conv2_stages(1))) == (576 + 64 + 128) + (36864 + 64 + 128) == 37_824
    # resnet20 (n = 3)
    assert oc.n_params(oc.flat(oc.stages_of("resnet20", 3))) == \
        464 + 3 * 4672 + (13952 + 2 * 18560) + (55552 + 2 * 73984) == 269_072


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28), (3, 64, 64)])
@pytest.mark.parametrize("arch", ["conv2", "resnet14", "resnet20", "resnet26", "resnet32"])
def test_backbone_stats_match_the_layer_list_count(arch, shape):
    layers = oc.flat(oc.stages_of(arch, shape[0]))
    g, s = oc.split(arch, shape[0])
    st = backbone_stats(arch, shape)
    assert (st.params, st.buffers_bytes, st.out_dim) == (oc.n_params(layers),
                                                        oc.buffer_bytes(layers), 64)
    assert (st.generalized_params, st.specialized_params) == (oc.n_params(g), oc.n_params(s))
    assert (st.generalized_buffers_bytes, st.specialized_buffers_bytes) == \
        (oc.buffer_bytes(g), oc.buffer_bytes(s))
    assert (st.bn_channels, st.bn_layers, st.kxk_conv_channels, st.conv_weights) == \
        (oc.bn_channels(layers), oc.bn_layers(layers), oc.kxk_channels(layers),
         oc.conv_weights(layers))


def test_streams_count_their_tasks_from_the_protocol():
    """B{init}Inc{inc}: a first task of init classes (inc when init = 0), then inc each."""
    from clbudget.budget.costs import num_tasks_of
    assert StreamShape.from_protocol((3, 32, 32), 8, 5, 1) == B5INC1        # 5 + 1 + 1 + 1
    assert StreamShape.from_protocol((1, 28, 28), 10, 0, 2) == FMNIST       # 2 x 5
    assert StreamShape.from_protocol((3, 64, 64), 6, 2, 2) == BIG           # 2 + 2 + 2
    assert num_tasks_of(7, 7, 3) == 1 and num_tasks_of(13, 1, 4) == 4 and num_tasks_of(9, 0, 9) == 1


# --- every item of every cost model, both conventions -----------------------------------------

@pytest.mark.parametrize("convention", ["strict", "memo"])
@pytest.mark.parametrize("stream", sorted(STREAMS))
@pytest.mark.parametrize("method", sorted(COST_MODELS))
def test_cost_model_items_equal_the_hand_count(method, stream, convention):
    s = STREAMS[stream]
    for arch in BACKBONES:
        for n in (0, 1, 37):
            got = by_item(COST_MODELS[method].cost(s, arch, n, convention))
            want = oc.oracle_ledger(method, arch, s.num_tasks, s.image_shape, s.num_classes,
                                    n if COST_MODELS[method].uses_exemplars else 0, convention)
            assert got == want, (arch, n)


def test_literal_ledgers_resnet32_b5inc1():
    """B5Inc1 over 8 classes (T = 4), resnet32, 40 exemplars: every item as literal arithmetic."""
    net_p = 1_854_016 + 4 * (64 * 8 + 8)           # backbone + 8-way head
    assert net_p == 1_856_096
    icarl = by_item(COST_MODELS["icarl"].cost(B5INC1, "resnet32", 40, "strict"))
    assert icarl == {"net.params": ("params", 1_856_096), "net.buffers": ("buffers", 9_336),
                     "old_model": ("old_model", 1_856_096 + 9_336),
                     "memory.images": ("exemplars", 40 * 3072),
                     "memory.labels": ("exemplar_aux", 40 * 2),
                     "class_means": ("class_stats", 8 * 64 * 4)}
    assert by_item(COST_MODELS["icarl"].cost(B5INC1, "resnet32", 40, "memo")) == {
        "net.feature_params": ("params", 1_854_016), "memory.images": ("exemplars", 122_880)}
    der = by_item(COST_MODELS["der"].cost(B5INC1, "resnet32", 40, "strict"))
    assert der["backbones.params"] == ("params", 4 * 1_854_016)
    assert der["backbones.buffers"] == ("buffers", 4 * 9_336)
    assert der["head"] == ("params", 4 * (4 * 64 * 8 + 8))       # one head over 4 x 64 features
    memo = by_item(COST_MODELS["memo"].cost(B5INC1, "resnet32", 40, "memo"))
    # generalized: stem + stage1 + stage2 = 464 + 23360 + 88192; stage3 = 351488
    assert memo == {"generalized.feature_params": ("params", 4 * (464 + 23_360 + 88_192)),
                    "specialized.feature_params": ("params", 4 * 4 * 351_488),
                    "memory.images": ("exemplars", 122_880)}
    memo2 = by_item(COST_MODELS["memo2"].cost(B5INC1, "resnet32", 0, "memo"))
    assert memo2 == {"generalized.feature_params": ("params", 4 * (464 + 23_360)),
                     "specialized.feature_params": ("params", 4 * 4 * (88_192 + 351_488))}
    derpp = by_item(COST_MODELS["derpp"].cost(B5INC1, "resnet32", 40, "strict"))
    assert derpp["memory.logits"] == ("exemplar_aux", 40 * 8 * 4)
    bmc = by_item(COST_MODELS["bmc"].cost(B5INC1, "resnet32", 40, "memo"))
    assert bmc["memory.features"] == ("exemplar_aux", 40 * 64 * 4)


def test_literal_ledgers_conv2_fashion_mnist():
    """conv2 on 1x28x28, B0Inc2 over 10 classes (T = 5): 37,824 params, 2 BN layers of 64."""
    P, bn = 37_824, 8 * 128 + 8 * 2
    head = 4 * (64 * 10 + 10)
    assert by_item(COST_MODELS["replay"].cost(FMNIST, "conv2", 100, "strict")) == {
        "net.params": ("params", 4 * P + head), "net.buffers": ("buffers", bn),
        "memory.images": ("exemplars", 100 * 784), "memory.labels": ("exemplar_aux", 200)}
    ewc = by_item(COST_MODELS["ewc"].cost(FMNIST, "conv2", 0, "strict"))
    assert ewc["fisher"] == ewc["anchor_params"] == ("importance", 4 * P + head)
    clr = by_item(COST_MODELS["clr"].cost(FMNIST, "conv2", 0, "strict"))
    assert clr == {"backbone.params": ("params", 4 * P), "backbone.buffers": ("buffers", bn),
                   "clr.kernels": ("per_task", 5 * 4 * 9 * 128),
                   "clr.bn": ("per_task", 5 * (4 * 4 * 128 + 8 * 2)),
                   "clr.heads": ("per_task", head)}
    mind = by_item(COST_MODELS["mind"].cost(FMNIST, "conv2", 0, "memo"))
    assert mind == {"net.feature_params": ("params", 4 * P),
                    "masks": ("masks", 576 + 36_864),             # conv weights, no biases
                    "bn_per_task": ("per_task", 5 * 2 * 4 * 128)}
    assert COST_MODELS["joint"].cost(FMNIST, "conv2", 0, "strict").total_bytes == 4 * P + head + bn


# --- stored dtypes ------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16", "int8"])
@pytest.mark.parametrize("convention", ["strict", "memo"])
@pytest.mark.parametrize("method", sorted(STORED_PARTS))
def test_stored_ledgers_equal_the_hand_count(method, convention, dtype):
    for s in (B5INC1, FMNIST):
        for arch in ("conv2", "resnet20"):
            led = stored_ledger(COST_MODELS[method].cost(s, arch, 30, convention), method, s,
                                arch, dtype)
            n = 30 if COST_MODELS[method].uses_exemplars else 0
            assert by_item(led) == oc.oracle_ledger(method, arch, s.num_tasks, s.image_shape,
                                                    s.num_classes, n, convention, dtype), arch


def test_stored_literals_resnet32_teacher_and_der():
    """resnet32 with an 8-way head.  fp16: 2 bytes per float, BN counters 8 each.  int8: 1 byte
    per weight + one float32 scale per output channel (31 convs: 16 + 10*16 + 10*32 + 10*64 =
    1136 channels, and 8 head rows), BN affine/statistics and the head bias float32."""
    s = B5INC1
    conv_w = 463_504 - 2 * 1136                       # all parameters but BN affine
    fp16 = 2 * (463_504 + 64 * 8 + 8) + (2 * 2 * 1136 + 8 * 31)
    int8 = (conv_w + 4 * 1136 + 4 * 2 * 1136          # codes, scales, BN affine
            + 64 * 8 + 4 * 8 + 4 * 8                  # head codes, scales, bias
            + 9_336)                                  # BN buffers unchanged
    for dtype, want in (("fp16", fp16), ("bf16", fp16), ("int8", int8)):
        led = stored_ledger(COST_MODELS["lwf"].cost(s, "resnet32", 0, "strict"), "lwf", s,
                            "resnet32", dtype)
        assert by_item(led)["old_model"] == ("old_model", want), dtype
    der = by_item(stored_ledger(COST_MODELS["der"].cost(s, "resnet32", 0, "memo"), "der", s,
                                "resnet32", "int8"))
    assert der["backbones.feature_params"] == ("params", 1_854_016 + 3 * (conv_w + 4 * 1136
                                                                          + 8 * 1136))


@pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16", "int8"])
def test_stored_bn_and_linear_bytes_by_hand(dtype):
    """A stored BN layer and linear layer hold exactly the bytes of the stored-dtype rule."""
    bn, lin, conv = nn.BatchNorm2d(24), nn.Linear(40, 7), nn.Conv2d(5, 6, 3, bias=True)
    with torch.no_grad():
        bn.running_var.uniform_(0.5, 2)
    want = {   # (param bytes, buffer bytes)
        "fp32": {"bn": (2 * 24 * 4, 2 * 24 * 4 + 8), "lin": (4 * (280 + 7), 0),
                 "conv": (4 * (270 + 6), 0)},
        "fp16": {"bn": (2 * 24 * 2, 2 * 24 * 2 + 8), "lin": (2 * (280 + 7), 0),
                 "conv": (2 * (270 + 6), 0)},
        "int8": {"bn": (2 * 24 * 4, 2 * 24 * 4 + 8), "lin": (280 + 4 * 7 + 4 * 7, 0),
                 "conv": (270 + 4 * 6 + 4 * 6, 0)}}
    want["bf16"] = want["fp16"]
    for key, module in (("bn", bn), ("lin", lin), ("conv", conv)):
        assert stored_bytes(module, dtype) == want[dtype][key], key      # the meta-copy price
        store_as(module, dtype)
        mb = module_bytes(module)
        assert (mb.param_bytes, mb.buffer_bytes) == want[dtype][key], key  # what is held
    if dtype in ("fp16", "bf16"):
        assert bn.parametrizations.running_var.original0.dtype == oc_dtype(dtype)
        assert bn.num_batches_tracked.dtype == torch.int64


def oc_dtype(name):
    return {"fp16": torch.float16, "bf16": torch.bfloat16}[name]


def test_a_stored_backbone_holds_the_hand_counted_bytes():
    """conv2 on 1x28x28 stored at each dtype: module_bytes of the real module == hand count."""
    layers = oc.flat(oc.conv2_stages(1))
    for dtype in ("fp16", "bf16", "int8"):
        net = store_as(create_backbone("conv2", (1, 28, 28)), dtype)
        mb = module_bytes(net)
        assert (mb.param_bytes, mb.buffer_bytes) == (oc.param_bytes(layers, dtype),
                                                     oc.buffer_bytes(layers, dtype)), dtype
    # int8 literal: codes 576 + 36864, scales 4*(64+64), conv biases 4*128, BN affine 4*256
    assert oc.param_bytes(layers, "int8") == 576 + 36_864 + 4 * 128 + 4 * 128 + 4 * 256


# --- allocations priced at stored dtypes, by hand ----------------------------------------------

def test_allocate_stored_der_int8_by_hand():
    """DER on B5Inc1 (T = 4), resnet32, int8: 1 fp32 backbone + 3 int8 ones, strict."""
    s = B5INC1
    conv_w = 463_504 - 2 * 1136
    int8_p, buf = conv_w + 4 * 1136 + 8 * 1136, 9_336
    fixed = 1_854_016 + 3 * int8_p + 4 * buf + 4 * (4 * 64 * 8 + 8)
    budget = fixed + 500 * 3074 + 3073
    a = allocate_stored("der", budget, s, backbone="resnet32", store_dtype="int8")
    assert (a.n_exemplars, a.slack_bytes, a.store_dtype) == (500, 3073, "int8")
    assert a.per_class_quota == 500 // 8


# --- budget units -------------------------------------------------------------------------------

MODEL = {"resnet32": 1_854_016, "conv2": 4 * 38_976}


@pytest.mark.parametrize("text,want", [
    ("1", 1), ("123456", 123_456), ("123456B", 123_456), ("123456b", 123_456),
    ("2kB", 2_000), ("2KB", 2_000), ("2kb", 2_000), ("3MB", 3_000_000), ("3mb", 3_000_000),
    ("3Mb", 3_000_000), ("1GB", 10**9), ("1gB", 10**9),
    ("2KiB", 2_048), ("2kib", 2_048), ("2kiB", 2_048), ("3MiB", 3 * 1_048_576),
    ("1GiB", 1_073_741_824), ("1gib", 1_073_741_824),
    ("1.5kB", 1_500), ("1.0005kB", 1_000), ("0.0015kB", 1), (".5KiB", 512), ("1.KiB", 1_024),
    ("7.63MiB", 8_000_634),          # 7.63 * 1,048,576 = 8,000,634.88: rounded down
    ("1.9999B", 1), ("12 MB", 12_000_000), ("12\tKiB", 12_288),
    ("2000ex", 2000 * 3072), ("2000EX", 2000 * 3072), ("2000 Ex", 2000 * 3072),
    ("0.5ex", 1536), ("1.0001ex", 3072),   # 3072.3072 rounded down
    ("1xresnet32", 1_854_016), ("2.5xresnet32", 4_635_040), ("2 x conv2", 2 * 155_904),
    ("0.1xconv2", 15_590),           # 15,590.4 down
    ("1xresnet32+2000ex", 1_854_016 + 6_144_000), (" 1MiB + 1KiB ", 1_049_600),
    ("1kB+1KiB+1B", 1000 + 1024 + 1), ("0.3ex+0.3ex", 1842),   # each term rounded down alone
])
def test_every_unit_parses_to_its_documented_value(text, want):
    assert parse_budget(text, image_shape=(3, 32, 32), model_bytes=MODEL.__getitem__) == want


@pytest.mark.parametrize("text,shape,want", [
    ("100ex", (1, 28, 28), 78_400), ("100ex", (3, 64, 64), 1_228_800),
    ("0.3ex", (1, 28, 28), 235),      # 235.2 down
    ("1ex+1B", (3, 64, 64), 12_289)])
def test_exemplar_units_use_the_streams_image_shape(text, shape, want):
    assert parse_budget(text, image_shape=shape) == want


def test_model_units_use_the_model_named():
    sizes = {"resnet20": 4 * 269_072, "conv2": 4 * 37_824}
    assert parse_budget("1xresnet20", model_bytes=sizes.__getitem__) == 1_076_288
    assert parse_budget("3xconv2", model_bytes=sizes.__getitem__) == 453_888
    assert parse_budget("1xresnet20+1xconv2", model_bytes=sizes.__getitem__) == 1_227_584


@pytest.mark.parametrize("text,match", [
    ("0", r"budget must be positive, got '0' \(0 bytes\)"),
    ("0MiB", r"must be positive, got '0MiB'"),
    ("0.0001B", r"must be positive, got '0.0001B' \(0 bytes\)"),   # rounds down to 0 bytes
    ("0ex", "must be positive"),
    ("-5MB", r"cannot parse budget '-5MB'; accepted forms"),
    ("-1", "cannot parse budget '-1'"),
    ("", "cannot parse budget ''"), ("   ", "cannot parse budget"),
    ("1MiB+", r"cannot parse budget '1MiB\+'"), ("+1MiB", "cannot parse"),
    ("1MiB++1KiB", "cannot parse"), ("1MiB+ +1KiB", "cannot parse"),
    ("5TB", "cannot parse budget '5TB'"), ("5 gallons", "cannot parse"),
    ("5KIB", "cannot parse"), ("5KIb", "cannot parse"),  # only a lower-case i is admitted
    ("5kiB", None), ("5mB", None), ("1e6", "cannot parse"), ("1,000", "cannot parse"),
    ("5Mi", "cannot parse"), ("5iB", "cannot parse"),
])
def test_refusals_name_what_was_wrong(text, match):
    parse = lambda: parse_budget(text, image_shape=(3, 32, 32), model_bytes=MODEL.__getitem__)
    if match is None:    # case variants the regex admits ([kKmMgG]i?[bB]): accepted
        assert parse() > 0
        return
    with pytest.raises(ValueError, match=match):
        parse()


def test_refusals_of_ex_and_model_units_without_their_context():
    with pytest.raises(ValueError, match="counts exemplars: give the image shape"):
        parse_budget("2000ex")
    with pytest.raises(ValueError, match="counts model equivalents: no model sizes given"):
        parse_budget("1xresnet32")
    with pytest.raises(KeyError):
        parse_budget("1xresnet99", model_bytes=MODEL.__getitem__)
    assert parse_budget(4096) == 4096
    with pytest.raises(ValueError, match="positive"):
        parse_budget(0)
    with pytest.raises(ValueError, match="accepted forms"):
        parse_budget(True)


def test_accepted_forms_text_lists_every_unit_family():
    with pytest.raises(ValueError) as e:
        parse_budget("nonsense")
    for form in ("123456B", "8MB", "7.63MiB", "2000ex", "1xresnet32", "+"):
        assert form in str(e.value)
    assert format_bytes(3 * 2**30 + 2**29) == "3.50 GiB (3,758,096,384 B)"
    assert format_bytes(1536) == "1.50 KiB (1,536 B)"
    assert format_bytes(1023) == "1,023 B"


# --- codecs: sizes, capacity and bookkeeping -----------------------------------------------------

def test_default_bytes_per_image_by_hand():
    from clbudget.streams.codecs import default_bytes_per_image, parse_codec
    d = lambda spec, shape: default_bytes_per_image(parse_codec(spec), shape)
    assert d("raw", (3, 32, 32)) == 3072 and d("raw", (1, 28, 28)) == 784
    assert d("down:16", (3, 32, 32)) == 768 and d("down:7", (1, 28, 28)) == 49
    assert d("down:32", (3, 64, 64)) == 3 * 32 * 32
    # CIFAR-10 measurements (bench/codecs.py) scaled by pixels; a quality takes the nearest's
    assert d("png", (3, 32, 32)) == 2315 and d("png", (1, 28, 28)) == pytest.approx(2315 * 784 / 3072)
    assert d("jpeg:75", (3, 32, 32)) == 923 and d("jpeg:75", (3, 64, 64)) == 4 * 923
    assert d("jpeg:90", (3, 32, 32)) == 1054 and d("jpeg:95", (3, 32, 32)) == 1054
    assert d("jpeg:82", (3, 32, 32)) == 923 and d("jpeg:83", (3, 32, 32)) == 1054
    assert d("jpeg:1", (3, 32, 32)) == 766 and d("jpeg:37", (3, 32, 32)) == 766
    assert d("jpeg:38", (3, 32, 32)) == 854   # |38-50| = 12 < |38-25| = 13
    assert d("jpeg:62", (3, 32, 32)) == 854 and d("jpeg:63", (3, 32, 32)) == 923


def test_estimate_bytes_per_image_by_hand():
    """Fixed-size codecs: C*H*W or C*S*S whatever the images; variable ones: the mean encoded
    length, counted here by encoding with Pillow directly."""
    import io
    from PIL import Image
    from clbudget.streams.codecs import estimate_bytes_per_image, parse_codec
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (12, 1, 28, 28), dtype=torch.uint8, generator=g)
    assert estimate_bytes_per_image(parse_codec("raw"), x) == 784.0
    assert estimate_bytes_per_image(parse_codec("down:14"), x) == 196.0
    assert estimate_bytes_per_image(parse_codec("down:14"), x[:0]) == 196.0

    def png_len(img):   # (1, H, W) uint8 -> PNG bytes, Pillow's default compression
        buf = io.BytesIO()
        Image.fromarray(img[0].numpy()).save(buf, format="PNG")
        return len(buf.getvalue())
    want = np.mean([png_len(img) for img in x])            # 12 < 256: every image counted
    assert estimate_bytes_per_image(parse_codec("png"), x) == pytest.approx(want)
    same = x[:1].repeat(300, 1, 1, 1)                      # 300 > 256: a sample, same sizes
    assert estimate_bytes_per_image(parse_codec("png"), same) == png_len(x[0])


def test_codec_memory_holds_its_capacity_in_slot_arrays_by_hand():
    """A codec memory of 10 slots and 1000 bytes: codes 1000 B + int64 offset (8) + int32 length
    (4) + int16 label (2) per slot (+ float32 logits per slot where kept)."""
    from clbudget.conformance import held_bytes
    from clbudget.methods.codecs import CodecMemory, parse_codec
    m = CodecMemory(10, 1000, (3, 32, 32), torch.device("cpu"), parse_codec("png"))
    assert sum(t.numel() * t.element_size() for _, _, t in m.retained()) == 1000 + 10 * (8 + 4 + 2)
    holder = type("Holder", (), {})()
    holder.memory = m
    assert held_bytes(holder) == 1140
    m = CodecMemory(7, 500, (1, 28, 28), torch.device("cpu"), parse_codec("down:7"), logits_dim=5)
    kinds = {name: (kind, t.numel() * t.element_size()) for name, kind, t in m.retained()}
    assert kinds == {"memory.codes": ("exemplars", 500), "memory.offsets": ("exemplar_aux", 56),
                     "memory.lengths": ("exemplar_aux", 28), "memory.labels": ("exemplar_aux", 14),
                     "memory.logits": ("exemplar_aux", 7 * 5 * 4)}


@pytest.mark.parametrize("convention", ["strict", "memo"])
def test_codec_allocation_bookkeeping_by_hand(convention):
    """Replay on resnet32, CIFAR shape, B5Inc1 over 8 classes, down:16 (768 B an image).
    strict: a slot costs 768 + 2 (label) + 8 (offset) + 4 (length); the byte buffer takes the
    rest.  memo: pixels only (no labels, offsets or lengths)."""
    s = B5INC1
    if convention == "strict":
        fixed, slot = 1_854_016 + 4 * (64 * 8 + 8) + 9_336, 14
    else:
        fixed, slot = 1_854_016, 0
    budget = fixed + 1000 * (768 + slot) + 500
    a = allocate_stored("replay", budget, s, backbone="resnet32", codec="down:16",
                        config=AllocatorConfig(convention=convention))
    assert a.n_exemplars == 1000 and a.exemplar_buffer_bytes == 1000 * 768 + 500
    assert a.total_bytes == budget and a.slack_bytes == 0
    items = by_item(a.ledger)
    assert items["memory.codes"] == ("exemplars", 768_500)
    if convention == "strict":
        assert items["memory.offsets"] == ("exemplar_aux", 8000)
        assert items["memory.lengths"] == ("exemplar_aux", 4000)
        assert items["memory.labels"] == ("exemplar_aux", 2000)
    else:
        assert set(items) == {"net.feature_params", "memory.codes"}
    # a jpeg estimate of 900.5 B an image: floor((budget - fixed) / (slot + 900.5))
    j = allocate_stored("replay", budget, s, backbone="resnet32", codec="jpeg:75",
                        bytes_per_image=900.5, config=AllocatorConfig(convention=convention))
    n = int((budget - fixed) // (slot + 900.5))
    assert j.n_exemplars == n and j.exemplar_buffer_bytes == budget - fixed - n * slot
    # DER++ keeps float32 logits per slot (strict): 8 classes x 4 B more a slot
    d = allocate_stored("derpp", budget, s, backbone="resnet32", codec="down:16",
                        config=AllocatorConfig(convention=convention))
    per = 768 + slot + (32 if convention == "strict" else 0)
    assert d.n_exemplars == (budget - fixed) // per


def test_raw_allocation_by_hand_on_fashion_mnist():
    """finetune/replay on conv2 1x28x28 (T = 5): the fit is floor((budget - fixed) / per)."""
    fixed = 4 * 37_824 + 4 * (64 * 10 + 10) + (8 * 128 + 16)
    budget = fixed + 333 * 786 + 785
    a = allocate("replay", budget, FMNIST, backbone="conv2")
    assert (a.n_exemplars, a.slack_bytes, a.per_class_quota) == (333, 785, 33)
    memo = allocate("replay", 4 * 37_824 + 333 * 784, FMNIST, backbone="conv2",
                    config=AllocatorConfig(convention="memo"))
    assert (memo.n_exemplars, memo.slack_bytes) == (333, 0)
    least = fixed + 10 * 786                     # one exemplar per class, exactly
    assert allocate("replay", least, FMNIST, backbone="conv2").n_exemplars == 10
    with pytest.raises(BudgetError, match=r"below replay's minimum of 158.98 KiB \(162,796 B\) "
                                          r"for conv2 and 1 exemplar\(s\) per class x 10"):
        allocate("replay", least - 1, FMNIST, backbone="conv2")
    assert least == 151_296 + 2_600 + 1_040 + 7_860 == 162_796
