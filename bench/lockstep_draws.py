"""The same random draws on both sides of the lockstep bench: mini-batches with augmentation.

clbudget draws, per training phase (`Trainer.fit`), one batch order an epoch (`torch.randperm`
from the run's generator) and, per mini-batch, every image's crop offsets, flip and brightness
factor (`Pipeline.draw`).  `recording()` keeps those draws as the run makes them (a `FitRecord`
per `fit` call), and PyCIL's training loader is then replaced by one that replays them
(`replay_loader`): a batch sampler holding clbudget's batches, mapped to the positions of
PyCIL's training set (`pair_positions`: the same image and label; where the two memories hold
different images, the k-th remaining one of a class on each side), and a data set that applies
each image's recorded draw with PIL (`augment_pil`: the calls torchvision's RandomCrop(32,
padding=4), RandomHorizontalFlip and ColorJitter(brightness) make on a PIL image once their
random numbers are drawn), then PyCIL's own ToTensor and Normalize.  Every replayed batch is
compared with clbudget's, bit for bit (a hash of the normalised float inputs), and the first
batch's augmented uint8 images pixel for pixel: at task 0, where both sides train on the same
arrays, a difference stops the bench.

`recording(reverse=True)` is the rounding yardstick's second run (`--control`): every
mini-batch in reverse order, each image with the draw it had, so only the order of the sums
within a batch differs (one batch an epoch: the whole epoch reversed, as before).
"""
from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass, field

import numpy as np


# --------------------------------------------------------------------------- clbudget's draws

@dataclass
class FitRecord:
    """One `Trainer.fit` call: the training set (per image the sha1 of its (H, W, C) bytes,
    and its label), the batch size, per epoch and batch the positions in the training set,
    the augmentation draws (None: augmentation off) and the sha1 of the normalised float
    inputs; the first batch's augmented uint8 images (B, C, H, W)."""
    hashes: list
    labels: np.ndarray
    batch_size: int
    augment: bool
    pad: int = 4                # the pipeline's crop padding and brightness b
    brightness: float = 0.0
    batches: list = field(default_factory=list)        # [epoch][batch] -> (B,) int64
    draws: list = field(default_factory=list)          # [epoch][batch] -> AugmentDraws | None
    input_hashes: list = field(default_factory=list)   # [epoch][batch] -> str
    first_batch: np.ndarray | None = None
    differing: int = 0          # images not in the followed run's training set (`follow`)


def image_hashes(images_nhwc) -> list[str]:
    return [hashlib.sha1(np.ascontiguousarray(x)).hexdigest() for x in np.asarray(images_nhwc)]


def tensor_hash(t) -> str:
    return hashlib.sha1(np.ascontiguousarray(t.detach().cpu().numpy())).hexdigest()


def reverse_each_batch(perm, batch_size: int):
    """`perm` with every run of `batch_size` positions (the last one shorter) reversed: the
    same batches, each in reverse order."""
    import torch
    return torch.cat([chunk.flip(0) for chunk in perm.split(batch_size)]) if len(perm) else perm


