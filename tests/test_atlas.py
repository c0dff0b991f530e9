"""The claims atlas (`clbudget atlas DIR`): claim files validated, methods priced under both
conventions against byte figures computed by hand here, the headline, the CSV, the figure's
data, the store lookup and the command line.

The claim files in tests/data/atlas/ are test fixtures with illustrative numbers, not sources.
"""
import csv
import io
from pathlib import Path

import pytest
import yaml

from clbudget.analysis.atlas import audit_atlas_claim, run_atlas
from clbudget.analysis.atlas_claims import AtlasError, load_atlas, parse_atlas_claim
from clbudget.analysis.atlas_prices import price_method
from tests.helpers import cli
from tests.test_analysis import make_row

FIXTURES = Path(__file__).parent / "data" / "atlas"
DER_ICARL = FIXTURES / "der-vs-icarl-cifar100-b0inc10.yaml"

# ---------------------------------------------------------------- hand-computed sizes
# CIFAR ResNet-32 (16/32/64 channels, option-A shortcuts): 463,504 parameters (DESIGN.md),
# x 4 B = 1,854,016 B.  Its BatchNorm buffers: 31 BN layers (the stem's + 2 in each of 15
# blocks) over 16 + 5*2*16 + 5*2*32 + 5*2*64 = 1,136 channels: running mean and var
# 2 x 4 B x 1,136 = 9,088 B, + num_batches_tracked 31 x 8 B = 248 B: 9,336 B.
R32 = 1_854_016
R32_BUF = 9_336
R32_STATE = R32 + R32_BUF                     # 1,863,352
CIFAR_IMG = 3 * 32 * 32                       # 3,072 B of uint8 pixels
CIFAR_EX = CIFAR_IMG + 2                      # + an int16 label: 3,074 B (strict)

# ViT-B/16 at 224x224 without its head (timm vit_base_patch16_224):
#   patch embedding 3*16*16*768 + 768                      =    590,592
#   class token 768, position embeddings 197 * 768         =    152,064
#   a block: 2 LayerNorms 4*768 = 3,072; qkv 768*2304 + 2304 = 1,771,776;
#            proj 768*768 + 768 = 590,592; fc1 768*3072 + 3072 = 2,362,368;
#            fc2 3072*768 + 768 = 2,360,064                 =  7,087,872
#   12 blocks                                               = 85,054,464
#   final LayerNorm 2*768                                   =      1,536
#   total 590,592 + 152,064 + 85,054,464 + 1,536            = 85,798,656 parameters
VIT_B16 = 85_798_656

# DyTox's ConViT encoder, CIFAR config (embed 384, 12 heads, patch 4 at 32x32, 5 SAB + 1 TAB):
#   patch embedding 3*4*4*384 + 384 = 18,816; position embeddings 64 * 384 = 24,576
#   MLP 384*1536 + 1536 + 1536*384 + 384 = 1,181,568; 2 LayerNorms 1,536
#   SAB: GPSA qk 384*768 = 294,912, v 147,456, proj 147,456 + 384, pos_proj 3*12 + 12 = 48,
#        gating 12 -> 590,268; + 1,536 + 1,181,568           = 1,773,372
#   TAB: q, k, v 3 * 147,456 = 442,368, proj 147,840 -> 590,208; + 1,536 + 1,181,568
#                                                             = 1,773,312
#   total 18,816 + 24,576 + 5 * 1,773,372 + 1,773,312        = 10,683,564 parameters
DYTOX_CIFAR = 10_683_564

# Mammoth's ResNet-18 (3x3 stem, widths 64..512, 1x1-conv + BN shortcuts):
#   convs: stem 3*9*64 = 1,728; layer1 4 * 64*64*9 = 147,456; layer2 64*128*9 + 3 * 128*128*9
#   + 64*128 = 524,288; layer3 128*256*9 + 3 * 256*256*9 + 128*256 = 2,097,152; layer4
#   256*512*9 + 3 * 512*512*9 + 256*512 = 8,388,608 -> 11,159,232
#   BN: 64 + 4*64 + 5*128 + 5*256 + 5*512 = 4,800 channels in 20 layers: 9,600 affine params
#   total 11,168,832 parameters; buffers 8 B * 4,800 + 8 B * 20 = 38,560 B
R18C = 11_168_832 * 4                          # 44,675,328 B
R18C_BUF = 38_560


