"""Behavioural tests of clbudget.streams: readers, cache, glyphs, protocols.

Every test writes its own small data (or reads a capped subset of the real CIFAR-10) and
caches under tmp_path, so the whole file runs in seconds and never touches ~/.cache.
"""
from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clbudget.streams import (DATASETS, DataError, Dataset, GlyphsOptions, Split, Stream,
                              class_order, load_dataset, load_stream, make_stream,
                              parse_protocol)
from clbudget.streams import glyphs as glyphs_module
from clbudget.streams import readers
from tests.helpers import real_cifar10, real_fashion_mnist

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")
SMALL_GLYPHS = GlyphsOptions(num_classes=10, train_per_class=40, test_per_class=10)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Any load without cache_dir goes to this test's own folder."""
    monkeypatch.setenv("CLBUDGET_CACHE", str(tmp_path / "default-cache"))


def labelled_dataset(num_classes: int = 10, per_class: int = 20, test_per_class: int = 5):
    """Images whose every pixel holds the original label, and index within the split."""
    def split(n):
        y = np.repeat(np.arange(num_classes), n)
        x = np.zeros((len(y), 1, 2, 2), np.uint8)
        x[:, 0, 0, 0] = y
        x[:, 0, 0, 1] = np.arange(len(y)) % 256
        return Split(x, y)
    return Dataset("toy", split(per_class), split(test_per_class),
                   tuple(f"c{i}" for i in range(num_classes)))


def write_tree(root: Path, layout: dict[str, dict[str, int]], size=(8, 8), suffix=".png"):
    """root/<split>/<class>/<i><suffix>, each image a distinct flat colour."""
    for split, classes in layout.items():
        for c, (name, count) in enumerate(classes.items()):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                colour = (c * 20 % 256, i * 7 % 256, len(split) * 30)
                Image.new("RGB", size, colour).save(folder / f"{i:04d}{suffix}")


def count_decodes(monkeypatch) -> list[str]:
    decoded: list[str] = []
    real = readers.decode_image

    def counting(path, shape):
        decoded.append(path)
        return real(path, shape)
    monkeypatch.setattr(readers, "decode_image", counting)
    return decoded


# ---------------------------------------------------------------------------- protocols

def test_class_order_is_pycil_seed_1993():
    order = class_order(100)
    assert order == np.random.RandomState(1993).permutation(100).tolist()
    # The CIFAR-100 order of iCaRL/PODNet/PyCIL; fixed forever, whatever numpy does next.
    assert order[:10] == [68, 56, 78, 8, 23, 84, 90, 65, 74, 76]
    assert class_order(100, class_order_seed=0) != order
    assert sorted(order) == list(range(100))


def test_b0inc2_gives_five_contiguous_disjoint_tasks():
    data = labelled_dataset(10)
    stream = make_stream(data, 0, 2)
    assert isinstance(stream, Stream)
    assert (stream.num_tasks, stream.num_classes) == (5, 10)
    assert stream.increments == (2,) * 5 and stream.task_offsets == (0, 2, 4, 6, 8)
    assert stream.class_order == tuple(class_order(10))
    assert stream.class_names == tuple(f"c{c}" for c in class_order(10))
    for t, task in enumerate(stream.tasks):
        assert task.index == t and task.classes == (2 * t, 2 * t + 1)
        for split, per_class in ((task.train, 20), (task.test, 5)):
            assert sorted(set(split.y.tolist())) == [2 * t, 2 * t + 1]
            assert len(split) == 2 * per_class
            # pixel (0,0,0) holds the original label: remapping must follow the class order
            assert (split.x[:, 0, 0, 0] == np.asarray(stream.class_order)[split.y]).all()
    seen = stream.seen_test(2)
    assert sorted(set(seen.y.tolist())) == list(range(6)) and len(seen) == 30