@contextlib.contextmanager
def recording(reverse: bool = False, follow: list | None = None):
    """While open, every `Trainer.fit` call appends a FitRecord to the list this yields.
    With `reverse`, every mini-batch is trained in reverse order with the draws its images
    had (`reverse_each_batch`, `AugmentDraws.reversed`): the same generator calls, the same
    batches, only the order within each batch differs.  With `follow` (an earlier run's
    records, one a `fit`), each epoch's batches are that run's, mapped onto this training set
    by image content (`pair_positions`: after task 0 the memory may hold its images in
    another herding order, so the same positions would be other images); the generator is
    still called as before, and its draws must equal the earlier run's (else an error: the
    two runs' generators are out of step).  `FitRecord.differing` counts the images the two
    training sets do not share."""
    import torch
    from clbudget.train import loop
    records: list[FitRecord] = []
    state = {"record": None, "epoch": None, "positions": None}
    real_randperm, real_fit = torch.randperm, loop.Trainer.fit
    real_draw, real_call, real_apply = loop.Pipeline.draw, loop.Pipeline.__call__, loop.Pipeline.apply

    def fit(self, params, x, y, step, cfg, *a, **kw):
        if cfg.validation or cfg.mixup or cfg.sampler != "shuffle":
            raise RuntimeError("the lockstep records plain shuffled epochs only "
                               f"(validation {cfg.validation}, mixup {cfg.mixup}, "
                               f"sampler {cfg.sampler!r})")
        rec = FitRecord(image_hashes(x.permute(0, 2, 3, 1).cpu().numpy()),
                        y.cpu().numpy().copy(), cfg.batch_size, cfg.augment,
                        self.pipeline.pad, self.pipeline.brightness)
        records.append(rec)
        state["record"] = rec
        if follow is not None:
            if len(follow) < len(records):
                raise RuntimeError(f"{len(records)} training phases; the followed run had "
                                   f"{len(follow)}")
            before = follow[len(records) - 1]
            state["positions"], rec.differing = pair_positions(
                before.hashes, before.labels, rec.hashes, rec.labels)
        try:
            out = real_fit(self, params, x, y, step, cfg, *a, **kw)
        finally:
            state["record"] = None
        if len(rec.batches) != cfg.epochs or any(
                len(d) != len(b) or len(h) != len(b)
                for b, d, h in zip(rec.batches, rec.draws, rec.input_hashes)):
            raise RuntimeError(f"recorded {len(rec.batches)} epochs for {cfg.epochs}, or "
                               f"a batch without its draws and inputs")
        return out

    def randperm(n, *a, **kw):
        perm = real_randperm(n, *a, **kw)
        rec = state["record"]
        if rec is None:
            return perm
        if follow is not None:        # the followed run's batches, on this set's positions
            before = follow[len(records) - 1].batches[len(rec.batches)]
            perm = torch.as_tensor(state["positions"][torch.cat(before).numpy()])
        if reverse:
            perm = reverse_each_batch(perm, rec.batch_size)
        rec.batches.append(list(perm.cpu().split(rec.batch_size)))
        rec.draws.append([])
        rec.input_hashes.append([])
        return perm

    def draw(self, n, generator):
        draws = real_draw(self, n, generator)
        rec = state["record"]
        if follow is not None and rec is not None:
            before = follow[len(records) - 1].draws[len(rec.batches) - 1][len(rec.draws[-1])]
            if not all(torch.equal(getattr(draws, k), getattr(before, k))
                       for k in ("dy", "dx", "flip")) or \
                    (draws.factors is None) != (before.factors is None) or \
                    (draws.factors is not None and not torch.equal(draws.factors, before.factors)):
                raise RuntimeError("the followed run drew other augmentation here: the two "
                                   "runs' generators are out of step")
        return draws.reversed() if reverse and rec is not None else draws

    def apply(self, x, draws):
        out = real_apply(self, x, draws)
        rec = state["record"]
        if rec is not None:
            rec.draws[-1].append(draws)
            if rec.first_batch is None:
                rec.first_batch = out.cpu().numpy().copy()
        return out

    def call(self, x, augment=False, generator=None):
        out = real_call(self, x, augment, generator)
        rec = state["record"]
        if rec is not None:
            if not augment:
                rec.draws[-1].append(None)
                if rec.first_batch is None:
                    rec.first_batch = x.cpu().numpy().copy()
            rec.input_hashes[-1].append(tensor_hash(out))
        return out

    torch.randperm = randperm
    loop.Trainer.fit, loop.Pipeline.draw = fit, draw
    loop.Pipeline.__call__, loop.Pipeline.apply = call, apply
    try:
        yield records
    finally:
        torch.randperm = real_randperm
        loop.Trainer.fit, loop.Pipeline.draw = real_fit, real_draw
        loop.Pipeline.__call__, loop.Pipeline.apply = real_call, real_apply


# --------------------------------------------------------------------------- the PyCIL side

