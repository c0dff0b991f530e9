"""The claims atlas on its sourced claims (atlas/) and the schema they needed: a method paper
without an arXiv id (paper_url), a source that is a repository file (source.arxiv null),
extra parameters (keeps.extra_params), a backbone the source does not state, BMC's 71-task
feature stream, and the methods priced from their code (Mnemonics, POD-AANets, SSRE).

Every byte figure below is computed by hand in its comment; tests/test_atlas.py holds the
shared sizes (R32, CIFAR_EX, ...).
"""
import csv
import io
from pathlib import Path

import pytest
import yaml

from clbudget.analysis.atlas import audit_atlas_claim, run_atlas
from clbudget.analysis.atlas_claims import AtlasError, load_atlas
from tests.test_atlas import (CIFAR_EX, CIFAR_IMG, R32, R32_STATE, claim, method, parse,
                              priced)

ATLAS = Path(__file__).parent.parent / "atlas"

# ImageNet-form ResNet-18 (torchvision layout, 7x7 stem): 11,176,512 parameters
# (tests/test_atlas.py) x 4 B = 44,706,048 B; BN over 64 + 4*64 + 5*128 + 5*256 + 5*512 = 4,800
# channels in 20 layers: 8 B x 4,800 + 8 B x 20 = 38,560 B of buffers.
R18 = 44_706_048
R18_STATE = R18 + 38_560                       # 44,744,608
IMNET_IMG = 3 * 224 * 224                      # 150,528 B


# ---------------------------------------------------------------- the shipped atlas

def test_shipped_atlas_has_its_sources():
    """The committed atlas/ folder: at least 24 claims, each with a public address and the
    table it was read from; at least 12 methods whose papers have arXiv ids; every other
    method paper has an address; no machine path anywhere in the folder."""
    claims = load_atlas(ATLAS)
    assert len(claims) >= 24
    assert all(c.source["url"].startswith("http") and c.source["table"] for c in claims)
    with_arxiv = {m.name for c in claims for m in c.methods if m.paper_arxiv}
    assert len(with_arxiv) >= 12, sorted(with_arxiv)
    assert all(m.paper_url for c in claims for m in c.methods if not m.paper_arxiv)
    for f in (f for f in ATLAS.rglob("*") if f.is_file()):   # scaled/ settings included
        text = f.read_text(encoding="utf-8")
        assert "/work/" not in text and "/tmp/" not in text, f.name
    from clbudget.analysis.atlas_scaled import load_settings
    assert sum(len(s.claims) for s in load_settings(ATLAS, claims)) >= 3
    sources = (ATLAS / "SOURCES.md").read_text(encoding="utf-8")
    assert all(f"## {c.id}" in sources for c in claims)   # one section a claim file


# ---------------------------------------------------------------- paper_url, source.arxiv

def test_method_paper_without_arxiv_and_a_repository_source():
    """A method paper with no arXiv id carries its address; a source that is a repository
    file pinned to its commit may have no arXiv id: the citation gives the address."""
    lucir = method("lucir", "LUCIR", 60, per_class=20, teacher=True)
    lucir["paper_arxiv"], lucir["paper_url"] = None, "https://openaccess.thecvf.com/x.html"
    d = claim("lucir-vs-icarl", [lucir, method("icarl", "iCaRL", 52, per_class=20,
                                               teacher=True)], init=50, inc=5, tasks=10)
    url = "https://github.com/o/r/blob/" + "a" * 40 + "/res/cifar.png"
    d["source"].update(arxiv=None, url=url, commit="a" * 40)
    c = parse(d)
    assert (c.methods[0].paper_arxiv, c.methods[0].paper_url) == (
        None, "https://openaccess.thecvf.com/x.html")
    r = audit_atlas_claim(c)
    assert r["citation"].endswith(f"2022 (no arXiv id: {url})")
    assert r["methods"][0]["paper_url"] == "https://openaccess.thecvf.com/x.html"
    d["methods"][0]["paper_url"] = "openaccess.thecvf.com/x.html"
    with pytest.raises(AtlasError, match=r"methods\[0\].paper_url: expected a public http"):
        parse(d)