def method(name, label, accuracy, backbone="resnet32", *, exemplars=0, per_class=None,
           backbones=1, teacher=False, prompts=None, masks=False):
    return {"name": name, "label": label, "paper_arxiv": "2103.16788", "accuracy": accuracy,
            "backbone": backbone,
            "keeps": {"exemplars": exemplars if per_class is None else None,
                      "exemplars_per_class": per_class, "backbones": backbones,
                      "teacher": teacher, "prompts": prompts, "masks": masks,
                      "note": "test fixture"}}


def claim(cid, methods, dataset="cifar100", init=0, inc=10, tasks=10, metric="last"):
    return {"id": cid, "claim": f"{cid} (test fixture)",
            "source": {"authors": "Test Fixture", "title": "not a source", "venue": "none",
                       "year": 2022, "arxiv": "2103.16788", "url": "https://example.org/x",
                       "table": "Table 1", "row": "r", "column": "c", "credited_to": None,
                       "erratum": None},
            "stream": {"dataset": dataset, "init": init, "inc": inc, "tasks": tasks},
            "metric": metric, "methods": methods}


def parse(d):
    return parse_atlas_claim(d, f"{d['id']}.yaml")


def priced(c):
    """(strict, memo) bytes of every method of a parsed claim."""
    return [(p.bytes("strict"), p.bytes("memo")) for p in (price_method(c, m) for m in c.methods)]


# ---------------------------------------------------------------- bytes, by hand

def test_der_vs_icarl_bytes():
    c = load_atlas(FIXTURES)[0]
    assert c.id == "der-vs-icarl-cifar100-b0inc10"
    (der_s, der_m), (icarl_s, icarl_m) = priced(c)
    # DER strict: 10 ResNet-32s with their BN buffers, one head over 10*64 features and 100
    # classes 4*(640*100 + 100) = 256,400, 2,000 exemplars with labels
    assert der_s == 10 * R32_STATE + 256_400 + 2000 * CIFAR_EX == 25_037_920
    # DER memo: 10 x 1,854,016 + 2,000 x 3,072
    assert der_m == 10 * R32 + 2000 * CIFAR_IMG == 24_684_160
    # iCaRL strict: the net (params + 64*100 + 100 head = 4*6,500 = 26,000, + buffers), its
    # old copy (1,863,352 + 26,000), exemplars, class means 100 x 64 x 4 = 25,600
    assert icarl_s == (R32 + 26_000 + R32_BUF) + (R32_STATE + 26_000) + 2000 * CIFAR_EX \
        + 25_600 == 9_952_304
    assert icarl_m == R32 + 2000 * CIFAR_IMG == 7_998_016


def test_podnet_lsc_proxies_vs_lucir_cosine_bytes():
    """Priced-only: PODNet's LSC head holds 10 proxies a class (+ a learned scale) and its
    float64 class means, LUCIR's cosine head one weight vector a class (+ sigma); both keep a
    teacher and 20 a class."""
    c = load_atlas(FIXTURES)[2]
    assert c.id == "podnet-vs-lucir-cifar100-b50inc5" and c.num_tasks == 11  # B50 + 10 steps
    (pod_s, pod_m), (lucir_s, lucir_m) = priced(c)
    pod_head = 4 * (64 * 100 * 10 + 1)            # 256,004 B
    lucir_head = 4 * (64 * 100 + 1)               # 25,604 B
    ex = 20 * 100 * CIFAR_EX                      # 20 a class x 100 classes = 6,148,000 B
    means = 100 * 64 * 8                          # np.zeros((100, 64)) float64: 51,200 B
    assert pod_s == R32_STATE + pod_head + (R32_STATE + pod_head) + means + ex == 10_437_912
    assert lucir_s == R32_STATE + lucir_head + (R32_STATE + lucir_head) + ex == 9_925_912
    assert pod_m == lucir_m == R32 + 2000 * CIFAR_IMG == 7_998_016


def test_dualprompt_vs_l2p_vit_prompt_bytes():
    """Priced-only on ViT-B/16: prompt pools and keys (CODA-Prompt's layouts: L2P 1 layer,
    DualPrompt E-prompts on 3 layers and a G-prompt on 2), a linear head, no exemplars."""
    c = load_atlas(FIXTURES)[1]
    (dual_s, dual_m), (l2p_s, l2p_m) = priced(c)
    head = 4 * (768 * 100 + 100)                  # 307,600 B
    l2p = 10 * 5 * 768 + 10 * 768                 # pool 38,400 + keys 7,680 = 46,080
    dual = 3 * 10 * 5 * 768 + 3 * 10 * 768 + 2 * 5 * 768   # 115,200 + 23,040 + 7,680
    assert l2p_m == 4 * (VIT_B16 + l2p) == 343_378_944
    assert l2p_s == l2p_m + head == 343_686_544
    assert dual_m == 4 * (VIT_B16 + dual) == 343_778_304
    assert dual_s == dual_m + head == 344_085_904


