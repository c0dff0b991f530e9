"""CLR's offline glyph stand-in never pre-trains on a glyph class the stream tests.

The stream's glyph class ids are computed here, not by the code under test
(`streams.multidomain.source_classes`): from the characters the stream's class names spell
(`ALPHABET.index`), checked against numpy's `RandomState(seed).permutation(K)` (PyCIL's class
order rule, written out) and against the pixels (each glyph class's test images are the
renderings of that character id, `glyphs.render_class`).  The stand-in's classes by hand: the
first 20 ids of 0..118 that the stream does not hold.  Every stream form: plain glyphs, cut by
`--num-classes`, a `glyphs/K` component of a multi-domain stream, several class orders (fixed
seeds, per-seed, unshuffled), other glyphs options; a domain-incremental stream refuses CLR.
Mutants: bench/mutant_catalog/clr.py `clr.*stand_in*`, `clr.pretraining_not_disjoint`.
"""
import numpy as np
import pytest
from PIL import Image

from clbudget.experiment.run import load, prepare
from clbudget.methods.pretrained import disjoint_glyph_classes, provenance_label
from clbudget.streams import GlyphsOptions
from clbudget.streams.glyphs import ALPHABET
from tests.helpers import tiny_spec


SMALL = (("train_per_class", 2), ("test_per_class", 2), ("image_size", 16), ("seed", 0))


def cifar_tree(root):
    """A 10-class ImageFolder tree in CIFAR-10's layout: 2 train, 1 test solid 32x32 PNGs."""
    for split, n in (("train", 2), ("test", 1)):
        for k in range(10):
            (root / split / f"class{k}").mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((32, 32, 3), 20 * k + i, np.uint8)).save(
                    root / split / f"class{k}" / f"{i}.png")
    return root


def glyph_ids_by_name(stream) -> list[int]:
    """The glyph class ids the stream's tasks hold, from the characters of their class names
    ("glyphs/<char>" in a multi-domain stream, "<char>" in a glyphs stream)."""
    names = [stream.class_names[c] for task in stream.tasks for c in task.classes]
    multi = stream.dataset_name != "glyphs"
    chars = [n[len("glyphs/"):] if multi else n for n in names
             if not multi or n.startswith("glyphs/")]
    return sorted({ALPHABET.index(ch) for ch in chars})


def glyph_test_images_are_those_ids(stream, options: GlyphsOptions, ids):
    """Each glyph class's test images are the test renderings of the character id its name
    spells: the pixels agree with the names."""
    from clbudget.streams.glyphs import _fonts_by_char, render_class
    prefix = "" if stream.dataset_name == "glyphs" else "glyphs/"
    for label, name in enumerate(stream.class_names):
        if not name.startswith(prefix):
            continue
        gid = ALPHABET.index(name[len(prefix):])      # "/" is a glyph too: "glyphs//"
        assert gid in ids
        x = np.concatenate([t.test.x[t.test.y == label] for t in stream.tasks])
        want = render_class(options, "test", gid, np.arange(options.test_per_class),
                            _fonts_by_char(ALPHABET[gid])[0])
        if x.shape[-1] != want.shape[-1]:      # a multi-domain stream pads 16 px to 32
            pad = (x.shape[-1] - want.shape[-1]) // 2
            x = x[..., pad:pad + want.shape[-2], pad:pad + want.shape[-1]]
        assert {im.tobytes() for im in x} == {im.tobytes() for im in want}, (name, gid)


def stand_in_by_hand(held, n=20) -> list[int]:
    return [c for c in range(len(ALPHABET)) if c not in set(held)][:n]


def pretrain(spec, monkeypatch):
    """CLR's offline pre-training on `spec`'s stream; (its provenance, the glyph ids rendered)."""
    import clbudget.streams.glyphs as glyphs
    rendered = []
    render = glyphs.render_class

    def spy(options, split, label, positions, fonts):
        rendered.append(label)
        return render(options, split, label, positions, fonts)
    stream = load(spec)
    _, ctx, method = prepare(spec, stream)
    monkeypatch.setattr(glyphs, "render_class", spy)
    method.pretrain_offline()
    monkeypatch.undo()
    return stream, method.pretrain, rendered


def permutation(seed, k, n):
    return np.random.RandomState(seed).permutation(n)[:k].tolist() if seed is not None \
        else list(range(k))


CUT = [  # (class_order protocol, class_order_seed, run seed) -> the seed the order shuffles with
    ("fixed", 1993, 0, 1993), ("fixed", 0, 0, 0), ("fixed", 7, 0, 7),
    ("per-seed", 1993, 3, 3), ("unshuffled", 1993, 0, None)]


@pytest.mark.parametrize("protocol,order_seed,seed,shuffle", CUT)
def test_stand_in_skips_a_cut_glyph_streams_classes(protocol, order_seed, seed, shuffle,
                                                     monkeypatch, tmp_path):
    """`--dataset glyphs --num-classes 6` holds the first 6 of the shuffled 100 ids."""
    spec = tiny_spec("clr", num_classes=6, glyphs_options=SMALL, class_order=protocol,
                     class_order_seed=order_seed, seed=seed, cache_dir=str(tmp_path),
                     method_options=(("pretrain_per_class", 1),))
    stream, pre, rendered = pretrain(spec, monkeypatch)
    held = glyph_ids_by_name(stream)
    assert held == sorted(permutation(shuffle, 6, 100))
    glyph_test_images_are_those_ids(stream, GlyphsOptions(**dict(SMALL)), held)
    assert pre["glyph_classes"] == stand_in_by_hand(held) and not set(held) & set(rendered)
    assert sorted(set(rendered)) == pre["glyph_classes"] and len(rendered) == 20
    assert pre["stream_glyph_classes"] == held
    if shuffle == 1993:     # 68, 56, 78, 8, 23, 84: the old rule's 6..25 held 8 and 23
        assert held == [8, 23, 56, 68, 78, 84]
        assert pre["glyph_classes"] == list(range(8)) + list(range(9, 21))


