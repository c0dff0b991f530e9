"""CLR on a real pretrained backbone (issue 25 D): torchvision-format ResNet-18 files, inputs
resized to the backbone's resolution, and the backbone's provenance in rows and reports.

Expected values come from outside the code under test: torchvision's published resnet18
architecture written out below key by key (checked once, outside the suite, against
torchvision 0.29.1's `resnet18().state_dict()`: the same 122 keys and shapes), a plain
functional ResNet-18 forward written here from the torchvision layout, PIL's bilinear resize
(what the reference's `transforms.Resize((224, 224))` calls on its PIL images), and byte
counts by hand.
"""
import dataclasses
import hashlib
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clbudget.experiment.evaluate import evaluate
from clbudget.experiment.run import prepare, run_experiment, to_device
from tests.helpers import cli, held_bytes, real_cifar10, tiny_spec, tiny_stream


# torchvision.models.resnet18 (He et al. 2016, torchvision/models/resnet.py BasicBlock):
# conv name -> weight shape; BN name -> channels (weight, bias, running_mean, running_var,
# num_batches_tracked); fc -> (1000, 512) + (1000,)
RESNET18_CONVS = {
    "conv1": (64, 3, 7, 7),
    "layer1.0.conv1": (64, 64, 3, 3), "layer1.0.conv2": (64, 64, 3, 3),
    "layer1.1.conv1": (64, 64, 3, 3), "layer1.1.conv2": (64, 64, 3, 3),
    "layer2.0.conv1": (128, 64, 3, 3), "layer2.0.conv2": (128, 128, 3, 3),
    "layer2.0.downsample.0": (128, 64, 1, 1),
    "layer2.1.conv1": (128, 128, 3, 3), "layer2.1.conv2": (128, 128, 3, 3),
    "layer3.0.conv1": (256, 128, 3, 3), "layer3.0.conv2": (256, 256, 3, 3),
    "layer3.0.downsample.0": (256, 128, 1, 1),
    "layer3.1.conv1": (256, 256, 3, 3), "layer3.1.conv2": (256, 256, 3, 3),
    "layer4.0.conv1": (512, 256, 3, 3), "layer4.0.conv2": (512, 512, 3, 3),
    "layer4.0.downsample.0": (512, 256, 1, 1),
    "layer4.1.conv1": (512, 512, 3, 3), "layer4.1.conv2": (512, 512, 3, 3),
}
RESNET18_BNS = {
    "bn1": 64,
    "layer1.0.bn1": 64, "layer1.0.bn2": 64, "layer1.1.bn1": 64, "layer1.1.bn2": 64,
    "layer2.0.bn1": 128, "layer2.0.bn2": 128, "layer2.0.downsample.1": 128,
    "layer2.1.bn1": 128, "layer2.1.bn2": 128,
    "layer3.0.bn1": 256, "layer3.0.bn2": 256, "layer3.0.downsample.1": 256,
    "layer3.1.bn1": 256, "layer3.1.bn2": 256,
    "layer4.0.bn1": 512, "layer4.0.bn2": 512, "layer4.0.downsample.1": 512,
    "layer4.1.bn1": 512, "layer4.1.bn2": 512,
}