def test_dytox_tokens_task_heads_teacher_bytes():
    c = parse(claim("dytox-vs-der", [
        method("dytox", "DyTox", 70, "dytox-convit", exemplars=2000, teacher=True),
        method("der", "DER", 65, exemplars=2000, backbones=10)], metric="average_incremental"))
    (dy_s, dy_m), (der_s, _) = priced(c)
    tokens = 4 * 10 * 384                         # one 384-d token a task: 15,360 B
    heads = 4 * (10 * 2 * 384 + 384 * 100 + 100)  # LayerNorm + linear a task: 184,720 B
    enc = 4 * DYTOX_CIFAR                         # 42,734,256 B
    assert dy_m == enc + tokens + 2000 * CIFAR_IMG == 48_893_616
    assert dy_s == enc + heads + tokens + (enc + heads + tokens) + 2000 * CIFAR_EX == 92_016_672
    assert der_s == 25_037_920


def test_dytox_tokens_as_the_source_states_them():
    """A claim may state DyTox's task tokens as keeps.prompts (pool x length x dim)."""
    c = parse(claim("dytox-vs-der", [
        method("dytox", "DyTox", 70, "dytox-convit", exemplars=2000, teacher=True,
               prompts={"pool": 5, "length": 1, "dim": 384}),
        method("der", "DER", 65, exemplars=2000, backbones=10)]))
    assert priced(c)[0][1] == 4 * DYTOX_CIFAR + 4 * 5 * 384 + 2000 * CIFAR_IMG   # 1,920 B


def test_ease_adapters_a_task_and_subspace_classifier_bytes():
    """EASE on CIFAR-100 B0Inc5 (20 tasks): a frozen ViT-B/16, 12 adapters a task of
    768*64 + 64 + 64*768 + 768 = 99,136 parameters, a cosine classifier over the 20 x 768
    concatenated subspaces + sigma, and the last task's proxy head (768 x 5 + sigma)."""
    c = parse(claim("ease-vs-l2p", [
        method("ease", "EASE", 91, "vit-b16"),
        method("l2p", "L2P", 85, "vit-b16", prompts={"pool": 10, "length": 5, "dim": 768})],
        inc=5, tasks=20))
    (ease_s, ease_m), _ = priced(c)
    adapters = 20 * 12 * 99_136                   # 23,792,640 parameters
    assert ease_m == 4 * (VIT_B16 + adapters) == 438_365_184
    head = 768 * 20 * 100 + 1 + 768 * 5 + 1       # 1,539,842 parameters
    assert ease_s == ease_m + 4 * head == 444_524_552


def test_foster_concat_head_vs_bic_bias_layers_bytes():
    c = parse(claim("foster-vs-bic", [
        method("foster", "FOSTER", 72, exemplars=2000, backbones=2, teacher=True),
        method("bic", "BiC", 68, exemplars=2000, teacher=True)]))
    (fo_s, fo_m), (bic_s, bic_m) = priced(c)
    fo_head = 4 * (2 * 64 * 100 + 100)            # over 2 x 64 features: 51,600 B
    bic_head = 4 * (64 * 100 + 100 + 2 * 10)      # + (alpha, beta) for 10 tasks: 26,080 B
    assert fo_s == 2 * R32_STATE + fo_head + (2 * R32_STATE + fo_head) + 2000 * CIFAR_EX \
        == 13_704_608
    assert fo_m == 2 * R32 + 2000 * CIFAR_IMG == 9_852_032
    assert bic_s == R32_STATE + bic_head + (R32_STATE + bic_head) + 2000 * CIFAR_EX == 9_926_864
    assert bic_m == 7_998_016


def test_codaprompt_vs_simplecil_prototypes_on_imagenet_r_bytes():
    c = parse(claim("coda-vs-simplecil", [
        method("codaprompt", "CODA-P", 75, "vit-b16", prompts={"pool": 100, "length": 8,
                                                                "dim": 768}),
        method("simplecil", "SimpleCIL", 61, "vit-b16")], dataset="imagenet-r", inc=20))
    assert c.image_shape == (3, 224, 224) and c.num_classes == 200
    (coda_s, coda_m), (sc_s, sc_m) = priced(c)
    coda = 5 * 100 * 8 * 768 + 2 * 5 * 100 * 768  # components 3,072,000 + keys, attention
    assert coda_m == 4 * (VIT_B16 + coda) == 358_554_624
    assert coda_s == coda_m + 4 * (768 * 200 + 200) == 359_169_824
    assert sc_m == 4 * VIT_B16 == 343_194_624
    assert sc_s == 4 * VIT_B16 + 4 * 200 * 768 == 343_809_024   # + 200 prototypes