@pytest.mark.parametrize("order_seed", [1993, 0, 11])
def test_stand_in_skips_the_glyphs_of_a_multi_domain_stream(order_seed, monkeypatch,
                                                             tmp_path):
    """`cifar10/2:1+glyphs/4:2`: the glyph component holds 4 shuffled ids (at 1993: 68, 56,
    78, 8, the multi-domain table's stream's (docs/streams.md)), not 0-3; the CIFAR classes are not glyphs."""
    root = cifar_tree(tmp_path / "c10")
    spec = tiny_spec("clr", dataset="cifar10/2:1+glyphs/4:2", data_root=f"cifar10={root}",
                     num_classes=None, glyphs_options=SMALL, class_order_seed=order_seed,
                     cache_dir=str(tmp_path / "c"), method_options=(("pretrain_per_class", 1),))
    stream, pre, rendered = pretrain(spec, monkeypatch)
    held = glyph_ids_by_name(stream)
    assert held == sorted(permutation(order_seed, 4, 100))
    assert list(stream.class_order[2:]) == permutation(order_seed, 4, 100)
    glyph_test_images_are_those_ids(stream, GlyphsOptions(**dict(SMALL)), held)
    if order_seed == 1993:
        assert permutation(1993, 4, 100) == [68, 56, 78, 8]
    assert pre["glyph_classes"] == stand_in_by_hand(held) and not set(held) & set(rendered)
    assert sorted(set(rendered)) == pre["glyph_classes"]


@pytest.mark.parametrize("options,order_seed", [
    ((("num_classes", 8),) + SMALL, 1993),                                   # all 8: ids 0-7
    ((("num_classes", 100),) + SMALL, 5),                                     # all 100
    ((("num_classes", 10), ("style", "plain")) + SMALL[:3] + (("seed", 4),), 2),  # own options
])
def test_stand_in_skips_a_plain_glyph_streams_classes(options, order_seed, monkeypatch,
                                                      tmp_path):
    """A glyphs stream of all its options' classes (no cut) holds ids 0..N-1, whatever the
    order, seed or style; with 100, 19 ids remain (100-118) and the label says 19 of 20."""
    n = dict(options)["num_classes"]
    spec = tiny_spec("clr", num_classes=None, init=0, inc=n // 2, glyphs_options=options,
                     class_order_seed=order_seed, cache_dir=str(tmp_path),
                     method_options=(("pretrain_per_class", 1),))
    stream, pre, rendered = pretrain(spec, monkeypatch)
    held = glyph_ids_by_name(stream)
    assert held == list(range(n))
    assert pre["glyph_classes"] == stand_in_by_hand(held) and not set(held) & set(rendered)
    assert pre["glyph_classes"] == list(range(n, min(n + 20, 119)))
    label = provenance_label(pre, "conv2")
    assert label == ("glyphs stand-in (19 of 20 classes: the alphabet ran out)" if n == 100
                     else "glyphs stand-in (20 classes)")


def test_clr_is_refused_on_a_domain_incremental_glyph_stream(tmp_path):
    """Every task of `glyphs/3@identity,invert` tests the same 3 classes: CLR does not run
    there (streams/multidomain.py DOMAIN_REFUSALS), so no stand-in is made for it."""
    spec = tiny_spec("clr", dataset="glyphs/3@identity,invert", num_classes=None,
                     glyphs_options=SMALL, max_per_class=2, cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match="clr does not run on the domain-incremental"):
        prepare(spec)


def test_too_few_disjoint_classes_say_what_to_do():
    """118 of the 119 ids held: 1 remains, no classification to pre-train; the error names
    the ways out.  From index 118 with 100 held: pretrain_first_class=0 leaves 19."""
    assert len(ALPHABET) == 119
    with pytest.raises(ValueError) as e:
        disjoint_glyph_classes(range(118), 20)
    for words in ("at least 2 glyph classes", "holds 118", "1 remain [118]", "--num-classes N",
                  "glyphs/K", "num_classes", "backbone_weights=FILE"):
        assert words in str(e.value)
    with pytest.raises(ValueError, match=r"pretrain_first_class=0 \(leaves 19\)"):
        disjoint_glyph_classes(range(100), 20, first=118)
    assert disjoint_glyph_classes(range(100), 20, first=110) == list(range(110, 119))
    assert disjoint_glyph_classes((), 20) == list(range(20))            # no glyphs held
    assert disjoint_glyph_classes([8, 56, 68, 78], 20, first=5) == [5, 6, 7] + list(
        range(9, 26))
    with pytest.raises(ValueError, match="pretrain_first_class must be >= 0.*nearest: 0"):
        prepare(tiny_spec("clr", method_options=(("pretrain_first_class", -1),)))


def test_a_stream_without_glyphs_lends_the_stand_in_ids_0_to_19(tmp_path, monkeypatch):
    """A CIFAR-10 tree: no glyph id held, the stand-in's 20 are 0-19."""
    root = cifar_tree(tmp_path / "c10")
    spec = tiny_spec("clr", dataset="cifar10", data_root=str(root), num_classes=4, init=2,
                     inc=2, glyphs_options=(), cache_dir=str(tmp_path / "c"),
                     method_options=(("pretrain_per_class", 1),))
    stream, pre, rendered = pretrain(spec, monkeypatch)
    assert pre["glyph_classes"] == list(range(20)) == sorted(set(rendered))
    assert pre["stream_glyph_classes"] == []