# ---------------------------------------------------------------- extra_params

def test_extra_params_equal_to_the_rows_prototypes_changes_nothing():
    """FeTrIL on CIFAR-100 with a frozen ImageNet-form ResNet-18: the source's 51,200 extra
    parameters are its 100 x 512 prototypes, the row's own class statistics."""
    fetril = method("fetril", "FeTrIL", 66, "resnet18")
    fetril["keeps"]["extra_params"] = 51_200
    d = claim("fetril-vs-lwf", [fetril, method("lwf", "LwF", 27, "resnet18", teacher=True)],
              init=50, inc=5, tasks=10)
    c = parse(d)
    # R18_STATE + a linear head 4*(512*100 + 100) = 205,200 + 51,200 x 4 B = 204,800
    assert priced(c)[0] == (R18_STATE + 205_200 + 204_800, R18) == (45_154_608, 44_706_048)
    assert audit_atlas_claim(c)["methods"][0]["notes"] == []


def test_extra_params_replace_the_rows_and_the_difference_is_noted():
    """PASS's row prices 100 x 512 prototypes and one radius (204,804 B); the source states
    51,200 parameters (204,800 B): priced as the source states, the difference noted."""
    pas = method("pass", "PASS", 64, "resnet18", teacher=True)
    pas["keeps"]["extra_params"] = 51_200
    c = parse(claim("fetril-vs-pass", [method("fetril", "FeTrIL", 72, "resnet18"), pas],
                    dataset="imagenet100", init=50, inc=10, tasks=5))
    # head 4 x 100 outputs: 4*(512*400 + 400) = 820,800 B, in the net and its teacher copy
    assert priced(c)[1] == (2 * (R18_STATE + 820_800) + 204_800, R18) == (91_335_616, R18)
    assert audit_atlas_claim(c)["methods"][1]["notes"] == [
        "the source states 51,200 float32 extra parameters (204,800 B) for PASS; the engine's "
        "class statistics for pass are 204,804 B (priced as the source states)"]


def test_extra_params_dtype_and_inside_the_feature_extractor():
    """On a clbudget method (LwF: no class statistics of its own): 1,000 float16 parameters
    outside the features are 2,000 B in strict only; 1,000 float32 ones inside the features
    (in_features: true) are 4,000 B in both conventions."""
    def lwf(extra):
        m = method("lwf", "LwF", 40, teacher=True)
        m["keeps"]["extra_params"] = extra
        return parse(claim("lwf-vs-ft", [m, method("finetune", "FT", 20)]))
    net = R32_STATE + 26_000                       # + a linear head 4*(64*100 + 100)
    assert priced(lwf({"count": 1000, "dtype": "float16"}))[0] == (2 * net + 2_000, R32)
    assert priced(lwf({"count": 1000, "in_features": True}))[0] == (2 * net + 4_000,
                                                                   R32 + 4_000)
    ssre = method("ssre", "SSRE", 61, "resnet18-ssre", teacher=True)
    ssre["keeps"]["extra_params"] = {"count": 1000, "in_features": True}
    with pytest.raises(AtlasError, match=r"methods\[0\].keeps.extra_params.in_features: ssre's "
                                         r"row already prices 1,220,608 parameters"):
        parse(claim("ssre-vs-ft", [ssre, method("finetune", "FT", 20, "resnet18")]))


# ---------------------------------------------------------------- an unstated backbone