def test_derpp_logits_vs_er_on_mammoth_resnet18_bytes():
    c = parse(claim("derpp-vs-er", [
        method("derpp", "DER++", 70, "resnet18-cifar", exemplars=500),
        method("er", "ER", 60, "resnet18-cifar", exemplars=500)], dataset="cifar10", inc=2,
        tasks=5))
    (dpp_s, dpp_m), (er_s, er_m) = priced(c)
    net = R18C + 4 * (512 * 10 + 10) + R18C_BUF   # + a 10-class head 20,520 B
    assert dpp_s == net + 500 * CIFAR_EX + 500 * 10 * 4 == 46_291_408   # + 10 logits each
    assert er_s == net + 500 * CIFAR_EX == 46_271_408
    assert dpp_m == er_m == R18C + 500 * CIFAR_IMG == 46_211_328
    r = audit_atlas_claim(c)
    assert not r["runnable"] and r["status"] == "priced, not runnable here: er priced only"


# The other priced-only rows on CIFAR-100 B0Inc10 with a ResNet-32: the net is 1,863,352 B
# (with BN buffers) + a linear head 4*(64*100 + 100) = 26,000 B -> NET = 1,889,352 B; 2,000
# exemplars with labels 6,148,000 B (strict), their pixels 6,144,000 B (memo).
NET = R32_STATE + 26_000
ROWS = [  # (method, keeps, strict bytes, memo bytes)
    ("eeil", dict(exemplars=2000, teacher=True), 2 * NET + 6_148_000, R32 + 6_144_000),
    ("coil", dict(exemplars=2000, teacher=True), 2 * NET + 6_148_000, R32 + 6_144_000),
    ("gdumb", dict(exemplars=2000), NET + 6_148_000, R32 + 6_144_000),
    ("er", dict(exemplars=2000), NET + 6_148_000, R32 + 6_144_000),
    ("agem", dict(exemplars=2000), NET + 6_148_000, R32 + 6_144_000),
    ("gem", dict(exemplars=2000), NET + 6_148_000, R32 + 6_144_000),
    # GSS: + one float32 score an exemplar, 2,000 x 4 = 8,000 B
    ("gss", dict(exemplars=2000), NET + 6_148_000 + 8_000, R32 + 6_144_000),
    # FDR: + the network's 100 outputs an exemplar, 2,000 x 100 x 4 = 800,000 B
    ("fdr", dict(exemplars=2000), NET + 6_148_000 + 800_000, R32 + 6_144_000),
    # SI: Omega and the anchor, 2 x (1,854,016 + 26,000) = 3,760,032 B
    ("si", dict(), NET + 3_760_032, R32),
    # PASS: a head of 4 x 100 outputs 4*(64*400 + 400) = 104,000 B, its teacher copy,
    # 100 prototypes + one radius 4*(6,400 + 1) = 25,604 B
    ("pass", dict(teacher=True), 2 * (R32_STATE + 104_000) + 25_604, R32),
    # FeTrIL: a linear head and 100 prototypes 4 * 6,400 = 25,600 B
    ("fetril", dict(), NET + 25_600, R32),
    # APER on 2 backbones: prototypes of the concatenated 128 features 4*100*128 = 51,200 B
    ("aper", dict(backbones=2), 2 * R32_STATE + 51_200, 2 * R32),
]


@pytest.mark.parametrize("name, keeps, strict, memo", ROWS, ids=[r[0] for r in ROWS])
def test_other_priced_only_rows_bytes(name, keeps, strict, memo):
    c = parse(claim(f"{name}-vs-finetune", [method(name, name, 90, **keeps),
                                            method("finetune", "FT", 10)]))
    assert priced(c)[0] == (strict, memo)


# ---------------------------------------------------------------- formulas, brute force