def pair_positions(c_hashes, c_labels, p_hashes, p_labels) -> tuple[np.ndarray, int]:
    """For every position of clbudget's training set, a position of PyCIL's: per label, first
    the same images (in order, so duplicates pair in turn), then the remaining ones of each side
    in order (the two memories hold different images there).  Returns (positions (N,) int64,
    how many pairs hold different images).  The two sets must hold as many images of each
    label."""
    c_labels, p_labels = np.asarray(c_labels), np.asarray(p_labels)
    c_count = dict(zip(*np.unique(c_labels, return_counts=True)))
    p_count = dict(zip(*np.unique(p_labels, return_counts=True)))
    if c_count != p_count:
        raise RuntimeError(f"the two training sets hold different numbers of images per class: "
                           f"clbudget {c_count}, PyCIL {p_count}")
    out = np.full(len(c_labels), -1, dtype=np.int64)
    differing = 0
    for label in c_count:
        free: dict[str, list[int]] = {}
        for j in np.flatnonzero(p_labels == label):
            free.setdefault(p_hashes[j], []).append(int(j))
        unmatched = []
        for i in np.flatnonzero(c_labels == label):
            if free.get(c_hashes[i]):
                out[i] = free[c_hashes[i]].pop(0)
            else:
                unmatched.append(int(i))
        rest = sorted(j for js in free.values() for j in js)
        for i, j in zip(unmatched, rest):
            out[i] = j
        differing += len(unmatched)
    return out, differing


def augment_pil(image, dy: int, dx: int, flip: bool, factor: float | None, pad: int):
    """A PIL image as torchvision's PyCIL transforms make it once their draws are made:
    RandomCrop(size, padding=pad) = F.pad (ImageOps.expand with black) then F.crop at row dy,
    column dx; RandomHorizontalFlip = F.hflip (transpose); ColorJitter(brightness) =
    F.adjust_brightness (ImageEnhance.Brightness: Image.blend with black, factor as a C float)."""
    from PIL import Image, ImageEnhance, ImageOps
    w, h = image.size
    out = ImageOps.expand(image, border=pad, fill=0).crop((dx, dy, dx + w, dy + h))
    if flip:
        out = out.transpose(Image.FLIP_LEFT_RIGHT)
    if factor is not None:
        out = ImageEnhance.Brightness(out).enhance(factor)
    return out


def draw_of(draws, k: int) -> tuple[int, int, bool, float | None]:
    """Image k's draw in a batch's AugmentDraws: the brightness factor as the float32 clbudget
    multiplies by (PIL takes it as a C float: the same value)."""
    factor = None if draws.factors is None else float(draws.factors[k].float())
    return int(draws.dy[k]), int(draws.dx[k]), bool(draws.flip[k]), factor


class ReplayDataset:
    """PyCIL's training images (N, H, W, C) uint8 and labels, indexed by (position, epoch,
    batch, k): the image at `position` with draw k of that batch (`augment_pil`), then `post`
    (PyCIL's ToTensor and Normalize); returns (position, input, label) as PyCIL's DummyDataset.
    The augmented uint8 images of epoch 0's first batch are kept in `first_batch`."""

    def __init__(self, images, labels, draws, post, pad: int):
        self.images, self.labels, self.draws = images, labels, draws
        self.post, self.pad = post, pad
        self.first_batch: dict[int, np.ndarray] = {}

    def __len__(self):
        return len(self.images)

    def __getitem__(self, key):
        from PIL import Image
        pos, epoch, batch, k = key
        image = Image.fromarray(self.images[pos])
        draws = self.draws[epoch][batch]
        if draws is not None:
            image = augment_pil(image, *draw_of(draws, k), pad=self.pad)
        if epoch == 0 and batch == 0:
            self.first_batch[k] = np.asarray(image).transpose(2, 0, 1).copy()
        return pos, self.post(image), self.labels[pos]


class ReplaySampler:
    """A batch sampler replaying one epoch's recorded batches each time it is iterated:
    `batches[epoch]` lists the keys (PyCIL position, epoch, batch, k) of every batch."""

    def __init__(self, batches):
        self.batches, self.epoch = batches, 0

    def __len__(self):
        return len(self.batches[0])

    def __iter__(self):
        if self.epoch >= len(self.batches):
            raise RuntimeError(f"PyCIL trains more epochs than the {len(self.batches)} recorded")
        epoch, self.epoch = self.epoch, self.epoch + 1
        yield from self.batches[epoch]


def replay_keys(record: FitRecord, positions: np.ndarray) -> list:
    """[epoch][batch] -> [(PyCIL position, epoch, batch, k), ...] of a FitRecord."""
    return [[[(int(positions[int(i)]), e, b, k) for k, i in enumerate(idx)]
             for b, idx in enumerate(epoch)] for e, epoch in enumerate(record.batches)]