def test_unstated_backbone_priced_as_the_others_and_flagged(tmp_path):
    from clbudget.analysis.atlas_render import render_html, render_markdown, write_atlas
    d = claim("icarl-vs-lwf", [method("icarl", "iCaRL", 64, per_class=20, teacher=True),
                               method("lwf", "LwF", 44, "unstated", teacher=True)])
    c = parse(d)
    assert c.methods[1].backbone == "resnet32" and not c.methods[1].backbone_stated
    # LwF on the other method's ResNet-32: the net and its old copy, 2 x 1,889,352 B
    assert priced(c)[1] == (2 * (R32_STATE + 26_000), R32) == (3_778_704, 1_854_016)
    flag = "backbone not stated by the source; priced as resnet32"
    r = run_atlas_of(tmp_path, d)
    assert r["claims"][0]["methods"][1]["backbone_flag"] == flag
    assert r["claims"][0]["status"] == ("priced, not runnable here: the source does not state "
                                        "LwF's backbone (priced as resnet32)")
    files = write_atlas(r, tmp_path / "out")
    row = next(csv.DictReader(io.StringIO(Path(files["csv"]).read_text())))
    assert row["flags"] == f"LwF: {flag}"
    assert f"LwF: {flag}" in render_markdown(r) and f"resnet32 ({flag})" in render_html(r)
    # the others' backbone wins over the dataset's convention (CIFAR-100: ResNet-32)
    d2 = yaml.safe_load(yaml.safe_dump(d))
    d2["methods"][0]["backbone"] = "resnet18-cifar"
    assert parse(d2).methods[1].backbone == "resnet18-cifar"
    # no stated backbone at all: the dataset's convention (CIFAR-100: iCaRL's ResNet-32)
    d["methods"][0]["backbone"] = "unstated"
    assert [m.backbone for m in parse(d).methods] == ["resnet32", "resnet32"]
    # other backbones that differ and no convention: refused
    d = claim("a", [method("derpp", "DER++", 60, "resnet18-cifar", exemplars=200),
                    method("er", "ER", 50, "resnet18-reduced", exemplars=200),
                    method("agem", "A-GEM", 40, "unstated", exemplars=200)],
              dataset="cifar10", inc=2, tasks=5)
    with pytest.raises(AtlasError, match=r"methods\[2\].backbone: unstated, and the claim's "
                                         r"other methods share no backbone \(resnet18-cifar, "
                                         r"resnet18-reduced\) nor has cifar10 a convention"):
        parse(d)


def run_atlas_of(tmp_path, *claims):
    folder = tmp_path / "claims"
    folder.mkdir(exist_ok=True)
    for d in claims:
        (folder / f"{d['id']}.yaml").write_text(yaml.safe_dump(d))
    return run_atlas(folder)


# ---------------------------------------------------------------- BMC's stream

def bmc_vs_er():
    return claim("bmc-vs-er", [
        method("bmc", "BMC", 70.4, "resmlp-clip-features", exemplars=10_000),
        method("er", "ER", 41.4, "resmlp-clip-features", exemplars=10_000)],
        dataset="stream71", init=None, inc=None, tasks=71)


def test_stream71_feature_buffers_bytes():
    """71 tasks, 2,866 classes of 768-d float32 CLIP features (stream_benchmark stores a
    buffer item at float32).  ResMLP on 768 inputs: projection 768*128 + 128 = 98,432, block 1
    83,584, block 2 132,736 = 314,752 parameters = 1,259,008 B; 6 BatchNorm1d over 1,280
    channels: 8 B x 1,280 + 8 B x 6 = 10,288 B; a head 4*(256*2866 + 2866) = 2,946,248 B.
    10,000 exemplars: 10,000 x 768 x 4 = 30,720,000 B + int16 labels 20,000 B.  BMC's memory
    also keeps each item's 256-d expert features: 10,000 x 256 x 4 = 10,240,000 B."""
    c = parse(bmc_vs_er())
    assert (c.num_tasks, c.num_classes, c.image_shape, c.init) == (71, 2866, (768,), None)
    (bmc_s, bmc_m), (er_s, er_m) = priced(c)
    assert er_s == 1_259_008 + 10_288 + 2_946_248 + 30_720_000 + 20_000 == 34_955_544
    assert bmc_s == er_s + 10_240_000 == 45_195_544
    assert er_m == 1_259_008 + 30_720_000 == 31_979_008
    assert bmc_m == er_m + 10_240_000 == 42_219_008
    r = audit_atlas_claim(c)
    # what the cheaper could hold: (45,195,544 - 34,955,544) // (3,072 + 2) feature items
    assert r["headline"]["extra_exemplars"] == 10_240_000 // 3_074 == 3_331
    assert r["status"] == "priced, not runnable here: er priced only"


