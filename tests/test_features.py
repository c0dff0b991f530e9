"""Feature streams (issue 25 C): the feature-file reader, the stream made from it, exemplars
counted at their float dtype, the ResMLP of BMC's reference, `clbudget encode`, and runs of
bmc and replay on feature vectors whose ledger is the bytes they hold.

Expected values: byte counts and parameter counts are hand arithmetic from the formulas, written
as literals (D=512 float32 -> 2,048 B an exemplar; ResMLP on 768 inputs -> 314,752 parameters
counted layer by layer from stream_benchmark backbone/MLP.py); the ResMLP's forward is checked
against a second implementation of MLP.py's `forward` written here with torch.nn.functional;
the class order is PyCIL's `np.random.seed(1993); np.random.permutation(K)` computed here."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clbudget.budget.accountant import parse_budget
from clbudget.budget.costs import StreamShape, cost_model
from clbudget.nets.backbones import backbone_stats, create_backbone
from clbudget.streams import DataError, make_stream
from clbudget.streams.base import Split
from clbudget.streams.features import check_features, read_features, write_features
from tests.helpers import cli, held_bytes


def arrays(n_classes=6, per_class=12, test_per_class=4, d=8, dtype=np.float32, seed=0):
    """Separable clusters: class c's vectors are 3 * e_(c mod d) plus noise."""
    rng = np.random.default_rng(seed)

    def part(k):
        y = np.repeat(np.arange(n_classes), k)
        x = rng.normal(0, 0.3, (len(y), d))
        x[np.arange(len(y)), y % d] += 3.0
        return x.astype(dtype), y.astype(np.int64)
    (tx, ty), (vx, vy) = part(per_class), part(test_per_class)
    return {"train_x": tx, "train_y": ty, "test_x": vx, "test_y": vy}


def save(path, a):
    np.savez(path, **a)
    return path


# ------------------------------------------------------------------------------ the reader
def test_a_good_npz_and_pt_file_read_as_the_arrays_they_hold(tmp_path):
    a = arrays()
    ds = read_features(save(tmp_path / "f.npz", a))
    assert ds.name == "features" and ds.num_classes == 6 and ds.image_shape == (8,)
    assert ds.train.x.dtype == np.float32 and ds.train.x.shape == (72, 8)
    np.testing.assert_array_equal(ds.train.x, a["train_x"])
    np.testing.assert_array_equal(ds.test.y, a["test_y"])
    assert ds.class_names == ("0", "1", "2", "3", "4", "5")
    torch.save({k: torch.from_numpy(v) for k, v in a.items()} | {"class_names": list("abcdef")},
               tmp_path / "f.pt")
    pt = read_features(tmp_path / "f.pt")
    np.testing.assert_array_equal(pt.train.x, a["train_x"])
    assert pt.class_names == tuple("abcdef")
    half = read_features(save(tmp_path / "h.npz", {**a, "train_x": a["train_x"].astype(np.float16),
                                                   "test_x": a["test_x"].astype(np.float16)}))
    assert half.train.x.dtype == np.float16


def _bad(**change):
    a = arrays()
    for k, v in change.items():
        if v is None:
            a.pop(k)
        else:
            a[k] = v
    return a


@pytest.mark.parametrize("change,match", [
    (dict(test_y=None), r"lacks test_y; a feature file holds train_x, train_y, test_x, test_y"),
    (dict(train_x=None, trainx=np.zeros((2, 8), np.float32)), r"lacks train_x.*nearest to train_x: trainx"),
    (dict(labels=np.zeros(3)), r"unknown key 'labels'"),
    (dict(train_x=np.zeros(72, np.float32)), r"train_x must be \(N, D\).*got shape \(72,\)"),
    (dict(train_x=np.zeros((72, 2, 4), np.float32)), r"got shape \(72, 2, 4\); flatten each vector"),
    (dict(train_x=np.zeros((72, 8))), r"train_x must be float32 or float16, got float64; store it as float32"),
    (dict(test_x=np.zeros((24, 8), np.int32)), r"test_x must be float32 or float16, got int32"),
    (dict(train_y=np.zeros(71, np.int64)), r"train_y must be \(72,\), one label per row"),
    (dict(train_y=np.zeros(72, np.float32)), r"train_y must hold integer labels, got float32"),
    (dict(test_y=np.full(24, -1)), r"test_y has negative label -1"),
    (dict(test_x=np.zeros((24, 9), np.float32)), r"train_x has D=8 features but test_x has D=9"),
    (dict(test_x=np.zeros((24, 8), np.float16)), r"train_x is float32 but test_x is float16"),
    (dict(train_y=np.repeat([0, 1, 2, 3, 4, 6], 12)), r"train_y has no sample of class\(es\) \[5\]"),
    (dict(test_y=np.full(24, 6)), r"test_y has label 6 but train_y has classes 0..5 only"),
    (dict(test_y=np.repeat([0, 1, 2, 3, 4, 4], 4)), r"test_y has no sample of class\(es\) \[5\]"),
    (dict(class_names=np.array(["a", "b"])), r"class_names must be \(6,\)"),
])
def test_each_bad_key_shape_or_dtype_is_a_clear_error(tmp_path, change, match):
    with pytest.raises(DataError, match=match):
        read_features(save(tmp_path / "bad.npz", _bad(**change)))