def test_formula_backbones_against_built_modules():
    import torch
    from torch import nn

    from clbudget.analysis.atlas_shapes import atlas_backbone_stats, basic_resnet
    from clbudget.nets.backbones import backbone_stats
    m18 = backbone_stats("mammoth-resnet18", (3, 32, 32))
    f = basic_resnet(64)
    assert (f.params, 8 * f.bn_channels + 8 * f.bn_layers) == (m18.params, m18.buffers_bytes)
    with torch.device("meta"):   # a ViT-B/16 trunk from torch's own transformer layers
        parts = [nn.Conv2d(3, 768, 16, 16), nn.LayerNorm(768)] + [
            nn.TransformerEncoderLayer(768, 12, 3072) for _ in range(12)]
    n = sum(p.numel() for m in parts for p in m.parameters()) + 768 + 197 * 768
    assert atlas_backbone_stats("vit-b16", (3, 32, 32)).params == n == VIT_B16
    # the ImageNet form of ResNet-18 on CIFAR images: built at 224 (7x7 stem), not CIFAR's
    assert atlas_backbone_stats("resnet18", (3, 32, 32)).params == \
        backbone_stats("resnet18", (3, 224, 224)).params == 11_176_512


# ---------------------------------------------------------------- headline, pairs, rows

def test_headline_count_and_median():
    ratios = {"der": 25_037_920 / 9_952_304, "dual": 344_085_904 / 343_686_544,
              "pod": 10_437_912 / 9_925_912}
    r = run_atlas(FIXTURES)
    assert [c["headline"]["ratio"]["strict"] for c in r["claims"]] == pytest.approx(
        [ratios["der"], ratios["dual"], ratios["pod"]])
    assert r["n_unequal"] == 1 and r["median_ratio"] == pytest.approx(ratios["pod"])
    assert r["headline"] == ("1 of 3 claims compared methods at unequal memory (ratio outside "
                             "1 \u00b1 0.1); median ratio 1.05 (strict convention)")
    tight = run_atlas(FIXTURES, tolerance=0.01)   # PODNet's 5.2% more is now unequal
    assert tight["headline"].startswith("2 of 3 claims") and "1 \u00b1 0.01" in tight["headline"]
    memo = run_atlas(FIXTURES, convention="memo")  # memo: PODNet = LUCIR; median DualPrompt's
    assert memo["median_ratio"] == pytest.approx(343_778_304 / 343_378_944)
    assert memo["headline"].startswith("1 of 3") and memo["headline"].endswith("(memo convention)")


def test_pair_hold_runner_up_and_sweep_command():
    d = yaml.safe_load(DER_ICARL.read_text())
    d["methods"].append(method("replay", "Replay", 66.0, exemplars=2000))   # the runner-up
    d["methods"].append(method("finetune", "Finetune", 20.0))
    r = audit_atlas_claim(parse(d))
    assert [p["loser_label"] for p in r["pairs"]] == ["iCaRL", "Replay", "Finetune"]
    assert r["headline"]["loser_label"] == "Replay"
    icarl = r["pairs"][0]
    assert icarl["extra_bytes"] == 25_037_920 - 9_952_304 == 15_085_616
    assert icarl["extra_exemplars"] == 15_085_616 // CIFAR_EX == 4_907
    assert icarl["extra_backbones"] == pytest.approx(15_085_616 / R32_STATE)   # 8.1
    assert icarl["hold_text"] == ("iCaRL could hold 4,907 more exemplars, or 8.1 more resnet32 "
                                  "backbones, at DER's 23.88 MiB")
    assert icarl["aligned_text"] == "NOT aligned: ratio 2.52 (outside 1 \u00b1 0.1)"
    replay_s = R32 + 26_000 + R32_BUF + 2000 * CIFAR_EX          # 8,037,352
    assert r["headline"]["bytes"]["strict"] == {"winner": 25_037_920, "loser": replay_s}
    assert r["runnable"] and r["sweep_command"] == (
        "clbudget sweep --methods der,replay --budgets 25037920 --seeds 0,1,2 --dataset "
        "cifar100 --init 0 --inc 10 --backbone resnet32 --convention strict --class-order fixed "
        "--out DIR")


def test_not_runnable_reasons():
    imagenet_form = parse(claim("lwf-vs-finetune", [
        method("lwf", "LwF", 40, "resnet18", teacher=True),
        method("finetune", "FT", 20, "resnet18")]))
    r = audit_atlas_claim(imagenet_form)
    assert r["status"] == ("priced, not runnable here: clbudget builds no resnet18 for 3x32x32 "
                           "images as the source ran it") and r["sweep_command"] is None
    r = audit_atlas_claim(parse(claim("icarl-vs-lwf-1k", [
        method("icarl", "iCaRL", 40, "resnet18", per_class=20, teacher=True),
        method("lwf", "LwF", 20, "resnet18", teacher=True)], dataset="imagenet1k", inc=100)))
    assert r["status"] == "priced, not runnable here: clbudget does not load imagenet1k"
    # a source that says a teacher is kept where clbudget's method keeps none: noted
    d = yaml.safe_load(DER_ICARL.read_text())
    d["methods"][0]["keeps"]["teacher"] = True
    notes = audit_atlas_claim(parse(d))["methods"][0]["notes"]
    assert notes == ["the source says DER keeps a teacher; clbudget's der keeps none (priced "
                     "as clbudget keeps it)"]