def test_stream71_refusals():
    d = bmc_vs_er()
    d["stream"]["tasks"] = 70
    with pytest.raises(AtlasError, match=r"stream.tasks: stream71 has 71 tasks, got 70"):
        parse(d)
    d = bmc_vs_er()
    d["methods"][1]["backbone"] = "resnet32"
    with pytest.raises(AtlasError, match=r"methods\[1\].backbone: resnet32 on stream71's 768 "
                                         r"feature vectors: use resmlp-clip-features"):
        parse(d)
    d = claim("a", [method("er", "ER", 50, "resmlp-clip-features", exemplars=20),
                    method("finetune", "FT", 20, "resmlp-clip-features")])
    with pytest.raises(AtlasError, match=r"resmlp-clip-features on cifar100's 3x32x32 images"):
        parse(d)
    d = claim("a", [method("lwf", "LwF", 50, teacher=True), method("finetune", "FT", 20)],
              init=None)
    with pytest.raises(AtlasError, match=r"stream.init: expected an integer, got None"):
        parse(d)


# ---------------------------------------------------------------- methods priced from code

def test_mnemonics_bytes():
    """Mnemonics' released trainer on CIFAR-100 B50, 25 phases (26 tasks), ResNet-32, 20 a
    class: MTL scaling weights, one per (c_out, c_in) pair of every conv of the ResNet-32:
    stem 3*16 = 48, stage 1 ten 16x16 convs 2,560, stage 2 16*32 + 9 * 32*32 = 9,728,
    stage 3 32*64 + 9 * 64*64 = 38,912: 51,248 x 4 B = 204,992 B; a cosine head 4*(64*100 +
    1) = 25,604 B; class means float64 in two sets 2 x 100 x 64 x 8 = 102,400 B; the old
    model a copy of the net with its scaling weights."""
    c = parse(claim("mnemonics-vs-icarl", [
        method("mnemonics", "iCaRL w/ ours", 54, per_class=20, teacher=True),
        method("icarl", "iCaRL", 48, per_class=20, teacher=True)], init=50, inc=2, tasks=25))
    net = R32_STATE + 25_604 + 204_992             # 2,093,948 B
    assert priced(c)[0] == (net + 102_400 + net + 2000 * CIFAR_EX,
                            R32 + 204_992 + 2000 * CIFAR_IMG) == (10_438_296, 8_203_008)


def test_aanets_bytes():
    """POD-AANets on ImageNet-100 B50, 5 phases: two ResNet-18 branches (ImageNet form), the
    stable one with MTL scaling weights, one a (c_out, c_in) pair of its convs: stem 3*64 =
    192, layer1 4 x 64*64 = 16,384, layer2 64*128 + 3 * 128*128 + 64*128 = 65,536, layer3
    262,144, layer4 1,048,576: 1,392,832 x 4 B = 5,571,328 B; PODNet's head, 10 proxies a
    class and a learned scale 4*(512*100*10 + 1) = 2,048,004 B; float64 class means 100 x
    512 x 8 = 409,600 B; the old model a copy of both branches and the head; 20 a class."""
    c = parse(claim("aanets-vs-podnet", [
        method("aanets", "POD-AANets", 77, "resnet18", per_class=20, backbones=2,
               teacher=True),
        method("podnet", "PODNet", 75.9, "resnet18", per_class=20, teacher=True)],
        dataset="imagenet100", init=50, inc=10, tasks=5))
    net = 2 * R18_STATE + 5_571_328 + 2_048_004   # 97,108,548 B
    ex = 2000 * (IMNET_IMG + 2)                    # 301,060,000 B
    (aa_s, aa_m), (pod_s, pod_m) = priced(c)
    assert (aa_s, aa_m) == (2 * net + 409_600 + ex, 2 * R18 + 5_571_328 + 2000 * IMNET_IMG) \
        == (495_686_696, 396_039_424)
    assert pod_s == 2 * (R18_STATE + 2_048_004) + 409_600 + ex == 395_054_824
    d = claim("a", [method("aanets", "AANets", 77, "resnet18", per_class=20, teacher=True),
                    method("podnet", "PODNet", 75, "resnet18", per_class=20, teacher=True)],
              dataset="imagenet100", init=50, inc=10, tasks=5)
    with pytest.raises(AtlasError, match=r"methods\[0\].keeps.backbones: aanets keeps 2 "
                                         r"backbones \(its row in atlas_prices.PRICED cites "
                                         r"the code\), not 1"):
        parse(d)