def test_non_finite_values_files_and_suffixes_are_refused(tmp_path):
    a = arrays()
    a["train_x"][3, 1] = np.nan
    with pytest.raises(DataError, match=r"train_x has non-finite values \(NaN or inf\) in 1 row"):
        check_features(a)
    with pytest.raises(DataError, match="must end in .npz or .pt, got '.csv'"):
        read_features(tmp_path / "f.csv")
    with pytest.raises(DataError, match="does not exist; make one with `clbudget encode`"):
        read_features(tmp_path / "missing.npz")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(DataError, match="holds a list; expected a dict with keys train_x"):
        read_features(tmp_path / "list.pt")


def test_write_features_refuses_to_overwrite_without_force_and_round_trips(tmp_path):
    a = arrays()
    train, test = Split(a["train_x"], a["train_y"]), Split(a["test_x"], a["test_y"])
    path = write_features(tmp_path / "w.npz", train, test, meta={"encoder": "x"})
    with pytest.raises(ValueError, match="exists; pass --force to overwrite it"):
        write_features(path, train, test)
    write_features(path, train, test, class_names=list("uvwxyz"), force=True)
    assert read_features(path).class_names == tuple("uvwxyz")
    with pytest.raises(ValueError, match="must end in .npz or .pt"):
        write_features(tmp_path / "w.txt", train, test)


# ------------------------------------------------------------------------------ the stream
@pytest.mark.parametrize("init,inc,expected", [(0, 2, (2, 2, 2)), (4, 1, (4, 1, 1)),
                                               (3, 3, (3, 3))])
def test_the_stream_of_a_feature_file_follows_the_protocol(tmp_path, init, inc, expected):
    a = arrays()
    ds = read_features(save(tmp_path / "f.npz", a))
    stream = make_stream(ds, init, inc)
    order = np.random.RandomState(1993).permutation(6).tolist()   # PyCIL's class order
    assert stream.class_order == tuple(order) and stream.increments == expected
    assert stream.image_shape == (8,) and stream.input_dtype == "float32"
    lo = 0
    for task, k in zip(stream.tasks, expected):
        assert task.classes == tuple(range(lo, lo + k))
        for split, (x, y) in ((task.train, (a["train_x"], a["train_y"])),
                              (task.test, (a["test_x"], a["test_y"]))):
            originals = [order[c] for c in range(lo, lo + k)]
            rows = np.isin(y, originals)
            np.testing.assert_array_equal(split.x, x[rows])        # file order kept
            np.testing.assert_array_equal(split.y, [order.index(v) for v in y[rows]])
        lo += k
    capped = make_stream(ds, init, inc, max_per_class=5, max_test_per_class=2)
    assert sum(len(t.train) for t in capped.tasks) == 30
    assert sum(len(t.test) for t in capped.tasks) == 12


# ------------------------------------------------------------------------------ bytes
def test_feature_exemplars_are_counted_at_their_dtype_by_hand():
    f32 = StreamShape(5, (512,), 10, "float32")
    f16 = StreamShape(5, (512,), 10, "float16")
    img = StreamShape(5, (3, 32, 32), 10)
    items = lambda shape, n: {i.name: i.n_bytes for i in
                              cost_model("replay").cost(shape, "resmlp", n).items}
    assert items(f32, 10)["memory.images"] == 20_480        # 10 x 512 x 4
    assert items(f32, 10)["memory.labels"] == 20            # 10 x int16
    assert items(f16, 10)["memory.images"] == 10_240        # 10 x 512 x 2
    assert items(img, 10)["memory.images"] == 30_720        # 10 x 3,072 uint8
    # bmc keeps the expert's 256 float32 features beside each vector
    bmc = {i.name: i.n_bytes for i in cost_model("bmc").cost(f32, "resmlp", 3).items}
    assert (bmc["memory.images"], bmc["memory.features"]) == (6_144, 3_072)
    assert parse_budget("2000ex", image_shape=(512,), dtype=torch.float32) == 4_096_000
    assert parse_budget("2000ex", image_shape=(512,), dtype=torch.float16) == 2_048_000
    assert parse_budget("2000ex", image_shape=(3, 32, 32)) == 6_144_000
    from clbudget.methods.memory import ExemplarMemory
    m = ExemplarMemory(10, (512,), "cpu", dtype=torch.float32)
    assert m.images.dtype == torch.float32 and m.images.numel() * m.images.element_size() == 20_480