def test_tasks_with_or_without_the_base_task():
    two = [method("lwf", "LwF", 40, teacher=True), method("finetune", "FT", 20)]
    assert parse(claim("a", two, init=50, inc=5, tasks=10)).num_tasks == 11
    assert parse(claim("a", two, init=50, inc=5, tasks=11)).num_tasks == 11
    with pytest.raises(AtlasError, match=r"a.yaml: stream.tasks: B50Inc5 with 12 tasks covers "
                                         r"105 classes, cifar100 has 100; valid: 10, 11"):
        parse(claim("a", two, init=50, inc=5, tasks=12))


def test_csv_one_row_per_claim_and_figure_points(tmp_path):
    from clbudget.analysis.atlas_render import gain_ratio_figure, write_atlas
    r = run_atlas(FIXTURES)
    files = write_atlas(r, tmp_path)
    rows = list(csv.DictReader(io.StringIO(Path(files["csv"]).read_text())))
    assert [row["id"] for row in rows] == [c["id"] for c in r["claims"]]
    assert [float(row["gain_pp"]) for row in rows] == [11.0, 3.0, 5.0]
    assert rows[0]["winner_strict_bytes"] == "25037920" and rows[0]["aligned"] == "False"
    assert Path(files["figure"]).stat().st_size > 0
    html, md = Path(files["html"]).read_text(), Path(files["markdown"]).read_text()
    assert "data:image/png;base64," in html and "](atlas_gain_vs_ratio.png)" in md
    assert r["headline"] in html and f"**{r['headline']}**" in md
    fig = gain_ratio_figure(r)
    ax = fig.axes[0]
    plotted = [c.get_offsets().tolist() for c in ax.collections if len(c.get_offsets())]
    assert plotted == [[[25_037_920 / 9_952_304, 11.0], [344_085_904 / 343_686_544, 3.0],
                        [10_437_912 / 9_925_912, 5.0]]]
    # each point carries its number in the claims table; the ids are in the column beside
    assert ax.get_xscale() == "log" and [t.get_text() for t in ax.texts] == ["1", "2", "3"]
    assert [t.get_text() for t in fig.axes[1].texts] == [
        f"{i:>2}  {c['id']}" for i, c in enumerate(r["claims"], 1)]
    assert any(list(line.get_xdata()) == [1.0, 1.0] for line in ax.lines)   # ratio 1
    assert "| # | claim |" in md and "| 1 | der-vs-icarl-cifar100-b0inc10 |" in md


def test_labels_placed_without_overlap():
    """Twelve points on one spot and two apart: every number gets a box that overlaps no
    other number, no point and stays in bounds."""
    from clbudget.analysis.atlas_render import place_labels
    xy = [(100.0 + i % 2, 100.0 + i % 3) for i in range(12)] + [(20.0, 20.0), (180.0, 180.0)]
    sizes = [(10.0, 8.0)] * len(xy)
    offsets = place_labels(xy, sizes, (0, 0, 200, 200))
    boxes = []
    for (x, y), (w, h), (dx, dy) in zip(xy, sizes, offsets):
        cx = x + dx + (w / 2 if dx > 0 else -w / 2 if dx < 0 else 0)
        boxes.append((cx - w / 2, y + dy - h / 2, cx + w / 2, y + dy + h / 2))
    for i, a in enumerate(boxes):
        assert 0 <= a[0] and a[2] <= 200 and 0 <= a[1] and a[3] <= 200
        for b in boxes[i + 1:] + [(x - 4, y - 4, x + 4, y + 4) for x, y in xy]:
            assert min(a[2], b[2]) <= max(a[0], b[0]) or min(a[3], b[3]) <= max(a[1], b[1])


# ---------------------------------------------------------------- store