def test_init_and_num_classes_and_max_per_class():
    data = labelled_dataset(10, per_class=20, test_per_class=8)
    stream = make_stream(data, 4, 2, num_classes=8, max_per_class=5, max_test_per_class=3,
                         sample_seed=7)
    assert stream.increments == (4, 2, 2)
    assert stream.class_order == tuple(class_order(10)[:8])
    for task in stream.tasks:
        assert np.bincount(task.train.y)[list(task.classes)].tolist() == [5] * len(task.classes)
        assert np.bincount(task.test.y)[list(task.classes)].tolist() == [3] * len(task.classes)
    again = make_stream(data, 4, 2, num_classes=8, max_per_class=5, sample_seed=7)
    other = make_stream(data, 4, 2, num_classes=8, max_per_class=5, sample_seed=8)
    assert np.array_equal(again.tasks[0].train.x, stream.tasks[0].train.x)
    assert not np.array_equal(other.tasks[0].train.x, stream.tasks[0].train.x)


def test_parse_protocol():
    assert parse_protocol("B0Inc10") == (0, 10)
    assert parse_protocol("b50inc5") == (50, 5)
    with pytest.raises(ValueError, match=r"B<init>Inc<inc>, e\.g\. B0Inc10"):
        parse_protocol("Inc10")