# ------------------------------------------------------------------------------ ResMLP
def test_resmlp_parameters_counted_by_hand_from_the_layer_shapes():
    # stream_benchmark backbone/MLP.py ResMLP(768, K) without its classifier
    projection = 768 * 128 + 128
    block1 = ((128 * 128 + 128) + 2 * 128          # fc1 + bn1
              + (128 * 256 + 256) + 2 * 256        # fc2 + bn2
              + 128 * 256 + 2 * 256)               # shortcut Linear (no bias) + BN
    block2 = ((256 * 128 + 128) + 2 * 128 + (128 * 256 + 256) + 2 * 256
              + 256 * 256 + 2 * 256)
    assert (projection, block1, block2) == (98_432, 83_584, 132_736)
    s = backbone_stats("resmlp", (768,))
    assert s.params == 314_752 == projection + block1 + block2
    assert (s.generalized_params, s.specialized_params) == (98_432 + 83_584, 132_736)
    assert s.params_bytes == 1_259_008 and s.out_dim == 256
    # BN buffers: running mean + var of 128 + 256 + 256 channels per block, float32, plus
    # one int64 counter per BN layer (6)
    assert s.buffers_bytes == 2 * 4 * 2 * (128 + 256 + 256) + 6 * 8 == 10_288
    # on images the reference flattens: (3, 32, 32) is 3,072 inputs
    assert backbone_stats("resmlp", (3, 32, 32)).params == 3072 * 128 + 128 + 83_584 + 132_736
    net = create_backbone("resmlp", (768,))
    assert sum(p.numel() for p in net.parameters()) == 314_752


def _reference_forward(net, x):
    """stream_benchmark backbone/MLP.py ResMLP.forward(returnt="features") in eval mode,
    written with torch.nn.functional from the net's own weights."""
    g, s = net.generalized, net.specialized
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm1d)]

    def bn(m, h):
        return F.batch_norm(h, m.running_mean, m.running_var, m.weight, m.bias, False)

    def res_linear(block, h):   # relu(bn2(fc2(relu(bn1(fc1(x))))) + shortcut(x))
        out = F.relu(bn(block.bn1, F.linear(h, block.fc1.weight, block.fc1.bias)))
        out = bn(block.bn2, F.linear(out, block.fc2.weight, block.fc2.bias))
        sc = bn(block.shortcut[1], F.linear(h, block.shortcut[0].weight))
        return F.relu(out + sc)
    assert len(linears) == 7 and len(bns) == 6
    feats = F.linear(x.flatten(1), g[1].weight, g[1].bias)      # input_projection, no relu
    feats = res_linear(g[2], feats)
    return res_linear(s[0], feats)


def test_resmlp_forward_is_the_references_and_its_init_xavier():
    torch.manual_seed(0)
    net = create_backbone("resmlp", (20,))
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm1d):   # non-trivial statistics
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
    net.eval()
    x = torch.randn(5, 20)
    torch.testing.assert_close(net(x), _reference_forward(net, x))
    drops = [m.p for m in net.modules() if isinstance(m, torch.nn.Dropout)]
    assert drops == [0.3, 0.3]
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert all(m.bias is None or not m.bias.any() for m in linears)
    big = create_backbone("resmlp", (4000,)).generalized[1].weight   # Xavier: std sqrt(2/(in+out))
    assert float(big.detach().std()) == pytest.approx((2 / (4000 + 128)) ** 0.5, rel=0.05)


def test_resmlp_trains_on_a_one_sample_batch():
    """The loop keeps a last batch of one (129 samples at batch 128); BatchNorm1d then uses
    its running statistics, the eval-mode output, instead of raising."""
    net = create_backbone("resmlp", (6,))
    x = torch.randn(1, 6)
    net.eval()
    expected = net(x)
    net.train()
    for m in net.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    torch.testing.assert_close(net(x), expected)


def test_bmc_taps_the_two_residual_blocks_of_the_mlp():
    from clbudget.methods.bmc_experts import interim_features
    net = create_backbone("resmlp", (10,)).eval()
    x = torch.randn(4, 10)
    feats = interim_features(net, x)
    assert [tuple(f.shape) for f in feats] == [(4, 256), (4, 256)]
    torch.testing.assert_close(feats[0], net.generalized(x))
    torch.testing.assert_close(feats[1], net(x))