def test_store_lookup_with_a_tiny_store(tmp_path):
    from clbudget.experiment.store import ResultStore
    aligned = 25_037_920          # DER's strict bytes: the larger of the pair's memories
    store = ResultStore(tmp_path / "sweep")
    for s, (a, b) in enumerate([(0.700, 0.695), (0.710, 0.700), (0.720, 0.705)]):
        store.add(make_row("der", aligned, s, aia=a, expansion=10))
        store.add(make_row("icarl", aligned, s, aia=b))
    store.add(make_row("icarl", 9_952_304, 0, aia=0.60))   # its own memory: not compared
    r = run_atlas(FIXTURES, store=store)
    der = r["claims"][0]
    assert der["store"]["status"] == "measured" and der["store"]["aligned_budget_bytes"] == aligned
    assert der["store"]["text"] == (
        "DER +11.0 pp at unequal memory (23.9 MiB vs 9.5 MiB); at 23.9 MiB each: +1.0 pp, "
        "95% CI [-0.2, 2.2], not significant")
    assert der["sweep_command"].endswith(f"--out {tmp_path / 'sweep'}")
    assert der["store"]["flags"] == []
    assert [c["store"]["status"] for c in r["claims"][1:]] == ["n/a", "n/a"]
    empty = ResultStore(tmp_path / "empty")
    r = run_atlas(FIXTURES, store=empty)
    assert r["claims"][0]["store"]["status"] == "not measured"
    assert "not measured (missing cells: DER seeds 0,1,2; iCaRL seeds 0,1,2)" in \
        r["claims"][0]["store"]["text"]


# ---------------------------------------------------------------- malformed claims

def _set(path, value):
    def mutate(d):
        *head, last = path
        for k in head:
            d = d[k]
        if value is KeyError:
            del d[last]
        else:
            d[last] = value
    return mutate


MALFORMED = [
    ("missing field", _set(("source", "title"), KeyError), "source.title: missing required key"),
    ("wrong type", _set(("methods", 0, "accuracy"), "75.0"),
     "methods[0].accuracy: expected a percentage in [0, 100], got '75.0'"),
    ("unknown method", _set(("methods", 0, "name"), "derr"),
     "methods[0].name: unknown method 'derr'; nearest: 'der'"),
    ("unknown backbone", _set(("methods", 1, "backbone"), "resnet-32"),
     "methods[1].backbone: unknown backbone 'resnet-32'; nearest: 'resnet32'"),
    ("negative exemplars", _set(("methods", 1, "keeps", "exemplars"), -5),
     "methods[1].keeps.exemplars: expected an integer >= 0, got -5"),
    ("unknown key", _set(("methods", 1, "keeps", "exemplar"), 20),
     "methods[1].keeps.exemplar: unknown key 'exemplar'; nearest valid key: 'exemplars'"),
    ("unknown top key", _set(("metrics",), "last"),
     "metrics: unknown key 'metrics'; nearest valid key: 'metric'"),
    ("id != stem", _set(("id",), "der-vs-icarl"),
     "id: id 'der-vs-icarl' differs from the file stem 'der-vs-icarl-cifar100-b0inc10'"),
    ("both exemplar counts", _set(("methods", 0, "keeps", "exemplars_per_class"), 20),
     "methods[0].keeps.exemplars_per_class: both exemplars (2000) and exemplars_per_class (20)"),
    ("arxiv as a number", _set(("methods", 1, "paper_arxiv"), 1611.07725),
     "methods[1].paper_arxiv: expected an arXiv id as a quoted string"),
    ("unknown dataset", _set(("stream", "dataset"), "cifar-100"),
     "stream.dataset: unknown dataset 'cifar-100'; nearest: 'cifar100'"),
    ("winner not first", _set(("methods", 1, "accuracy"), 80.0),
     "methods[0].accuracy: the claimed winner DER reports 75%, below iCaRL's 80%"),
    ("prompts on a CNN method", _set(("methods", 1, "keeps", "prompts"),
                                     {"pool": 10, "length": 5, "dim": 768}),
     "methods[1].keeps.prompts: icarl keeps no prompts"),
    ("a repository url without commit",
     _set(("source", "url"), "https://github.com/o/r/blob/main/README.md"),
     "source.commit: missing: the url is a repository file"),
    ("one network kept as ten", _set(("methods", 1, "keeps", "backbones"), 10),
     "methods[1].keeps.backbones: clbudget's icarl keeps one network, not 10"),
    # paper_url exactly when paper_arxiv is null
    ("null paper_arxiv, no paper_url", _set(("methods", 1, "paper_arxiv"), None),
     "methods[1].paper_url: missing: paper_arxiv is null"),
    ("paper_url beside an arXiv id", _set(("methods", 1, "paper_url"), "https://example.org/p"),
     "methods[1].paper_url: given beside paper_arxiv '1611.07725'"),
    # a source without an arXiv id must be a repository file pinned to its commit
    ("null source arxiv, not a repository file", _set(("source", "arxiv"), None),
     "source.arxiv: null: allowed only for a source that is a repository file pinned"),
    ("extra_params at an unknown dtype",
     _set(("methods", 1, "keeps", "extra_params"), {"count": 6400, "dtype": "fp16"}),
     "methods[1].keeps.extra_params.dtype: unknown dtype 'fp16'; nearest: 'float16'"),
    ("extra_params of zero", _set(("methods", 1, "keeps", "extra_params"), 0),
     "methods[1].keeps.extra_params: expected an integer >= 1, got 0"),
    # a task stream has no class split
    ("a task stream with a class split", _set(("stream", "dataset"), "stream71"),
     "stream.init: stream71 is a stream of 71 tasks of unequal class counts"),
]