class ReplayLoader:
    """What PyCIL's loop iterates instead of its shuffled DataLoader: the recorded batches,
    each compared with clbudget's (inputs bit for bit, labels); `check()` after training says
    how many agreed and that every recorded epoch was trained."""

    def __init__(self, loader, record: FitRecord, dataset: ReplayDataset, differing: int):
        self.loader, self.record, self.dataset = loader, record, dataset
        self.differing = differing
        self.equal, self.total, self.epoch = 0, 0, 0
        self.first_batch_equal = None

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        e = self.epoch
        self.epoch += 1
        for b, (pos, inputs, targets) in enumerate(self.loader):
            same = tensor_hash(inputs) == self.record.input_hashes[e][b]
            labels = self.record.labels[self.record.batches[e][b].numpy()]
            if not np.array_equal(np.asarray(targets), labels):
                raise RuntimeError(f"epoch {e} batch {b}: the replayed labels differ")
            self.equal += same
            self.total += 1
            if e == 0 and b == 0:
                mine = np.stack([self.dataset.first_batch[k] for k in range(len(pos))])
                self.first_batch_equal = bool(np.array_equal(mine, self.record.first_batch))
            yield pos, inputs, targets

    def check(self, strict: bool) -> dict:
        """{"batches_equal", "batches", "images_differing", "first_batch_equal"}; with `strict`
        (both sides hold the same images) any batch that differs is an error."""
        epochs = len(self.record.batches)
        if self.epoch != epochs:
            raise RuntimeError(f"PyCIL trained {self.epoch} epochs of the {epochs} recorded")
        out = {"batches_equal": self.equal, "batches": self.total,
               "images_differing": self.differing, "first_batch_equal": self.first_batch_equal}
        if strict and (self.equal != self.total or not self.first_batch_equal):
            raise RuntimeError(f"the same images with the same draws gave different batches: "
                               f"{out} (the replay does not reproduce clbudget's augmentation)")
        return out


def replay_loader(train_loader, record: FitRecord, augment: bool) -> ReplayLoader:
    """PyCIL's shuffled training DataLoader replaced by the recorded batches and draws.  Its
    data set's transform must be PyCIL's: [RandomCrop, RandomHorizontalFlip, ColorJitter
    (brightness only)] then the rest (ToTensor, Normalize) with `augment`, or the rest only;
    the random ones are replayed by `augment_pil` with their padding."""
    import torch
    ds = train_loader.dataset
    steps = list(ds.trsf.transforms)
    pad = 0
    if augment:
        names = [type(t).__name__ for t in steps[:3]]
        if names != ["RandomCrop", "RandomHorizontalFlip", "ColorJitter"]:
            raise RuntimeError(f"PyCIL's training transform starts with {names}, not RandomCrop, "
                               f"RandomHorizontalFlip, ColorJitter: the replay would not stand "
                               f"in for it")
        crop, jitter = steps[0], steps[2]
        if crop.padding_mode != "constant" or crop.fill != 0 or jitter.contrast or \
                jitter.saturation or jitter.hue:
            raise RuntimeError(f"PyCIL's augmentation is not zero-padded crop + brightness: "
                               f"{crop}, {jitter}")
        pad = int(crop.padding if isinstance(crop.padding, int) else crop.padding[0])
        lo, hi = max(0.0, 1 - record.brightness), 1 + record.brightness
        if pad != record.pad or not np.allclose(jitter.brightness, (lo, hi), rtol=0, atol=1e-9):
            raise RuntimeError(f"PyCIL pads {pad} and jitters brightness in {jitter.brightness}; "
                               f"clbudget pads {record.pad} and draws factors in [{lo}, {hi}]")
        steps = steps[3:]
    post = steps[0] if len(steps) == 1 else type(ds.trsf)(steps)
    positions, differing = pair_positions(record.hashes, record.labels,
                                          image_hashes(ds.images), ds.labels)
    dataset = ReplayDataset(ds.images, ds.labels, record.draws, post, pad)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=ReplaySampler(
        replay_keys(record, positions)), num_workers=0)
    return ReplayLoader(loader, record, dataset, differing)