def test_cnn_backbones_refuse_feature_vectors_and_resmlp_is_the_default():
    from clbudget.nets.backbones import default_backbone
    assert default_backbone((768,)) == "resmlp"
    with pytest.raises(ValueError, match=r"backbone resnet32 takes images \(C, H, W\), got "
                                         r"inputs of shape \(768,\).*--backbone resmlp"):
        create_backbone("resnet32", (768,))


# ------------------------------------------------------------------------------ the input path
def test_feature_inputs_are_never_augmented_and_standardised_as_recorded(tmp_path):
    from clbudget.experiment.run import RunSpec, prepare
    from clbudget.train.features import FeaturePipeline
    path = save(tmp_path / "f.npz", arrays())
    spec = RunSpec(method="replay", dataset="features", data_root=str(path), budget="1MiB",
                   init=0, inc=2, epochs=1, device="cpu")
    stream, ctx, _ = prepare(spec)
    assert isinstance(ctx.trainer.pipeline, FeaturePipeline)
    assert all(not cfg.augment for _, cfg in ctx.recipe.phases)
    assert ctx.normalization.kind == "none"
    x = torch.from_numpy(stream.tasks[0].train.x[:4])
    torch.testing.assert_close(ctx.trainer.inputs(x, augment=True), x)   # as stored
    # train-set: each dimension by its mean and unbiased std, here by hand on 3 vectors
    tiny = {"train_x": np.array([[1, 10], [2, 10], [3, 13]], np.float32),
            "train_y": np.array([0, 0, 1]), "test_x": np.zeros((2, 2), np.float32),
            "test_y": np.array([0, 1])}
    path2 = save(tmp_path / "tiny.npz", tiny)
    spec2 = RunSpec(method="finetune", dataset="features", data_root=str(path2), budget="1MiB",
                    init=0, inc=1, normalization="train-set", device="cpu")
    _, ctx2, _ = prepare(spec2)
    # dim 0: mean 2, var (1+0+1)/2 = 1; dim 1: mean 11, var (1+1+4)/2 = 3
    assert ctx2.trainer.pipeline.mean == pytest.approx((2.0, 11.0))
    assert ctx2.trainer.pipeline.std == pytest.approx((1.0, 3 ** 0.5))
    out = ctx2.trainer.inputs(torch.tensor([[3.0, 14.0]]))
    torch.testing.assert_close(out, torch.tensor([[1.0, 3 / 3 ** 0.5]]))
    with pytest.raises(ValueError, match="published constants are per colour channel"):
        prepare(RunSpec(method="finetune", dataset="features", data_root=str(path2),
                        budget="1MiB", init=0, inc=1, normalization="pycil:cifar10"))
    with pytest.raises(ValueError, match="codec jpeg:75 encodes images"):
        prepare(RunSpec(method="replay", dataset="features", data_root=str(path),
                        budget="1MiB", init=0, inc=2, codec="jpeg:75"))


def test_bmc_on_features_trains_with_the_references_expert_recipe():
    from clbudget.experiment.run import RunSpec
    recipe = RunSpec(method="bmc", dataset="features", data_root="x.npz").resolved_recipe()
    assert recipe.name == "bmc-features"
    first = recipe.phase("first")
    assert (first.optimizer, first.lr, first.batch_size, first.epochs, first.schedule,
            first.augment) == ("adamw", 0.01, 64, 20, "plateau", False)
    assert RunSpec(method="bmc").resolved_recipe().name == "bmc"   # images keep theirs