@pytest.mark.parametrize("case, mutate, message", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_claim_exits_2_naming_file_and_field(case, mutate, message, tmp_path, capsys):
    folder = tmp_path / "atlas"
    folder.mkdir()
    for f in FIXTURES.glob("*.yaml"):     # good claims beside the bad one
        (folder / f.name).write_text(f.read_text())
    d = yaml.safe_load(DER_ICARL.read_text())
    mutate(d)
    (folder / DER_ICARL.name).write_text(yaml.safe_dump(d))
    out = tmp_path / "out"
    code, stdout, err = cli(capsys, "atlas", str(folder), "--out", str(out))
    assert code == 2 and stdout == ""
    assert err.count("\n") == 1, err
    assert err.startswith(f"clbudget: error: {DER_ICARL.name}: ") and message in err, err
    assert not out.exists()               # refused before anything ran


def test_a_bad_claim_is_refused_before_the_store_is_read(tmp_path, capsys):
    folder = tmp_path / "atlas"
    folder.mkdir()
    d = yaml.safe_load(DER_ICARL.read_text())
    d["methods"][0]["name"] = "DER"
    (folder / DER_ICARL.name).write_text(yaml.safe_dump(d))
    code, _, err = cli(capsys, "atlas", str(folder), "--store", str(tmp_path / "none"))
    assert code == 2 and "no results store" in err       # the store is named first
    from clbudget.experiment.store import ResultStore
    ResultStore(tmp_path / "sweep").close()
    code, _, err = cli(capsys, "atlas", str(folder), "--store", str(tmp_path / "sweep"))
    assert code == 2 and "methods[0].name: unknown method 'DER'; nearest: 'der'" in err


def test_yaml_is_loaded_safely(tmp_path):
    folder = tmp_path / "atlas"
    folder.mkdir()
    (folder / "x.yaml").write_text("id: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(AtlasError, match="x.yaml: not valid YAML"):
        load_atlas(folder)


# ---------------------------------------------------------------- command line

def test_atlas_cli_on_three_claims(tmp_path, capsys):
    import json
    out = tmp_path / "report"
    code, stdout, err = cli(capsys, "atlas", str(FIXTURES), "--out", str(out))
    assert code == 0, err
    assert stdout.splitlines()[0] == ("1 of 3 claims compared methods at unequal memory (ratio "
                                      "outside 1 \u00b1 0.1); median ratio 1.05 (strict "
                                      "convention)")
    for name in ("atlas.html", "atlas.md", "atlas.csv", "atlas_gain_vs_ratio.png"):
        assert (out / name).is_file()
    code, stdout, _ = cli(capsys, "atlas", str(FIXTURES), "--out", str(out), "--convention",
                          "memo", "--tolerance", "0.2", "--json")
    obj = json.loads(stdout)
    assert code == 0 and obj["convention"] == "memo" and obj["tolerance"] == 0.2
    assert [c["id"] for c in obj["claims"]] == sorted(p.stem for p in FIXTURES.glob("*.yaml"))
    code, _, err = cli(capsys, "atlas", str(FIXTURES), "--tolerance", "1.5")
    assert code == 2 and "fraction in [0, 1)" in err


def test_store_runs_that_differ_from_the_claim_are_flagged(tmp_path):
    from clbudget.analysis.atlas_render import render_markdown
    from clbudget.experiment.store import ResultStore
    store = ResultStore(tmp_path / "sweep")
    for s in (0, 1, 2):
        store.add(make_row("der", 25_037_920, s, aia=0.70, expansion=10, epochs=5))
        store.add(make_row("icarl", 25_037_920, s, aia=0.69, epochs=3))
    r = run_atlas(FIXTURES, store=store)
    assert r["claims"][0]["store"]["flags"] == ["epochs differ: DER ran 5; iCaRL ran 3"]
    assert "! epochs differ: DER ran 5; iCaRL ran 3" in render_markdown(r)