def test_ssre_bytes_and_its_backbone_by_brute_force():
    """SSRE on CIFAR-100 B40, 20 x 3: its ResNet-18 without BatchNorm (biased convs):
    11,159,232 conv weights + 4,800 biases = 11,164,032 parameters = 44,656,128 B, no buffers;
    a 1x1 adapter beside each of the 16 block 3x3 convs: 64*64*4 + (64*128 + 3*128*128) +
    (128*256 + 3*256*256) + (256*512 + 3*512*512) = 1,220,608 x 4 B = 4,882,432 B; a linear
    head 4*(512*100 + 100) = 205,200 B; 100 float32 prototypes of 512 = 204,800 B; the old
    model a copy of the net with its adapters."""
    import torch
    from torch import nn

    from clbudget.analysis.atlas_shapes import atlas_backbone_stats, block_conv_pairs
    with torch.device("meta"):   # resnet18_no1's layout, written out
        convs, adapters = [nn.Conv2d(3, 64, 3, bias=True)], []
        c_in = 64
        for stage, c in enumerate((64, 128, 256, 512)):
            for b in range(2):
                convs += [nn.Conv2d(c_in, c, 3, bias=True), nn.Conv2d(c, c, 3, bias=True)]
                adapters += [nn.Conv2d(c_in, c, 1, bias=False), nn.Conv2d(c, c, 1, bias=False)]
                if c_in != c:
                    convs.append(nn.Conv2d(c_in, c, 1, bias=True))
                c_in = c
    n = sum(p.numel() for m in convs for p in m.parameters())
    a = sum(p.numel() for m in adapters for p in m.parameters())
    assert atlas_backbone_stats("resnet18-ssre", (3, 32, 32)).params == n == 11_164_032
    assert block_conv_pairs("resnet18-ssre", (3, 32, 32)) == a == 1_220_608
    ssre = method("ssre", "SSRE", 61.7, "resnet18-ssre", teacher=True)
    ssre["keeps"]["extra_params"] = 51_200
    c = parse(claim("ssre-vs-fetril", [ssre, method("fetril", "FeTrIL", 61.5, "resnet18")],
                    init=40, inc=3, tasks=20))
    net = 44_656_128 + 4_882_432 + 205_200         # 49,743,760 B
    assert priced(c)[0] == (2 * net + 204_800, 44_656_128 + 4_882_432) == (
        99_692_320, 49_538_560)
    assert audit_atlas_claim(c)["methods"][0]["notes"] == []
    ssre["backbone"] = "resnet18-cifar"
    with pytest.raises(AtlasError, match=r"ssre's adapters are priced on its own ResNet-18"):
        parse(claim("ssre-vs-fetril", [ssre, method("fetril", "FeTrIL", 61.5, "resnet18")],
                    init=40, inc=3, tasks=20))


def test_crowded_points_are_numbered_in_an_inset():
    """Five claims at nearly one point: the main panel leaves them unnumbered, a zoomed
    inset numbers them."""
    from clbudget.analysis.atlas_render import gain_ratio_figure
    ratios = [1.0, 1.001, 0.999, 1.002, 0.998, 0.3, 3.0]
    gains = [1.0, 1.1, 0.9, 1.05, 0.95, 20.0, 10.0]
    result = {"tolerance": 0.1, "convention": "strict", "headline": "h",
              "claims": [{"id": f"c{i}", "headline": {"ratio": {"strict": r}, "gain_pp": g,
                                                      "aligned": abs(r - 1) <= 0.1}}
                         for i, (r, g) in enumerate(zip(ratios, gains))]}
    fig = gain_ratio_figure(result)
    ax = fig.axes[0]
    assert sorted(t.get_text() for t in ax.texts) == ["6", "7"]
    [inset] = ax.child_axes
    assert sorted(t.get_text() for t in inset.texts) == ["1", "2", "3", "4", "5"]
