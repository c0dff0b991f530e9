"""`glyphs`: a procedural Synbols-style data set (Lacoste et al., NeurIPS 2021), made here.

Why: tests and the demo need a real image-classification stream with no download. Each
class is one character; each image renders it with a random font (from the fonts that ship
with matplotlib), size, rotation, small translation, foreground colour and background
(solid, linear gradient, or smooth noise), at a guaranteed luminance contrast.

The alphabet avoids look-alikes, including mirror pairs because training often uses random
horizontal flips: no l/I/1/|, o/O/0 (0 stays), S/5, Z/2, B/8, b/6, q/9, p/P, ( / ), and
letters whose lower and upper case differ only in size (c/C, k/K, s, u, v, w, x, z),
and √/✓, P/Þ.

Determinism: image i of class c in a split is a function of (seed, split, c, i) only, so a
subset of classes or a per-class cap renders exactly the images the full set would hold.
Rendering uses FreeType through `matplotlib.ft2font` (about 0.1 ms per glyph).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np

from .base import Dataset, Split, cache_key, cached_split

# Bump when rendering changes, so cached glyphs are regenerated.
GLYPHS_VERSION = 1

ALPHABET = (
    "023456789"                            # digits without 1
    + "ACDEFGHJKLMNPQRTUVWXY"              # upper case without B I O S Z
    + "adefhimnrty"                        # lower case that differs from upper case
    + "ΓΔΘΛΞΠΣΦΨΩ" + "βλξσμω"              # Greek without Latin look-alikes
    + "@#%&$+=?!*([{</~§¶©®€£¥¢"           # ASCII and Latin-1 symbols, one of each mirror
    + "∞≈≠±÷√∫∇♠♣♥♦★→↑⇒♪☺☂∀⊕⊗□■▲●♀♂"       # math, dingbats, shapes
    + "ÆŒ¤" + "ЖБЦШЮЫЪ"                    # Latin ligatures, Cyrillic without look-alikes
)

# Regular, bold and italic cuts of four families. The Computer Modern fonts use TeX's OT1
# encoding (e.g. '<' is an inverted '!'), so they render ASCII letters and digits only.
FONT_FILES = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf", "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf", "DejaVuSansMono-BoldOblique.ttf",
    "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf",
    "cmr10.ttf", "cmb10.ttf", "cmss10.ttf", "cmtt10.ttf", "cmti10.ttf",
)


@dataclass(frozen=True)
class GlyphsOptions:
    num_classes: int = 100
    train_per_class: int = 500
    test_per_class: int = 100
    image_size: int = 32  # pixels; images are (3, image_size, image_size) uint8
    seed: int = 0
    # "synbols": random colours, gradients/noise, either polarity (the default, hard);
    # "plain": a dark glyph on a light solid background, milder pose (quick smoke tests/demos).
    style: str = "synbols"

    def __post_init__(self):
        if not 1 <= self.num_classes <= len(ALPHABET):
            raise ValueError(f"glyphs num_classes must be in 1..{len(ALPHABET)}, "
                             f"got {self.num_classes}")
        if self.train_per_class < 1 or self.test_per_class < 1:
            raise ValueError(f"glyphs train_per_class and test_per_class must be >= 1, got "
                             f"{self.train_per_class} and {self.test_per_class}")
        if self.seed < 0:
            raise ValueError(f"glyphs seed must be >= 0, got {self.seed}")
        if self.style not in ("synbols", "plain"):
            raise ValueError(f"glyphs style must be 'synbols' or 'plain', got {self.style!r}")
        if self.image_size < 8:
            raise ValueError(f"glyphs image_size must be >= 8 pixels, got {self.image_size}")


def _fonts_by_char(chars: str) -> list[list]:
    """For each character, the fonts (FT2Font, opened once) that draw it with some ink."""
    import matplotlib
    from matplotlib.ft2font import FT2Font

    folder = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
    fonts = [(name, FT2Font(os.path.join(folder, name))) for name in FONT_FILES
             if os.path.isfile(os.path.join(folder, name))]
    result = []
    for ch in chars:
        usable = []
        for name, font in fonts:
            if name.startswith("cm") and not (ch.isascii() and ch.isalnum()):
                continue
            if font.get_char_index(ord(ch)) and _render(font, ch, 24.0, 0.0).max() > 0:
                usable.append(font)
        if not usable:
            raise RuntimeError(f"no matplotlib font draws {ch!r}; matplotlib's bundled "
                               f"fonts are missing from {folder}")
        result.append(usable)
    return result


def _render(font, ch: str, size_px: float, angle_deg: float) -> np.ndarray:
    """Coverage mask (h, w) uint8 of one character, tightly cropped by FreeType."""
    font.set_size(size_px, 72)  # 72 dpi: points == pixels
    font.set_text(ch, angle_deg)
    font.draw_glyphs_to_bitmap(antialiased=True)
    return np.asarray(font.get_image())


def _draw_params(rng: np.random.Generator, n: int, n_fonts: int,
                 style: str = "synbols") -> dict[str, np.ndarray]:
    """Random factors of n images of one class, drawn together so each is reproducible."""
    def lum(rgb):
        return rgb @ np.array([0.299, 0.587, 0.114])

    # Both background colours sit on one side of the foreground's luminance, at least 0.3
    # away, so no blend of them (gradient, noise) can hide the glyph.
    fg = rng.uniform(0, 1, (n, 3))
    side = np.where(lum(fg) < 0.5, 1.0, -1.0)[:, None]  # +1: background lighter
    bg = rng.uniform(0, 1, (n, 2, 3))
    for _ in range(50):  # redraw colours on the wrong side or too close
        bad = (lum(bg) - lum(fg)[:, None]) * side < 0.3  # (n, 2)
        if not bad.any():
            break
        bg[bad] = rng.uniform(0, 1, (int(bad.sum()), 3))
    bad = (lum(bg) - lum(fg)[:, None]) * side < 0.3  # practically never: white or black
    bg[bad] = np.broadcast_to((side > 0)[..., None], bg.shape)[bad]
    p = dict(
        font=rng.integers(n_fonts, size=n), size=rng.uniform(0.6, 1.0, n),
        angle=rng.uniform(-20, 20, n), shift=rng.uniform(-0.8, 0.8, (n, 2)), fg=fg, bg=bg,
        kind=rng.integers(3, size=n), direction=rng.uniform(0, 2 * np.pi, n),
        noise=rng.uniform(0, 1, (n, 4, 4)))
    if style == "plain":  # same draws, tamed: dark ink on light paper, small pose changes
        p.update(fg=0.25 * fg, bg=0.8 + 0.2 * bg[:, :1].repeat(2, axis=1),
                 kind=np.zeros(n, dtype=p["kind"].dtype), size=0.75 + 0.5 * (p["size"] - 0.6),
                 angle=0.5 * p["angle"], shift=0.4 * p["shift"])
    return p


def _backgrounds(p: dict[str, np.ndarray], size: int) -> np.ndarray:
    """(n, size, size, 3) float32: solid (kind 0), linear gradient (1) or smooth noise (2)."""
    grid = (np.arange(size) + 0.5) / size - 0.5  # pixel centres in [-0.5, 0.5]
    cos, sin = np.cos(p["direction"]), np.sin(p["direction"])
    ramp = np.clip(cos[:, None, None] * grid[None, None, :] + sin[:, None, None]
                   * grid[None, :, None] + 0.5, 0, 1)  # (n, H, W)
    # Bilinear upsampling of a 4x4 grid of random values: (size, 4) @ (4, 4) @ (4, size).
    up = np.maximum(0, 1 - np.abs(np.linspace(0, 3, size)[:, None] - np.arange(4)))
    noise = up @ p["noise"] @ up.T
    mix = np.where(p["kind"][:, None, None] == 1, ramp, 0.0)
    mix = np.where(p["kind"][:, None, None] == 2, noise, mix)[..., None]  # (n, H, W, 1)
    c0, c1 = p["bg"][:, None, None, 0], p["bg"][:, None, None, 1]
    return (c0 + (c1 - c0) * mix).astype(np.float32)


def render_class(options: GlyphsOptions, split: str, label: int, positions: np.ndarray,
                 fonts: list) -> np.ndarray:
    """(len(positions), 3, S, S) uint8: images `positions` of class `label` in `split`."""
    n = options.train_per_class if split == "train" else options.test_per_class
    rng = np.random.default_rng([options.seed, 0 if split == "train" else 1, label])
    p = {k: v[positions] for k, v in _draw_params(rng, n, len(fonts), options.style).items()}
    size = options.image_size
    images = _backgrounds(p, size)  # (n, S, S, 3)
    ch = ALPHABET[label]
    for i in range(len(positions)):
        font = fonts[p["font"][i]]
        em = p["size"][i] * size
        mask = _render(font, ch, em, p["angle"][i])
        if max(mask.shape) > 0.95 * size:  # a wide or rotated glyph: shrink to fit
            em *= 0.9 * size / max(mask.shape)
            mask = _render(font, ch, em, p["angle"][i])
        h, w = min(mask.shape[0], size), min(mask.shape[1], size)
        top = int(round((size - h) / 2 * (1 + p["shift"][i, 0])))
        left = int(round((size - w) / 2 * (1 + p["shift"][i, 1])))
        alpha = mask[:h, :w, None].astype(np.float32) / 255
        region = images[i, top:top + h, left:left + w]
        region += (p["fg"][i].astype(np.float32) - region) * alpha
    return np.rint(images * 255).astype(np.uint8).transpose(0, 3, 1, 2)


def load_glyphs(options: GlyphsOptions, opts, name: str = "glyphs") -> Dataset:
    """Generate (or load from the cache) both splits; `opts` is a `readers.ReadOptions`."""
    import matplotlib

    class_names = tuple(ALPHABET[:options.num_classes])
    fonts: list = []  # opened on first use, only when something must be rendered

    def build(split: str, y: np.ndarray, index: np.ndarray, n: int) -> Split:
        if not fonts:
            fonts.extend(_fonts_by_char(ALPHABET[:options.num_classes]))
        parts = [render_class(options, split, int(c), index[y[index] == c] - c * n, fonts[c])
                 for c in np.unique(y[index])]
        x = (np.concatenate(parts) if parts else
             np.empty((0, 3, options.image_size, options.image_size), np.uint8))
        return Split(x, y[index])

    splits = []
    for split, n in (("train", options.train_per_class), ("test", options.test_per_class)):
        y = np.repeat(np.arange(options.num_classes, dtype=np.int64), n)
        index = opts.take(y, split, options.num_classes)
        key = cache_key(("glyphs", GLYPHS_VERSION, matplotlib.__version__,
                         sorted(asdict(options).items()), split, index))
        splits.append(cached_split(opts.cache_dir, f"{name}-{split}", key,
                                   lambda s=split, y=y, i=index, n=n: build(s, y, i, n)))
    return Dataset(name, *splits, class_names)