@pytest.mark.parametrize("init, inc, kwargs, message", [
    (0, 3, {}, r"B0Inc3 does not divide 10 classes: 0 \+ k\*3 != 10; "
               r"valid inc for init 0: 1, 2, 5, 10; or num_classes=9"),
    (4, 4, {}, r"valid inc for init 4: 1, 2, 3, 6"),
    (12, 2, {}, r"init 12 is more than the 10 classes"),
    (0, 0, {}, r"inc must be >= 1"),
    (0, 2, {"num_classes": 11}, r"num_classes=11 but toy has 10 classes; choose 1\.\.10"),
])
def test_invalid_protocols_say_what_is_valid(init, inc, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_stream(labelled_dataset(10), init, inc, **kwargs)


# ---------------------------------------------------------------------------- ImageFolder

def test_real_cifar10_subset(tmp_path, monkeypatch):
    REAL_CIFAR10 = real_cifar10()
    decoded = count_decodes(monkeypatch)
    data = load_dataset("cifar10", REAL_CIFAR10, cache_dir=tmp_path, max_per_class=20,
                        max_test_per_class=10)
    assert data.class_names == CIFAR10_CLASSES
    assert data.train.x.shape == (200, 3, 32, 32) and data.train.x.dtype == np.uint8
    assert data.test.x.shape == (100, 3, 32, 32)
    assert np.bincount(data.train.y).tolist() == [20] * 10
    assert len(decoded) == 300  # the cap is applied before decoding
    assert data.train.x.std() > 20  # real photographs, not blank arrays
    stream = load_stream("imagefolder", REAL_CIFAR10, 2, 2, num_classes=4, max_per_class=5,
                         max_test_per_class=5, cache_dir=tmp_path)
    assert stream.image_shape == (3, 32, 32) and stream.increments == (2, 2)
    assert set(stream.class_names) <= set(CIFAR10_CLASSES)


def test_imagefolder_labels_sorted_and_shape_from_first_image(tmp_path):
    root = tmp_path / "tree"
    write_tree(root, {"train": {"zebra": 3, "ant": 2}, "val": {"zebra": 1, "ant": 1}},
               size=(12, 10))  # PIL size is (W, H)
    Image.new("RGB", (30, 30), "red").save(root / "train" / "zebra" / "9999.png")
    data = load_dataset("imagefolder", root, cache_dir=tmp_path / "cache")
    assert data.class_names == ("ant", "zebra")
    assert data.image_shape == (3, 10, 12)  # every image fitted to the first one
    assert np.bincount(data.train.y).tolist() == [2, 4]
    assert (data.train.x[-1, 0] == 255).all() and (data.train.x[-1, 1:] == 0).all()


def test_missing_folder_names_expected_layout(tmp_path):
    with pytest.raises(DataError, match=r"no train/ folder under .*expected ImageFolder "
                                        r"layout train/<class>/\*\.jpg and test/<class>"):
        load_dataset("imagefolder", tmp_path, cache_dir=tmp_path)
    with pytest.raises(DataError, match=r"cifar-10-batches-py.*or ImageFolder"):
        load_dataset("cifar10", tmp_path, cache_dir=tmp_path)
    with pytest.raises(DataError, match=r"is not a folder"):
        load_dataset("cifar10", tmp_path / "nowhere", cache_dir=tmp_path)
    with pytest.raises(DataError, match=r"needs a data root"):
        load_dataset("mnist", None, cache_dir=tmp_path)


def test_train_test_class_mismatch_names_the_classes(tmp_path):
    write_tree(tmp_path, {"train": {"a": 1, "b": 1}, "test": {"a": 1, "c": 1}})
    with pytest.raises(DataError, match=r"only in train: \['b'\]; only in test: \['c'\]"):
        load_dataset("imagefolder", tmp_path, cache_dir=tmp_path / "cache")


def test_truncated_jpeg_names_the_file(tmp_path):
    write_tree(tmp_path, {"train": {"a": 3}, "test": {"a": 1}}, size=(32, 32), suffix=".jpg")
    bad = tmp_path / "train" / "a" / "0001.jpg"
    bad.write_bytes(bad.read_bytes()[:150])
    with pytest.raises(DataError, match=rf"cannot decode image {bad}"):
        load_dataset("imagefolder", tmp_path, cache_dir=tmp_path / "cache")


def test_load_stream_decodes_only_needed_files_and_matches_full_load(tmp_path, monkeypatch):
    write_tree(tmp_path / "t", {"train": {f"k{i}": 6 for i in range(6)},
                                "test": {f"k{i}": 4 for i in range(6)}})
    args = dict(num_classes=4, max_per_class=3, max_test_per_class=2, sample_seed=5)
    full = make_stream(load_dataset("imagefolder", tmp_path / "t", cache_dir=tmp_path / "c1"),
                       2, 2, **args)
    decoded = count_decodes(monkeypatch)
    lean = load_stream("imagefolder", tmp_path / "t", 2, 2, cache_dir=tmp_path / "c2", **args)
    assert len(decoded) == 4 * 3 + 4 * 2
    assert lean.class_order == full.class_order and lean.class_names == full.class_names
    for a, b in zip(lean.tasks, full.tasks):
        for s, t in ((a.train, b.train), (a.test, b.test)):
            assert np.array_equal(s.x, t.x) and np.array_equal(s.y, t.y)


def test_cache_hit_and_invalidation(tmp_path, monkeypatch):
    write_tree(tmp_path / "t", {"train": {"a": 2, "b": 2}, "test": {"a": 1, "b": 1}})
    decoded = count_decodes(monkeypatch)
    first = load_dataset("imagefolder", tmp_path / "t", cache_dir=tmp_path / "c")
    assert len(decoded) == 6 and len(list((tmp_path / "c").glob("*.npz"))) == 2
    second = load_dataset("imagefolder", tmp_path / "t", cache_dir=tmp_path / "c")
    assert len(decoded) == 6  # nothing decoded: both splits came from the cache
    assert np.array_equal(first.train.x, second.train.x)
    changed = tmp_path / "t" / "train" / "b" / "0000.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(changed)
    os.utime(changed, ns=(1, 1))  # a new mtime even on coarse-clock file systems
    third = load_dataset("imagefolder", tmp_path / "t", cache_dir=tmp_path / "c")
    assert len(decoded) == 6 + 4  # train re-read, test still cached
    assert tuple(third.train.x[2, :, 0, 0]) == (1, 2, 3)


# ---------------------------------------------------------------------------- other readers

def write_idx(path: Path, array: np.ndarray, compress: bool):
    header = struct.pack(f">I{array.ndim}I", 0x0800 + array.ndim, *array.shape)
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(header + array.tobytes())


def test_idx_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"train": (rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
                        np.arange(30, dtype=np.uint8) % 10),
              "t10k": (rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
                       np.arange(10, dtype=np.uint8))}
    raw = tmp_path / "raw"
    raw.mkdir()
    for prefix, (x, y) in arrays.items():
        compress = prefix == "train"  # one split gzipped, one raw
        suffix = ".gz" if compress else ""
        write_idx(raw / f"{prefix}-images-idx3-ubyte{suffix}", x, compress)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte{suffix}", y, compress)
    data = load_dataset("fashion-mnist", tmp_path, cache_dir=tmp_path, max_test_per_class=1)
    assert data.train.x.shape == (30, 1, 28, 28) and data.train.x.dtype == np.uint8
    assert np.array_equal(data.train.x[:, 0], arrays["train"][0])
    assert np.array_equal(data.train.y, arrays["train"][1])
    assert np.array_equal(data.test.x[:, 0], arrays["t10k"][0])  # one image per class anyway
    assert data.class_names[0] == "T-shirt/top" and data.num_classes == 10
    write_idx(raw / "t10k-labels-idx1-ubyte", arrays["t10k"][0], compress=False)
    with pytest.raises(DataError, match=r"IDX magic 2051, expected 2049"):
        load_dataset("mnist", tmp_path, cache_dir=tmp_path)