def torchvision_resnet18_state(seed: int = 0) -> dict:
    """A torchvision-format resnet18 state dict with known, distinctive values: He-scaled
    random convs, BN affine and running statistics far from their defaults."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in RESNET18_CONVS.items():
        fan_in = shape[1] * shape[2] * shape[3]
        state[f"{name}.weight"] = torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5
    for name, c in RESNET18_BNS.items():
        state[f"{name}.weight"] = 0.5 + torch.rand(c, generator=g)
        state[f"{name}.bias"] = 0.1 * torch.randn(c, generator=g)
        state[f"{name}.running_mean"] = 0.1 * torch.randn(c, generator=g)
        state[f"{name}.running_var"] = 0.5 + 1.5 * torch.rand(c, generator=g)
        state[f"{name}.num_batches_tracked"] = torch.tensor(7)
    state["fc.weight"] = 0.01 * torch.randn(1000, 512, generator=g)
    state["fc.bias"] = torch.zeros(1000)
    return state


def reference_forward(state: dict, x: torch.Tensor) -> torch.Tensor:
    """torchvision's ResNet-18 forward up to the pooled features (B, 512), written from the
    torchvision layout alone (eval-mode BN, stride on a block's first conv and downsample)."""
    def bn(t, name):
        return F.batch_norm(t, state[f"{name}.running_mean"], state[f"{name}.running_var"],
                            state[f"{name}.weight"], state[f"{name}.bias"], False, 0.0, 1e-5)
    x = F.relu(bn(F.conv2d(x, state["conv1.weight"], stride=2, padding=3), "bn1"))
    x = F.max_pool2d(x, 3, 2, 1)
    for layer in (1, 2, 3, 4):
        for block in (0, 1):
            p = f"layer{layer}.{block}"
            stride = 2 if layer > 1 and block == 0 else 1
            out = F.relu(bn(F.conv2d(x, state[f"{p}.conv1.weight"], stride=stride, padding=1),
                            f"{p}.bn1"))
            out = bn(F.conv2d(out, state[f"{p}.conv2.weight"], padding=1), f"{p}.bn2")
            short = x
            if f"{p}.downsample.0.weight" in state:
                short = bn(F.conv2d(x, state[f"{p}.downsample.0.weight"], stride=stride),
                           f"{p}.downsample.1")
            x = F.relu(out + short)
    return x.mean((2, 3))


def weights_file(tmp_path, state=None, name="resnet18-tv.pt"):
    path = tmp_path / name
    torch.save(torchvision_resnet18_state() if state is None else state, path)
    return path


SMALL_GLYPHS = (("num_classes", 4), ("train_per_class", 8), ("test_per_class", 4),
                ("image_size", 16), ("seed", 0))
SMALL = dict(num_classes=4, glyphs_options=SMALL_GLYPHS)    # 2 tasks of 2 classes, 16 images


def clr_spec(path, input_size=72, **overrides):
    options = (("backbone_weights", str(path)),) + (
        (("input_size", input_size),) if input_size is not None else ())
    return tiny_spec("clr", backbone="resnet18", budget="200MB", method_options=options,
                     **overrides)


# ---------------------------------------------------------------- torchvision's layout
def test_the_literal_layout_is_torchvisions_resnet18():
    """122 entries; 11,689,512 parameters (torchvision's published count for resnet18),
    11,176,512 without fc (512 x 1000 + 1000)."""
    state = torchvision_resnet18_state()
    assert len(state) == 122
    params = sum(v.numel() for k, v in state.items()
                 if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    assert params == 11_689_512
    assert params - 513_000 == 11_176_512


def test_torchvision_file_values_arrive_in_the_right_tensors(tmp_path):
    """Loaded through CLR (input_size 72: the 7x7 stem), the frozen backbone computes exactly
    the hand-written torchvision forward of the file's tensors."""
    state = torchvision_resnet18_state()
    path = weights_file(tmp_path, state)
    _, ctx, method = prepare(clr_spec(path), tiny_stream())
    backbone = method.backbone.eval()
    assert backbone.generalized[0].weight.shape == (64, 3, 7, 7)
    assert torch.equal(backbone.generalized[0].weight, state["conv1.weight"])
    assert torch.equal(backbone.specialized[0][0].shortcut[1].running_var,
                       state["layer4.0.downsample.1.running_var"])
    assert not any(p.requires_grad for p in backbone.parameters())      # frozen
    x = torch.randn(3, 3, 72, 72, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got, want = backbone(x), reference_forward(state, x)
    assert got.shape == (3, 512)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    # a new task's view (identity kernels) on 16-pixel images resized to 72: the same forward
    x16 = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    up = F.interpolate(x16, size=(72, 72), mode="bilinear", align_corners=False, antialias=True)
    with torch.no_grad():
        torch.testing.assert_close(method.new_view().eval()(method.resize(x16)),
                                   reference_forward(state, up), rtol=1e-4, atol=1e-4)
    # a different file gives different features: the comparison can fail
    with torch.no_grad():
        other = reference_forward(torchvision_resnet18_state(seed=1), x)
    assert (other - got).abs().max() > 1e-2


def test_bad_weight_files_are_refused_naming_the_files_keys(tmp_path):
    state = torchvision_resnet18_state()

    def refused(bad, match, **kw):
        path = weights_file(tmp_path, bad, "bad.pt")
        with pytest.raises(ValueError, match=match):
            prepare(clr_spec(path, **kw), tiny_stream())

    missing = {k: v for k, v in state.items() if k != "layer3.1.bn2.running_var"}
    refused(missing, r"missing 1 keys \['layer3\.1\.bn2\.running_var'\], unexpected 0")
    extra = {**state, "layer4.2.conv1.weight": torch.zeros(512, 512, 3, 3)}
    refused(extra, r"missing 0 keys \[\], unexpected 1 keys \['layer4\.2\.conv1\.weight'\]")
    wrong = {**state, "layer2.0.conv1.weight": torch.zeros(128, 64, 5, 5)}
    refused(wrong, r"1 tensors of the wrong shape, first layer2\.0\.conv1\.weight "
                   r"\(128, 64, 5, 5\) where backbone resnet18 needs \(128, 64, 3, 3\)")
    # the 7x7 stem on 16-pixel images: the error names the option that fixes it
    refused(state, r"conv1\.weight \(64, 3, 7, 7\) where backbone resnet18 needs "
                   r"\(64, 3, 3, 3\).*input_size=224", input_size=None)
    with pytest.raises(ValueError, match="no file .*torchvision.models.resnet18"):
        prepare(clr_spec(tmp_path / "absent.pt"), tiny_stream())
    with pytest.raises(ValueError, match="input_size must be 0 .* got -3"):
        prepare(clr_spec(tmp_path / "absent.pt", input_size=-3), tiny_stream())


# ---------------------------------------------------------------- resizing
@pytest.mark.parametrize("source,size", [(16, 72), (72, 32), (32, 224)])
def test_resize_is_pils_bilinear(source, size):
    """The reference resizes PIL images with `transforms.Resize((224, 224))` = PIL's
    `Image.resize((224, 224), BILINEAR)`.  PIL rounds to uint8 after each of its two passes
    (horizontal, then vertical), so it differs from the exact value by at most 0.5 + 0.5 on the
    0..255 scale, by about 0.25 on average.  Up- and down-sampling (antialiased)."""
    from PIL import Image
    from clbudget.methods.clr import resize_inputs
    rng = np.random.default_rng(source)
    x = rng.integers(0, 256, (2, 3, source, source), dtype=np.uint8)
    pil = np.stack([np.asarray(Image.fromarray(img.transpose(1, 2, 0)).resize(
        (size, size), Image.BILINEAR)).transpose(2, 0, 1) for img in x])
    ours = resize_inputs(torch.from_numpy(x).float(), size)
    assert ours.shape == (2, 3, size, size)
    diff = (ours - torch.from_numpy(pil).float()).abs()
    assert float(diff.max()) <= 1.01 and float(diff.mean()) < 0.35
    # on normalised inputs (where CLR applies it): the same up to the normalisation
    mean, std = torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1), torch.tensor(
        [0.2, 0.25, 0.3]).view(1, 3, 1, 1)
    normalised = (torch.from_numpy(x).float() / 255 - mean) / std
    torch.testing.assert_close(resize_inputs(normalised, size), (ours / 255 - mean) / std,
                               rtol=1e-5, atol=1e-5)


def test_task_phase_sees_resized_unaugmented_images(tmp_path):
    """With input_size the backbone receives every training image once per epoch, resized
    and normalised, neither cropped nor flipped (the reference's task loaders: Resize +
    ToTensor + Normalize only); evaluation sees the same resolution."""
    path = weights_file(tmp_path)
    stream, ctx, method = prepare(clr_spec(path), tiny_stream())
    tasks = to_device(stream, ctx.device)
    seen = []
    hook = method.backbone.generalized[0].register_forward_pre_hook(
        lambda m, args: seen.append(args[0].detach().clone()))
    task = tasks[0]
    method.begin_task(task)
    method.learn(task)
    hook.remove()
    got = torch.cat(seen)                                          # (N, 3, 72, 72)
    assert got.shape == (len(task.x), 3, 72, 72)
    p = ctx.trainer.pipeline
    mean, std = torch.tensor(p.mean).view(1, -1, 1, 1), torch.tensor(p.std).view(1, -1, 1, 1)
    want = F.interpolate((task.x.float() / 255 - mean) / std, size=(72, 72), mode="bilinear",
                         align_corners=False, antialias=True)
    dist = torch.cdist(got.flatten(1), want.flatten(1),            # (N, N)
                       compute_mode="donot_use_mm_for_euclid_dist")
    nearest = dist.argmin(1)
    assert sorted(nearest.tolist()) == list(range(len(task.x)))    # each image exactly once
    assert float(dist.min(1).values.max()) < 1e-3
    seen.clear()
    hook = method.backbone.generalized[0].register_forward_pre_hook(
        lambda m, args: seen.append(args[0].shape))
    method.end_task(task)
    evaluate(method, tasks, 0)
    hook.remove()
    assert seen and all(tuple(s[1:]) == (3, 72, 72) for s in seen)


# ---------------------------------------------------------------- bytes
def test_ledger_holds_the_7x7_backbone_and_budgets_count_stored_images(tmp_path):
    """The ledger equals the tensors held (hand count of ResNet-18 with torchvision's stem),
    and an exemplar-denominated budget counts the stored 3x16x16 uint8 image (768 bytes),
    never the 3x72x72 one the backbone sees (15,552)."""
    path = weights_file(tmp_path)
    spec = dataclasses.replace(clr_spec(path, **SMALL), budget="200MB+1000ex")
    stream, ctx, method = prepare(spec, tiny_stream(**SMALL))
    assert ctx.allocation.budget_bytes == 200_000_000 + 1000 * 768 == 200_768_000
    assert tuple(ctx.stream.image_shape) == (3, 16, 16)
    for task in to_device(stream, ctx.device):
        method.begin_task(task)
        method.learn(task)
        method.end_task(task)
    items = {i.name: i.n_bytes for i in method.ledger("strict").items}
    # 11,176,512 float32 parameters; BN statistics 2 x 4,800 float32 + 20 int64 counters
    assert items["backbone.params"] == 4 * 11_176_512 == 44_706_048
    assert items["backbone.buffers"] == 4 * 9_600 + 8 * 20 == 38_560
    # per task (2 tasks): 3,904 kxk channels x 9 kernels (the 7x7 stem's 64 included), a BN
    # set (4 x 4,800 float32 + 20 counters), a head of 2 classes over 512 features
    assert items["clr.kernels"] == 2 * 4 * 9 * 3904 == 2 * 140_544
    assert items["clr.bn"] == 2 * (4 * 4 * 4800 + 8 * 20) == 2 * 76_960
    assert items["clr.heads"] == 2 * 4 * 513 * 2 == 2 * 4_104
    assert method.ledger("strict").total_bytes == held_bytes(method) == 45_187_824
    # the allocator's preview prices what the run holds, item by item
    assert {i.name: i.n_bytes for i in ctx.allocation.ledger.items} == items


@pytest.mark.parametrize("size, params", [
    # torchvision's stem above 64 px: 11,176,512 parameters (torchvision's count without fc)
    (72, 11_176_512), (224, 11_176_512),
    # the CIFAR stem at 64 px and below: conv1 64x3x3x3 = 1,728 weights instead of
    # 64x3x7x7 = 9,408, i.e. 7,680 fewer: 11,168,832
    (64, 11_168_832)])
def test_the_preview_prices_the_stem_the_run_builds(tmp_path, size, params):
    """CLR with input_size S builds ResNet-18 for S x S inputs (the 7x7 stem above 64 px); the
    allocation's preview (`predicted_ledger`) prices that backbone, not the stream's 16x16
    one: 4 B x 11,176,512 = 44,706,048 bytes at 72 and 224 px, 30,720 bytes (7,680 x 4 B)
    more than the 3x3-stem 4 x 11,168,832 = 44,675,328 at 64 px."""
    spec = clr_spec(tmp_path / "unused.pt", input_size=size, **SMALL)
    spec = dataclasses.replace(spec, method_options=(("input_size", size),
                                                     ("pretrain_per_class", 1)))
    stream, ctx, method = prepare(spec, tiny_stream(**SMALL))
    preview = {i.name: i.n_bytes for i in ctx.allocation.ledger.items}
    assert preview["backbone.params"] == 4 * params
    assert {i.name: i.n_bytes for i in method.ledger("strict").items}["backbone.params"] \
        == sum(p.numel() * p.element_size() for p in method.backbone.parameters()) == 4 * params
    assert tuple(ctx.stream.image_shape) == (3, 16, 16)   # exemplars: the stored size


# ---------------------------------------------------------------- provenance
def test_rows_and_report_label_the_backbone(tmp_path):
    from clbudget.analysis.report import build_report, render_markdown
    path = weights_file(tmp_path, name="resnet18-imagenet1k.pt")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    weights = run_experiment(clr_spec(path, **SMALL), stream=tiny_stream(**SMALL))
    glyphs = run_experiment(tiny_spec("clr", method_options=(("pretrain_per_class", 5),),
                                      **SMALL), stream=tiny_stream(**SMALL))
    file_label = f"torchvision resnet18 from resnet18-imagenet1k.pt (sha256 {sha[:12]})"
    assert weights["cost_figures"]["backbone_provenance"] == file_label
    assert weights["cost_figures"]["pretrain"]["sha256"] == sha
    assert weights["cost_figures"]["input_size"].startswith("72x72 (resized")
    assert glyphs["cost_figures"]["backbone_provenance"] == "glyphs stand-in (20 classes)"
    assert glyphs["cost_figures"]["input_size"] == "16x16 (stream's)"
    # the glyph stand-in is pre-trained (1 epoch here, tiny_spec): its phase is shown
    assert glyphs["phase_epochs"] == {"task": 1, "pretrain": 1} and glyphs["phases_not_run"] == {}
    assert weights["phase_epochs"] == {"task": 1} and list(weights["phases_not_run"]) == ["pretrain"]
    text = render_markdown(build_report([weights, glyphs]))
    assert f"(task-aware; backbone: {file_label})" in text
    assert "(task-aware; backbone: glyphs stand-in (20 classes))" in text


@pytest.mark.parametrize("size,stem", [(0, (64, 3, 3, 3)), (72, (64, 3, 7, 7))])
def test_glyph_stand_in_keeps_its_20_classes_at_any_input_size(size, stem):
    """Without a file the stand-in is pre-trained on 20 glyph classes disjoint from the
    stream's 6, at the resolution the backbone then sees."""
    spec = tiny_spec("clr", backbone="resnet18", budget="200MB",
                     method_options=(("input_size", size), ("pretrain_per_class", 2)))
    stream, ctx, method = prepare(spec, tiny_stream())
    assert method.backbone.generalized[0].weight.shape == stem
    task = to_device(stream, ctx.device)[0]
    seen = []
    hook = method.backbone.generalized[0].register_forward_pre_hook(
        lambda m, args: seen.append(tuple(args[0].shape[1:])))
    method.begin_task(task)
    method.learn(task)
    hook.remove()
    side = size or 16                                 # pre-training and task, one resolution
    assert len(seen) >= 1 + 3 and set(seen) == {(3, side, side)}   # >= 1 + 3 batches
    pre = method.cost_figures()["pretrain"]
    assert pre["glyph_classes"] == list(range(6, 26)) and pre["images"] == 40
    assert method.cost_figures()["backbone_provenance"] == "glyphs stand-in (20 classes)"
    assert method.phase("task").augment is False


def test_real_cifar10_at_72_pixels_counts_3072_byte_images_and_20_glyph_classes():
    """Real CIFAR-10 (a failure where absent): the stand-in gets glyph classes 0-19 (every glyph
    class is disjoint from CIFAR's), pre-trains and trains at 72 px, while "1000ex" in the
    budget is 1000 stored 3x32x32 uint8 images = 3,072,000 bytes (not 3x72x72 = 15,552,000)."""
    from pathlib import Path
    from clbudget.experiment.run import RunSpec, load
    root = str(real_cifar10())
    spec = RunSpec(method="clr", dataset="imagefolder", data_root=root, budget="200MB+1000ex",
                   init=2, inc=2, num_classes=4, max_per_class=4, max_test_per_class=2,
                   epochs=1, seed=0, backbone="resnet18", device="cpu",
                   method_options=(("pretrain_per_class", 2), ("input_size", 72)),
                   recipe_options=(("pretrain", {"epochs": 1}),))
    stream, ctx, method = prepare(spec, load(spec))
    assert tuple(ctx.stream.image_shape) == (3, 32, 32)
    assert ctx.allocation.budget_bytes == 200_000_000 + 1000 * 3072 == 203_072_000
    seen = []
    hook = method.backbone.generalized[0].register_forward_pre_hook(
        lambda m, args: seen.append(tuple(args[0].shape[1:])))
    task = to_device(stream, ctx.device)[0]
    method.begin_task(task)
    method.learn(task)
    hook.remove()
    assert seen and set(seen) == {(3, 72, 72)}
    figures = method.cost_figures()
    assert figures["pretrain"]["glyph_classes"] == list(range(20))
    assert figures["backbone_provenance"] == "glyphs stand-in (20 classes)"


# ---------------------------------------------------------------- the command line
def test_cli_runs_clr_on_a_torchvision_file_at_72_pixels(tmp_path, capsys):
    """2 tasks of 2 glyph classes (8 training images each), 1 epoch: the row's ledger is the
    hand count of the held tensors (the same stream's in the ledger test above), its backbone
    labelled, in JSON and in the text."""
    path = weights_file(tmp_path, name="r18.pt")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    args = ["run", "--method", "clr", "--dataset", "glyphs", "--init", "2", "--inc", "2",
            "--glyphs", "num_classes=4", "--glyphs", "train_per_class=8",
            "--glyphs", "test_per_class=4", "--glyphs", "image_size=16",
            "--backbone", "resnet18", "--budget", "200MB", "--epochs", "1", "--device", "cpu",
            "--option", f"backbone_weights={path}", "--option", "input_size=72"]
    code, out, err = cli(capsys, *args, "--json")
    assert code == 0, err
    row = json.loads(out)
    # backbone 44,744,608 + 2 tasks x (kernels 140,544 + BN 76,960 + head 4,104)
    assert row["ledger"]["total_bytes"] == 44_744_608 + 2 * 221_608 == 45_187_824
    label = f"torchvision resnet18 from r18.pt (sha256 {sha[:12]})"
    assert row["cost_figures"]["backbone_provenance"] == label
    assert row["accuracy"]["setting"] == "task-aware" and row["num_tasks"] == 2
    # the file replaces pre-training: the row's epochs say what ran (the recipe's pretrain
    # phase, 200 epochs, did not), and why
    assert row["phase_epochs"] == {"task": 1}
    assert row["phases_not_run"] == {"pretrain": f"backbone weights from {path}"}
    code, out, err = cli(capsys, *args)
    assert code == 0, err
    assert f"backbone_provenance {label}" in out
    assert f"epochs per phase    task 1; pretrain not run (backbone weights from {path})" in out