# ------------------------------------------------------------------------------ encode
def test_encode_a_tiny_random_backbone_over_glyphs_then_stream_its_file(tmp_path, capsys,
                                                                     monkeypatch):
    out = tmp_path / "glyphs.npz"
    args = ["encode", "--dataset", "glyphs", "--glyphs", "num_classes=4", "--glyphs",
            "train_per_class=10", "--glyphs", "test_per_class=3", "--glyphs", "image_size=16",
            "--encoder", "random:conv2", "--seed", "3", "--out", str(out), "--json"]
    code, stdout, err = cli(capsys, *args)
    assert code == 0, err
    done = json.loads(stdout)
    assert done["train"] == [40, 64] and done["test"] == [12, 64] and done["num_classes"] == 4
    ds = read_features(out)
    assert ds.train.x.dtype == np.float32 and ds.image_shape == (64,)
    # the same vectors by hand: conv2 at seed 3 on (x / 255 - mean) / std of the train images
    from clbudget.streams import GlyphsOptions, load_dataset
    from clbudget.train.loop import Pipeline
    images = load_dataset("glyphs", glyphs_options=GlyphsOptions(
        num_classes=4, train_per_class=10, test_per_class=3, image_size=16))
    stats = Pipeline.from_images(images.train.x)
    torch.manual_seed(3)
    net = create_backbone("conv2", (3, 16, 16)).eval()
    x = torch.from_numpy(images.test.x).float() / 255
    x = (x - torch.tensor(stats.mean).view(1, 3, 1, 1)) / torch.tensor(stats.std).view(1, 3, 1, 1)
    with torch.no_grad():
        np.testing.assert_allclose(ds.test.x, net(x).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(ds.train.y, images.train.y)
    import clbudget.streams

    def never(*a, **k):
        raise AssertionError("encode read the data set before refusing to overwrite")
    monkeypatch.setattr(clbudget.streams, "load_dataset", never)
    code, _, err = cli(capsys, *args)
    assert code == 2 and "exists; pass --force to overwrite it" in err   # before any image
    monkeypatch.undo()
    code, _, err = cli(capsys, *args, "--force", "--dtype", "float16")
    assert code == 0 and read_features(out).train.x.dtype == np.float16
    stream = make_stream(read_features(out), 0, 2)
    assert stream.increments == (2, 2) and stream.input_dtype == "float16"


def test_encode_loads_a_state_dict_with_weights_only(tmp_path, capsys, monkeypatch):
    torch.manual_seed(7)
    net = create_backbone("conv2", (3, 16, 16))
    torch.save(net.state_dict(), tmp_path / "enc.pt")
    base = ["encode", "--dataset", "glyphs", "--glyphs", "num_classes=2", "--glyphs",
            "train_per_class=4", "--glyphs", "test_per_class=2", "--glyphs", "image_size=16",
            "--encoder", str(tmp_path / "enc.pt")]
    code, _, err = cli(capsys, *base, "--out", str(tmp_path / "a.npz"))
    assert code == 2 and "needs --arch" in err
    code, _, err = cli(capsys, *base, "--arch", "resnet20", "--out", str(tmp_path / "a.npz"))
    assert code == 2 and "does not fit --arch resnet20" in err
    code, _, err = cli(capsys, *base, "--arch", "conv2", "--out", str(tmp_path / "a.pt"))
    assert code == 0, err
    assert read_features(tmp_path / "a.pt").train.x.shape == (8, 64)
    import sys
    monkeypatch.setitem(sys.modules, "torchvision", None)   # optional: absent -> one clear line
    code, _, err = cli(capsys, *base, "--arch", "torchvision:resnet18", "--out",
                       str(tmp_path / "b.npz"))
    assert code == 2 and "needs torchvision, which is not installed" in err


# ------------------------------------------------------------------------------ runs
def _ledger_watch(monkeypatch):
    """After every task of a run: (strict ledger total, bytes held, the method)."""
    import clbudget.experiment.run as run
    seen, check = [], run.check_budget

    def watch(method, allocation, task_index):
        seen.append((method.ledger("strict").total_bytes, held_bytes(method), method))
        return check(method, allocation, task_index)
    monkeypatch.setattr(run, "check_budget", watch)
    return seen


@pytest.mark.parametrize("method", ["bmc", "replay"])
def test_a_cli_run_on_a_feature_stream_holds_its_ledger(tmp_path, capsys, monkeypatch, method):
    path = save(tmp_path / "f.npz", arrays(d=16))
    seen = _ledger_watch(monkeypatch)
    code, stdout, err = cli(capsys, "run", "--features", str(path), "--method", method,
                            "--backbone", "resmlp", "--budget", "1xresmlp+400ex", "--init", "0",
                            "--inc", "2", "--epochs", "2", "--recipe-option",
                            "consolidation.epochs=2" if method == "bmc" else "first.batch_size=16",
                            "--device", "cpu", "--json")
    assert code == 0, err
    row = json.loads(stdout)
    assert row["spec"]["dataset"] == "features" and row["allocation"]["backbone"] == "resmlp"
    assert len(seen) == 3 and all(ledger == held for ledger, held, _ in seen)
    m = seen[-1][2]
    assert m.memory.images.dtype == torch.float32 and m.memory.images.shape[1:] == (16,)
    # 1xresmlp+400ex: 400 float32 vectors of 16 = 25,600 B on top of the backbone's parameters
    params = 128 * 16 + 128 + 83_584 + 132_736
    assert row["budget_bytes"] == 4 * params + 400 * 16 * 4
    items = {i["name"]: i["n_bytes"] for i in row["ledger"]["items"]}
    n = row["allocation"]["n_exemplars"]
    assert items["memory.images"] == n * 64 and items["memory.labels"] == n * 2
    if method == "bmc":
        assert items["memory.features"] == n * 256 * 4
        # each exemplar: 64 B vector + 2 B label + 1,024 B expert features; the head is
        # 256 x 6 + 6 float32 and the BN buffers 10,288 B on top of the parameters
        head = 4 * (256 * 6 + 6)
        assert n == (row["budget_bytes"] - 4 * params - head - 10_288) // (64 + 2 + 1024) == 8
    else:   # 64 B vector + 2 B label each
        assert n == (25_600 - 4 * (256 * 6 + 6) - 10_288) // 66 == 138
    assert row["normalization"]["kind"] == "none"
    assert not any(p["augment"] for p in row["recipe"]["phases"].values())
    assert row["ledger"]["total_bytes"] <= row["budget_bytes"]
    code, _, err = cli(capsys, "run", "--features", str(path), "--data-root", "elsewhere",
                       "--method", method, "--budget", "1MiB", "--init", "0", "--inc", "2")
    assert code == 2 and "--features FILE is the data: drop --data-root" in err


def test_a_sweep_prices_exemplar_budgets_of_a_feature_stream_at_float32(tmp_path, capsys):
    path = save(tmp_path / "f.npz", arrays(d=16))
    code, stdout, err = cli(capsys, "sweep", "--features", str(path), "--methods", "replay",
                            "--budgets", "1xresmlp+400ex:1xresmlp+800ex:2", "--init", "0",
                            "--inc", "2", "--out", str(tmp_path / "sw"), "--dry-run", "--json")
    assert code == 0, err
    params = 128 * 16 + 128 + 83_584 + 132_736
    budgets = sorted({int(c["budget"]) for c in json.loads(stdout)["cells"]})
    assert budgets == [4 * params + 400 * 64, 4 * params + 800 * 64]   # 64 B a vector of 16


@pytest.mark.parametrize("method", ["clr", "mind"])
def test_convolution_methods_are_refused_on_the_mlp(tmp_path, method):
    from clbudget.experiment.run import RunSpec, prepare
    path = save(tmp_path / "f.npz", arrays())
    with pytest.raises(ValueError, match=f"{method} .*resmlp has none: run {method} on images"):
        prepare(RunSpec(method=method, dataset="features", data_root=str(path), budget="20MiB",
                        init=0, inc=2, device="cpu"))


def test_float16_vectors_are_held_and_counted_at_two_bytes(tmp_path):
    """No training needed: the memory is allocated at the task boundary (as
    test_allocator_properties does it); replay's ledger after each task == what it holds ==
    the allocation's, item by item, with 8 float16 values = 16 B an exemplar."""
    from clbudget.experiment.run import RunSpec, prepare, to_device
    a = arrays(d=8, dtype=np.float16)
    path = save(tmp_path / "h.npz", a)
    spec = RunSpec(method="replay", dataset="features", data_root=str(path),
                   budget="1xresmlp+2000ex", init=0, inc=2, device="cpu")
    stream, ctx, m = prepare(spec)
    params = 128 * 8 + 128 + 83_584 + 132_736
    assert ctx.allocation.budget_bytes == 4 * params + 2000 * 16
    n = ctx.allocation.n_exemplars   # what the head (6 classes) and BN buffers leave, 18 B each
    assert n == (32_000 - 4 * (256 * 6 + 6) - 10_288) // (16 + 2) == 863
    for task in to_device(stream, ctx.device):
        m.begin_task(task)
        m.end_task(task)
        assert m.ledger("strict").total_bytes == held_bytes(m)
    assert m.memory.images.dtype == torch.float16
    items = {i.name: i.n_bytes for i in m.ledger("strict").items}
    assert items["memory.images"] == n * 16 == {i.name: i.n_bytes for i in
                                                 ctx.allocation.ledger.items}["memory.images"]
    np.testing.assert_array_equal(m.memory.images[:len(m.memory)].numpy().dtype, np.float16)


def test_the_run_key_holds_the_feature_files_content_not_its_path(tmp_path):
    """Two files at one path are two runs (rewritten with other values: another key, the
    resume cache cannot hit); one file copied to another path is the same run (same key).
    The digest is SHA-256 of the file's bytes, checked here with hashlib on the bytes read
    whole, and the row records it."""
    import hashlib
    import shutil
    from clbudget.experiment.run import RunSpec, run_experiment
    path = save(tmp_path / "f.npz", arrays(d=8))
    spec = dict(method="replay", dataset="features", budget="1MiB", init=0, inc=2,
                backbone="resmlp", epochs=1, device="cpu")
    first = RunSpec(data_root=str(path), **spec)
    key = first.key
    assert first.data_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    other = tmp_path / "copy" / "g.npz"
    other.parent.mkdir()
    shutil.copyfile(path, other)
    assert RunSpec(data_root=str(other), **spec).key == key
    changed = arrays(d=8)
    changed["train_x"] = changed["train_x"] + 1.0          # same shapes, same file size
    save(path, changed)
    again = RunSpec(data_root=str(path), **spec)
    assert again.key != key
    assert again.data_sha256 == hashlib.sha256(path.read_bytes()).hexdigest() != \
        first.data_sha256
    row = run_experiment(again)
    assert row["run_key"] == again.key and row["data_sha256"] == again.data_sha256
    # an image data set's key is unchanged by this (no file to hash)
    assert RunSpec(method="replay").data_sha256 is None


# ------------------------------------------------------------------------------ input size
def _pil_resize(img, w, h):
    """PIL's bilinear resize of a (H, W) float image, in its float mode 'F' (no uint8
    rounding): the reference's `transforms.Resize` on PIL images, antialiased."""
    from PIL import Image
    return np.asarray(Image.fromarray(np.asarray(img, np.float32)).resize((w, h),
                                                                          Image.BILINEAR))


def test_resize_to_is_bilinear_with_half_pixel_centres_by_hand_and_as_pil():
    from clbudget.experiment.encode import resize_to

    def resize(img, size):
        return resize_to(torch.tensor(img, dtype=torch.float32)[None, None], size)[0, 0].numpy()
    img = np.array([[0.0, 4.0], [8.0, 16.0]])
    # 2 -> 4, align_corners=False: output centres (i + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25
    # input pixels, clamped at the borders: weights (1, 0), (.75, .25), (.25, .75), (0, 1)
    up = np.array([[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
    want = up @ img @ up.T
    assert want[1, 1] == 0.75 * (0.25 * 4) + 0.25 * (0.75 * 8 + 0.25 * 16) == 3.25
    np.testing.assert_array_equal(resize(img, 4), want)
    np.testing.assert_allclose(resize(img, 4), _pil_resize(img, 4, 4), atol=1e-5)
    # 4 -> 2 antialiased: a triangle of half-width 2 input pixels around output centre 1.0
    # (input centres .5, 1.5, 2.5, 3.5 at distances .5, .5, 1.5, 2.5: 1 - d / 2 = .75, .75,
    # .25, 0, normalised to 3/7, 3/7, 1/7, 0); without antialiasing it would be (0, .5, .5, 0)
    down = np.array([[3, 3, 1, 0], [0, 1, 3, 3]]) / 7
    big = np.arange(16.0).reshape(4, 4) ** 2
    np.testing.assert_allclose(resize(big, 2), down @ big @ down.T, rtol=1e-6)
    np.testing.assert_allclose(resize(big, 2), _pil_resize(big, 2, 2), rtol=1e-5)
    # 2 x 4 (H x W) -> 4: Resize(4) makes 4 x 8, CenterCrop(4) keeps columns 2..5
    wide = np.arange(8.0).reshape(2, 4) ** 2
    np.testing.assert_allclose(resize(wide, 4), _pil_resize(wide, 8, 4)[:, 2:6], atol=1e-4)
    x = torch.zeros(1, 3, 5, 5)
    assert resize_to(x, 0) is x and resize_to(x, 5) is x


GLYPHS_16 = ["--dataset", "glyphs", "--glyphs", "num_classes=2", "--glyphs", "train_per_class=4",
             "--glyphs", "test_per_class=2", "--glyphs", "image_size=16"]


def test_encode_resizes_to_the_input_size_and_the_file_and_the_row_record_it(tmp_path, capsys):
    """--input-size 72: the images reach a resnet10 built for 72 px (its 7x7 stem) resized as
    PIL's bilinear does; the file's meta and a run's row record 72x72 and where it came from.
    `stored` keeps 16 px (the old behaviour), as does a clbudget backbone by default."""
    from clbudget.experiment.run import RunSpec, run_experiment
    from clbudget.streams import GlyphsOptions, load_dataset
    from clbudget.streams.features import read_meta
    from clbudget.train.loop import Pipeline
    out = tmp_path / "g72.npz"
    code, stdout, err = cli(capsys, "encode", *GLYPHS_16, "--encoder", "random:resnet10",
                            "--seed", "3", "--input-size", "72", "--out", str(out), "--json")
    assert code == 0, err
    meta = read_meta(out)
    assert meta["input_size"] == [72, 72] and meta["input_size_source"] == "--input-size"
    assert meta["image_shape"] == [3, 16, 16] and meta["resize"].startswith("bilinear")
    # by hand: resnet10 built for 72 px at seed 3, on PIL's resize of x / 255, normalised
    images = load_dataset("glyphs", glyphs_options=GlyphsOptions(
        num_classes=2, train_per_class=4, test_per_class=2, image_size=16))
    stats = Pipeline.from_images(images.train.x)
    torch.manual_seed(3)
    net = create_backbone("resnet10", (3, 72, 72)).eval()
    assert tuple(net.generalized[0].weight.shape) == (64, 3, 7, 7)
    x = np.stack([[_pil_resize(im[c] / 255, 72, 72) for c in range(3)] for im in images.test.x])
    x = (torch.tensor(x) - torch.tensor(stats.mean).view(1, 3, 1, 1)) / \
        torch.tensor(stats.std).view(1, 3, 1, 1)
    with torch.no_grad():
        np.testing.assert_allclose(read_features(out).test.x, net(x.float()).numpy(),
                                   rtol=1e-3, atol=1e-4)
    row = run_experiment(RunSpec(method="replay", dataset="features", data_root=str(out),
                                 budget="2MiB", init=0, inc=1, backbone="resmlp", epochs=1,
                                 device="cpu"))
    assert row["feature_meta"]["input_size"] == [72, 72]
    assert row["feature_meta"]["input_size_source"] == "--input-size"
    assert row["feature_meta"]["encoder"] == "random:resnet10"
    for given, source in ((["--input-size", "stored"], "--input-size stored"),
                          ([], "the stored size (clbudget backbone conv2")):
        code, _, err = cli(capsys, "encode", *GLYPHS_16, "--encoder", "random:conv2",
                           "--out", str(out), "--force", *given)
        assert code == 0, err
        meta = read_meta(out)
        assert meta["input_size"] == [16, 16] and meta["resize"] == "none"
        assert meta["input_size_source"].startswith(source)
    for bad, words in (("abc", "must be a side in pixels"), ("4", "at least 8 pixels")):
        code, _, err = cli(capsys, "encode", *GLYPHS_16, "--encoder", "random:conv2",
                           "--out", str(tmp_path / "x.npz"), "--input-size", bad)
        assert code == 2 and words in err


class _StandIn(torch.nn.Module):
    """A torchvision-like classifier (a conv, global pooling, `fc`) that notes the sizes it
    sees: the stand-in for torchvision's models, which the tests never need."""
    seen: list = []

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.fc = torch.nn.Linear(4, 10)

    def forward(self, x):
        _StandIn.seen.append(tuple(x.shape[-2:]))
        return self.fc(self.conv(x).mean((2, 3)))


def _fake_torchvision(crop):
    """A `torchvision` module whose get_model builds `_StandIn`; with `crop`, its weights enum
    has DEFAULT weights whose transforms have that crop_size; without, no weights enum."""
    import enum
    import types

    class StandIn_Weights(enum.Enum):
        IMAGENET1K_V1 = 1
        DEFAULT = 1          # an alias, as torchvision's DEFAULT is

        def transforms(self):
            return types.SimpleNamespace(crop_size=[crop], resize_size=[crop + 8])
    models = types.SimpleNamespace(get_model=lambda name, weights=None: _StandIn())
    if crop is not None:
        models.get_model_weights = lambda name: StandIn_Weights
    tv = types.ModuleType("torchvision")
    tv.models = models
    return tv


@pytest.mark.parametrize("crop,arch,given,size,source", [
    (24, "resnet18", [], 24, "torchvision StandIn_Weights.IMAGENET1K_V1 transforms crop_size"),
    (None, "resnet18", [], 224, "clbudget table of torchvision crop sizes"),
    (None, "inception_v3", [], 299, "clbudget table of torchvision crop sizes"),
    (24, "resnet18", ["--input-size", "40"], 40, "--input-size"),
    (24, "resnet18", ["--input-size", "0"], 16, "--input-size stored"),
])
def test_a_torchvision_encoder_sees_its_weights_crop_size_by_default(
        crop, arch, given, size, source, tmp_path, capsys, monkeypatch):
    import sys
    torch.save(_StandIn().state_dict(), tmp_path / "tv.pt")
    monkeypatch.setitem(sys.modules, "torchvision", _fake_torchvision(crop))
    _StandIn.seen.clear()
    out = tmp_path / "tv.npz"
    code, _, err = cli(capsys, "encode", *GLYPHS_16, "--encoder", str(tmp_path / "tv.pt"),
                       "--arch", f"torchvision:{arch}", "--out", str(out), *given)
    assert code == 0, err
    assert set(_StandIn.seen) == {(size, size)}
    from clbudget.streams.features import read_meta
    meta = read_meta(out)
    assert meta["input_size"] == [size, size] and meta["input_size_source"].startswith(source)
    assert read_features(out).train.x.shape == (8, 4)      # fc replaced: the pooled 4 channels