def test_real_fashion_mnist_at_its_default_root(tmp_path):
    """Debian's dataset-fashion-mnist, which ./setup.sh installs (a failure, never a skip)."""
    root = real_fashion_mnist()
    data = load_dataset("fashion-mnist", root, cache_dir=tmp_path, max_per_class=5)
    assert data.train.x.shape == (50, 1, 28, 28) and len(data.test) == 10000


def test_cifar_pickle_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x = rng.integers(0, 256, (20, 3072), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, 10, 20)]
        batches[name] = (x, y)
        with open(folder / name, "wb") as f:  # Python 2 style: bytes keys
            pickle.dump({b"data": x, b"labels": y, b"batch_label": name.encode()}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in CIFAR10_CLASSES]}, f)
    for root in (tmp_path, folder):  # the parent or the batches folder itself
        data = load_dataset("cifar10", root, cache_dir=tmp_path)
        assert data.class_names == CIFAR10_CLASSES
        assert data.train.x.shape == (100, 3, 32, 32)
        expected = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)])
        assert np.array_equal(data.train.x.reshape(100, -1), expected)
        assert data.test.y.tolist() == batches["test_batch"][1]


def test_cifar100_pickle_uses_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name, n in (("train", 200), ("test", 100)):
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": np.full((n, 3072), 7, np.uint8),
                         b"fine_labels": [i % 100 for i in range(n)],
                         b"coarse_labels": [i % 20 for i in range(n)]}, f)
    with open(folder / "meta", "wb") as f:
        pickle.dump({b"fine_label_names": [f"f{i}".encode() for i in range(100)]}, f)
    stream = load_stream("cifar100", tmp_path, 50, 10, cache_dir=tmp_path, max_per_class=1)
    assert stream.increments == (50, 10, 10, 10, 10, 10)
    assert stream.class_order[:3] == (68, 56, 78) and stream.class_names[0] == "f68"
    assert len(stream.tasks[0].train) == 50 and len(stream.tasks[0].test) == 50


def test_tinyimagenet_layout(tmp_path):
    wnids = [f"n{i:08d}" for i in range(200)]
    (tmp_path / "wnids.txt").write_text("\n".join(reversed(wnids)))
    (tmp_path / "val" / "images").mkdir(parents=True)
    lines = []
    for i, w in enumerate(wnids):
        (tmp_path / "train" / w / "images").mkdir(parents=True)
        Image.new("RGB", (64, 64), (i, 0, 0)).save(tmp_path / "train" / w / "images" / "a.JPEG",
                                                   quality=100)
        if i < 2:
            Image.new("RGB", (64, 64), (0, 200, 0)).save(tmp_path / "val" / "images" / f"v{i}.png")
            lines.append(f"v{i}.png\t{w}\t0\t0\t64\t64")
    (tmp_path / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    data = load_dataset("tinyimagenet", tmp_path, cache_dir=tmp_path / "cache")
    assert data.class_names == tuple(wnids) and data.image_shape == (3, 64, 64)
    assert len(data.train) == 200 and data.test.y.tolist() == [0, 1]
    (tmp_path / "val" / "val_annotations.txt").write_text("v0.png\tn99999999\n")
    with pytest.raises(DataError, match=r"val_annotations.txt:1: expected"):
        load_dataset("tinyimagenet", tmp_path, cache_dir=tmp_path / "cache")


# ---------------------------------------------------------------------------- glyphs

def test_glyphs_deterministic_distinct_and_shaped(tmp_path):
    a = load_dataset("glyphs", glyphs_options=SMALL_GLYPHS, cache_dir=tmp_path / "a")
    b = load_dataset("glyphs", glyphs_options=SMALL_GLYPHS, cache_dir=tmp_path / "b")
    assert a.train.x.shape == (400, 3, 32, 32) and a.test.x.shape == (100, 3, 32, 32)
    assert a.train.x.dtype == np.uint8 and np.bincount(a.train.y).tolist() == [40] * 10
    assert np.array_equal(a.train.x, b.train.x) and np.array_equal(a.test.x, b.test.x)
    other = load_dataset("glyphs", cache_dir=tmp_path / "c", glyphs_options=GlyphsOptions(
        num_classes=10, train_per_class=40, test_per_class=10, seed=1))
    assert not np.array_equal(a.train.x, other.train.x)
    assert len(set(a.class_names)) == 10 and len(set(glyphs_module.ALPHABET)) >= 100
    assert len({img.tobytes() for img in a.train.x}) == 400  # no repeated images
    # Glyphs are drawn on contrasting backgrounds: every image has real contrast.
    assert (np.ptp(a.train.x.reshape(400, -1), axis=1) > 60).all()


def test_glyph_subset_renders_the_same_images(tmp_path):
    full = load_dataset("glyphs", glyphs_options=SMALL_GLYPHS, cache_dir=tmp_path / "a")
    stream = load_stream("glyphs", None, 0, 2, num_classes=4, max_per_class=7,
                         glyphs_options=SMALL_GLYPHS, cache_dir=tmp_path / "b")
    reference = make_stream(full, 0, 2, num_classes=4, max_per_class=7)
    assert np.array_equal(stream.tasks[1].train.x, reference.tasks[1].train.x)
    assert len(stream.tasks[1].train) == 14


def test_glyphs_second_load_hits_cache(tmp_path, monkeypatch):
    load_dataset("glyphs", glyphs_options=SMALL_GLYPHS, cache_dir=tmp_path)

    def no_render(*args, **kwargs):
        raise AssertionError("rendered again despite a cached copy")
    monkeypatch.setattr(glyphs_module, "render_class", no_render)
    again = load_dataset("glyphs", glyphs_options=SMALL_GLYPHS, cache_dir=tmp_path)
    assert again.train.x.shape == (400, 3, 32, 32)
    with pytest.raises(AssertionError, match="rendered again"):
        load_dataset("glyphs", cache_dir=tmp_path, glyphs_options=GlyphsOptions(
            num_classes=10, train_per_class=40, test_per_class=10, seed=3))


def test_glyph_options_and_catalog_errors():
    most = len(glyphs_module.ALPHABET)
    with pytest.raises(ValueError, match=rf"num_classes must be in 1\.\.{most}, got 1000"):
        GlyphsOptions(num_classes=1000)
    with pytest.raises(ValueError, match=r"seed must be >= 0"):
        GlyphsOptions(seed=-1)
    with pytest.raises(ValueError, match=r"unknown dataset 'cifar11'.*nearest: cifar10"):
        load_dataset("cifar11", "/tmp")
    assert set(DATASETS) >= {"cifar10", "cifar100", "glyphs", "mnist", "imagefolder"}


def test_split_rejects_float_images():
    with pytest.raises(ValueError, match=r"uint8"):
        Split(np.zeros((2, 3, 4, 4), np.float32), np.zeros(2, np.int64))
