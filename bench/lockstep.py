"""Lockstep parity: clbudget and a real PyCIL checkout from the same weights on the same batches.

    python -m bench.lockstep --pycil PYCIL_DIR --method icarl --seeds 0..2 [--epochs 3] \
        [--per-class 250] [--test-per-class 100] [--resync] [--augment --batch-size 128] \
        [--control] [--json OUT]
    python -m bench.lockstep --control --method icarl ...     (no PyCIL: the rounding yardstick)

`bench.parity` compares the two codes statistically: each side draws its own batch order,
augmentation and initial weights, so a run of one seed differs between them as two seeds do,
and at the sizes a CPU allows (5 seeds, spread 5-13 pp) a gap of 1-2 pp can be neither shown
nor ruled out.  This bench removes those three sources of randomness, so what is left is the
implementation:
- **the same initial weights**: clbudget runs first; its network is recorded when each task's
  training starts (after the head grew) and PyCIL's learner, when its `_train` starts, is given
  clbudget's values for what is freshly initialised at that point and only that: the whole
  network at task 0, the arriving classes' head rows later (DER: also the new head columns of
  old rows, and the auxiliary head).  Everything a task carries over (trained weights, BN
  statistics, the teacher, the memory) is each side's own;
- **the same batches**: augmentation off on both sides (recipe option `augment=false`; PyCIL's
  training images get its test transform) and one batch an epoch holding every training image (batch size
  `FULL_BATCH`): the mean loss and BN's batch statistics do not depend on the order, so the
  two sides' different shuffles change only the order of float sums.
With `--resync`, every task starts from clbudget's whole state on both sides (every backbone
with its BN statistics, the head, iCaRL's and WA's teacher); the memory is each side's own, and
the table says whether it holds the same images.  Each task's gap is then that task's alone:
without it, a float-rounding difference of 1e-6 at the end of task 0 grows to 1e-2 within a
few full-batch SGD steps of the next task (measured: BENCHMARKS.md), which hides whether a
later task computes the same thing.
With `--augment --batch-size 128` both sides train as their recipes do, on mini-batches of 128
with crop, flip and brightness jitter, and still on the same draws: clbudget draws each
epoch's batch order and each image's crop offsets, flip and brightness factor from its
generator, and PyCIL's training loader replays them (bench/lockstep_draws.py: a batch sampler
of clbudget's batches mapped onto PyCIL's training set, and the recorded draws applied with the
PIL calls its torchvision transforms make).  Every replayed batch is compared with clbudget's
bit for bit, and at task 0 a difference stops the bench; later, where the two memories hold
different images, the table counts the batches that agree and the images that differ.  Run
without `--resync`, the task boundary is compared too: the teacher (its gap as a task starts),
herding, head growth and iCaRL's class means.
Then the two sides should compute the same numbers up to float rounding.  Per task the bench
prints each side's last-epoch loss, the gap between their weights before and after the task
(the largest max|clbudget - PyCIL| / max|clbudget| of any tensor: backbones with their BN
statistics, and the head over the seen classes; the tensor where it is largest), the exemplar
memories' agreement (classes holding the same images; in the same herding order) and the
accuracies (iCaRL: NME; PyCIL's linear-head and NME accuracies beside).  A mechanism that
differs shows up in the loss and the head from the task it acts in; BN biases, which start at
0 and sum gradients with cancellations, carry the largest relative gaps of float rounding.

`--control` measures what float rounding alone does in the same setting: clbudget against
itself, the second run with every mini-batch reversed, each image keeping its draw (the same
batches, matched by image content as PyCIL's are, since after task 0 the two memories may
hold their images in different herding orders; the same initial weights; only the order of
the sums within a batch differs; one batch an epoch: the whole epoch reversed), nothing
resynchronised; with `--resync`, every task of
the reversed run starts from the first run's network and teacher, as PyCIL's does.  A PyCIL
gap of that size is rounding, not a mechanism.  Beside `--pycil`, it reuses the clbudget run
compared with PyCIL.

It reuses bench/parity.py: the stream (per-seed class order, `--per-class` images a class), the
PyCIL data set registered at run time, the schedule constants, the run-time fixes.  Weights are
mapped by position: clbudget's resnet32 state dict and PyCIL's without its unused `fc` list the
same tensors in the same order (checked by shape), and after task 0's weights are copied both
networks' logits on the test images are checked equal before training.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import importlib
import json
import sys

import numpy as np

from bench import lockstep_draws, parity

FULL_BATCH = 100_000          # above any training set this bench builds: one batch an epoch
PYCIL_LEARNER = {"replay": "Replay", "icarl": "iCaRL", "wa": "WA", "der": "DER"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.lockstep",
                                description=__doc__.split("\n")[0])
    p.add_argument("--pycil", default=None, help="PYCIL_DIR: a PyCIL checkout (work tree)")
    p.add_argument("--method", required=True, choices=sorted(parity.PYCIL_MODEL))
    p.add_argument("--seeds", default="0", type=parity.parse_seeds)
    p.add_argument("--epochs", type=int, default=3, help="epochs (= steps) of every task")
    p.add_argument("--data-root", default="../shared/data/cifar10",
                   help="CIFAR10_DIR: CIFAR-10 as an ImageFolder of JPEGs "
                        "(train/<class>/*, test/<class>/*)")
    p.add_argument("--per-class", type=int, default=250, help="training images per class")
    p.add_argument("--test-per-class", type=int, default=100)
    p.add_argument("--init", type=int, default=2)
    p.add_argument("--inc", type=int, default=2)
    p.add_argument("--resync", action="store_true",
                   help="start every task from clbudget's whole state on both sides (network, BN "
                        "statistics, teacher), not only its fresh weights: each task's gap is "
                        "then that task's alone, not the drift carried from earlier tasks")
    p.add_argument("--augment", action="store_true",
                   help="train with the recipe's augmentation (crop, flip, brightness) on both "
                        "sides, with the same draws (bench/lockstep_draws.py)")
    p.add_argument("--batch-size", type=int, default=FULL_BATCH,
                   help="mini-batch size of every task (default: one batch an epoch); below "
                        "that, PyCIL replays clbudget's batch order")
    p.add_argument("--control", action="store_true",
                   help="clbudget against itself with every mini-batch summed in reversed order "
                        "(the same draws), the size of float rounding's drift in this setting; "
                        "with --pycil, after the comparison, from the same first run")
    p.add_argument("--json", default=None, help="write every seed's comparison here")
    args = p.parse_args(argv)
    for name in ("epochs", "per_class", "test_per_class", "batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.pycil is None and not args.control:
        p.error("--pycil PATH (a PyCIL checkout) is needed unless --control")
    args.clbudget_class_order = "per-seed"
    return args


def lockstep_spec(args, seed: int, budget: str = "2000ex"):
    """bench.parity's RunSpec with augmentation off (on with `--augment`) and one batch an
    epoch (`--batch-size` images with it)."""
    import dataclasses
    spec = parity.clbudget_spec(args, seed, budget)
    augment = {"augment": bool(getattr(args, "augment", False))}
    return dataclasses.replace(spec, batch_size=getattr(args, "batch_size", FULL_BATCH),
                               recipe_options=(("first", augment), ("later", augment)))


def replays(args) -> bool:
    """Whether PyCIL replays clbudget's draws (mini-batches or augmentation), rather than
    shuffling one full, unaugmented batch an epoch itself (the order then changes only sums)."""
    return bool(getattr(args, "augment", False)) or \
        getattr(args, "batch_size", FULL_BATCH) < FULL_BATCH


# --------------------------------------------------------------------------- weights

def backbone_pairs(clbudget_module, pycil_module, names: bool = False) -> list[tuple]:
    """(clbudget tensor, PyCIL tensor) of one resnet32, by position (PyCIL's convnet also
    holds an `fc` that IncrementalNet never calls: left out); with `names`, (PyCIL's name,
    clbudget tensor, PyCIL tensor)."""
    a = list(clbudget_module.state_dict().values())
    named = [(k, v) for k, v in pycil_module.state_dict().items() if not k.startswith("fc.")]
    b = [v for _, v in named]
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b)):
        raise RuntimeError(f"the two resnet32s do not list the same tensors: "
                           f"{[tuple(x.shape) for x in a][:8]}... vs "
                           f"{[tuple(y.shape) for y in b][:8]}...")
    if names:
        return [(k, x, y) for (k, _), x, y in zip(named, a, b)]
    return list(zip(a, b))


def _branches(method: str, net) -> list:
    return list(net.branches) if method == "der" else [net.backbone]


def _pycil_branches(method: str, net) -> list:
    return list(net.convnets) if method == "der" else [net.convnet]


def copy_fresh(method: str, task: int, old: int, seen: int, state: dict, net,
               resync: bool = False, old_network=None) -> None:
    """Give PyCIL's network `net`, as its task `task` starts, clbudget's values (`state`:
    clbudget's recorded network, teacher and DER's auxiliary head) for what is freshly
    initialised now; with `resync`, for everything (every backbone with its BN statistics, the
    head's seen rows, the teacher `old_network`), so that the task starts from one state on
    both sides."""
    import torch
    c = state["net"]
    with torch.no_grad():
        pairs = list(zip(_branches(method, c), _pycil_branches(method, net)))
        for cb, pb in pairs if resync else pairs[:1] if task == 0 else []:
            for src, dst in backbone_pairs(cb, pb):
                dst.copy_(src)
        w, b = c.head.weight, c.head.bias
        lo = 0 if resync else old
        net.fc.weight[lo:seen] = w[lo:seen]
        net.fc.bias[lo:seen] = b[lo:seen]
        if method == "der" and task > 0:
            D = c.out_dim
            net.fc.weight[:old, task * D:(task + 1) * D] = w[:old, task * D:(task + 1) * D]
            net.aux_fc.load_state_dict(state["aux"].state_dict())
        if resync and state.get("teacher") is not None and old_network is not None:
            teacher = state["teacher"]
            for src, dst in backbone_pairs(teacher.backbone, old_network.convnet):
                dst.copy_(src)
            old_network.fc.weight.copy_(teacher.head.weight[:old])
            old_network.fc.bias.copy_(teacher.head.bias[:old])


def relative_gap(a, b) -> float:
    """max|a - b| / max|a| of two tensors of one shape (1e-12 below: an all-zero `a`)."""
    return float((a - b).abs().max()) / max(float(a.abs().max()), 1e-12)


def weight_gaps(method: str, seen: int, c_net, p_net) -> dict:
    """The largest relative gap max|clbudget - PyCIL| / max|clbudget| of any tensor, over the
    backbones (parameters and BN statistics; BN's running variances run to tens, so absolute
    gaps would mislead) and over the head's seen rows, and the tensor where it is largest."""
    pairs = [pair for cb, pb in zip(_branches(method, c_net), _pycil_branches(method, p_net))
             for pair in backbone_pairs(cb, pb, names=True) if pair[1].is_floating_point()]
    heads = [("head.weight", c_net.head.weight[:seen].detach(), p_net.fc.weight.detach()),
             ("head.bias", c_net.head.bias[:seen].detach(), p_net.fc.bias.detach())]

    def worst(triples):
        return max((relative_gap(a, b), name) for name, a, b in triples)
    (backbone, where), (head, _) = worst(pairs), worst(heads)
    return {"backbone": backbone, "head": head, "where": where}


def memory_agreement(c_images, c_labels, p_images, p_labels) -> dict:
    """How far the two exemplar memories agree: classes held, classes holding the same images
    (as sets), classes holding them in the same (herding) order, and the shortest run of first
    exemplars that agree in any class (herding's order parts where two candidates nearly tie).
    clbudget's images are (N, C, H, W), PyCIL's (N, H, W, C); labels are positions in the class
    order on both sides."""
    def by_class(images, labels):
        out: dict[int, list[str]] = {}
        for x, y in zip(images, labels):
            out.setdefault(int(y), []).append(hashlib.sha1(np.ascontiguousarray(x)).hexdigest())
        return out
    a = by_class(np.asarray(c_images).transpose(0, 2, 3, 1), np.asarray(c_labels))
    b = by_class(np.asarray(p_images), np.asarray(p_labels))

    def prefix(x, y):       # how many first exemplars agree
        return next((i for i, (u, v) in enumerate(zip(x, y)) if u != v), min(len(x), len(y)))
    return {"classes": len(set(a) | set(b)),
            "same_images": sum(sorted(a.get(k, [])) == sorted(v) for k, v in b.items()),
            "same_order": sum(a.get(k) == v for k, v in b.items()),
            "shortest_prefix": min((prefix(a[k], b[k]) for k in set(a) & set(b)), default=0)}


# --------------------------------------------------------------------------- the two runs

@contextlib.contextmanager
def patched(cls, name: str, make):
    """`cls.name` replaced by make(original) while open."""
    had = name in cls.__dict__
    original = getattr(cls, name)
    setattr(cls, name, make(original))
    try:
        yield
    finally:
        if had:
            setattr(cls, name, original)
        else:
            delattr(cls, name)


def run_clbudget(spec, stream, reverse: bool = False, resync_from: dict | None = None,
                 follow: list | None = None) -> dict:
    """clbudget's run, recording its network when each task's training starts and ends, DER's
    auxiliary head as built, the memory (and iCaRL's class means) after each task, and every
    batch and augmentation draw of each task's training (`lockstep_draws.recording`; with
    `reverse`, every mini-batch trained in reverse order).  With `resync_from` (an earlier
    run's record), every task's training starts from that run's network and teacher as
    recorded then (the values loaded in place); the memory stays this run's own.  With
    `follow` (an earlier run's `fits`), every epoch trains that run's batches, matched by
    image content (`lockstep_draws.recording`)."""
    from clbudget.methods import expanding
    from clbudget.methods.registry import method_class
    cls = method_class(spec.method)
    starts, ends, memories, aux, means = [], [], [], [], []
    original_linear = expanding.simple_linear

    def learn(original):
        def wrapped(self, task):
            if resync_from is not None:
                start = resync_from["starts"][len(starts)]
                self.net.load_state_dict(start["net"].state_dict())
                if start["teacher"] is not None:
                    self.old_net.load_state_dict(start["teacher"].state_dict())
            starts.append({"net": copy.deepcopy(self.net), "old": self.old, "seen": self.seen,
                           "teacher": copy.deepcopy(getattr(self, "old_net", None))})
            expanding.simple_linear = recording
            try:
                out = original(self, task)
            finally:
                expanding.simple_linear = original_linear
            starts[-1]["aux"] = copy.deepcopy(aux[-1]) if aux and task.index > 0 else None
            ends.append(copy.deepcopy(self.net))
            return out
        return wrapped

    def recording(*a, **kw):          # the auxiliary head, built inside DER's learn
        layer = original_linear(*a, **kw)
        aux.append(copy.deepcopy(layer))
        return layer

    def end_task(original):
        def wrapped(self, task):
            original(self, task)
            x, y = self.memory.data()
            memories.append((x.cpu().numpy().copy(), y.cpu().numpy().copy()))   # not views
            if hasattr(self, "class_means"):
                means.append(self.class_means[:self.seen].cpu().clone())
        return wrapped

    with patched(cls, "learn", learn), patched(cls, "end_task", end_task), \
            lockstep_draws.recording(reverse, follow) as fits:
        c = parity.run_clbudget(spec, stream)
    if len(fits) != len(ends):
        raise RuntimeError(f"{len(fits)} training phases in {len(ends)} tasks: the lockstep "
                           f"replays one a task")
    return {"summary": c, "starts": starts, "ends": ends, "memories": memories,
            "fits": fits, "class_means": means}


def state_gap(a: dict, b: dict) -> tuple[float, str]:
    """The largest max|a - b| / max|a| of any floating tensor of two state dicts of one
    network, and its name."""
    return max(((relative_gap(x, b[k]), k) for k, x in a.items() if x.is_floating_point()),
               default=(0.0, ""))


def control(spec, stream, a: dict | None = None, resync: bool = False) -> list[dict]:
    """The float-rounding yardstick: clbudget against itself, the second run's mini-batches
    each in reversed order with the draws their images had (`run_clbudget(reverse=True)`),
    its batches the first run's matched by image content (`follow`: the two memories may
    hold their images in different herding orders; "images differing": those they do not
    share),
    nothing resynchronised (with `resync`: every task of the second run starts from the first
    run's network and teacher, as `--resync` starts PyCIL's); per task both losses, the gap
    of the networks as the task starts and after it (`state_gap`: the whole network, head and
    BN statistics included), the teacher's gap as the task starts, iCaRL's class means' gap,
    both accuracies and the memories' agreement.  `a`: the first run, when
    already made (`--pycil` with `--control`: the run compared with PyCIL)."""
    a = a if a is not None else run_clbudget(spec, stream)
    b = run_clbudget(spec, stream, reverse=True, resync_from=a if resync else None,
                     follow=a["fits"])
    rows = []
    for t, (na, nb) in enumerate(zip(a["ends"], b["ends"])):
        gap, where = state_gap(na.state_dict(), nb.state_dict())
        (xa, ya), (xb, yb) = a["memories"][t], b["memories"][t]
        ta, tb = a["starts"][t]["teacher"], b["starts"][t]["teacher"]
        rows.append({"task": t, "loss": [a["summary"]["loss"][t], b["summary"]["loss"][t]],
                     "start_gap": state_gap(a["starts"][t]["net"].state_dict(),
                                            b["starts"][t]["net"].state_dict())[0],
                     "gap": gap, "where": where,
                     "teacher_gap": None if ta is None
                     else state_gap(ta.state_dict(), tb.state_dict())[0],
                     "class_means_gap": relative_gap(a["class_means"][t], b["class_means"][t])
                     if a["class_means"] else None,
                     "accuracy": [a["summary"]["curve"][t], b["summary"]["curve"][t]],
                     "images_differing": b["fits"][t].differing,
                     "memory": memory_agreement(xa, ya, xb.transpose(0, 2, 3, 1), yb)})
    return rows


def format_control(method: str, seed: int, rows: list[dict], resync: bool = False) -> str:
    head = ["task", "start gap", "teacher gap", "loss", "gap", "largest in", "class means gap",
            "accuracy", "memory: same images/order/classes (shortest common prefix)",
            "images differing"]
    start = ", every task started from the first run's state" if resync else ""
    lines = [f"{method}, seed {seed}, control: clbudget against itself with every mini-batch "
             f"reversed{start} (loss and accuracy: as drawn / reversed)",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join([
            str(r["task"]), _gap(r.get("start_gap")), _gap(r.get("teacher_gap")),
            "/".join(f"{v:.4f}" for v in r["loss"]), f"{r['gap']:.2e}",
            r["where"], _gap(r.get("class_means_gap")),
            "/".join(f"{v:.2f}" for v in r["accuracy"]), _memory_cell(r["memory"]),
            str(r.get("images_differing", "-"))]) + " |")
    return "\n".join(lines)


def _gap(x) -> str:
    return "-" if x is None else f"{x:.2e}"


def run_pycil(pycil_path: str, spec, stream, clb: dict, resync: bool = False,
              replay: bool = False) -> dict:
    """PyCIL's run with clbudget's fresh weights copied in as each task's `_train` starts;
    records the teacher's gap then, its network after `_train`, and its memory and class means
    in `after_task`.  With `replay`, its training loader replays clbudget's batches and
    augmentation draws (`lockstep_draws.replay_loader`), each batch checked against
    clbudget's."""
    parity._import_pycil(pycil_path)
    module = importlib.import_module(f"models.{parity.PYCIL_MODEL[spec.method]}")
    learner = getattr(module, PYCIL_LEARNER[spec.method])
    method = spec.method
    ends, memories, checked, starts, teachers, batches, means = [], [], [], [], [], [], []
    augment = spec.resolved_recipe().phase("first").augment

    def train(original):
        def wrapped(self, train_loader, test_loader):
            t = self._cur_task
            start = clb["starts"][t]
            if (self._known_classes, self._total_classes) != (start["old"], start["seen"]):
                raise RuntimeError(f"task {t}: PyCIL trains classes {self._known_classes}.."
                                   f"{self._total_classes}, clbudget {start['old']}..{start['seen']}")
            copy_fresh(method, t, start["old"], start["seen"], start, self._network, resync,
                       getattr(self, "_old_network", None))
            starts.append(weight_gaps(method, start["seen"], start["net"], self._network))
            old_network = getattr(self, "_old_network", None)
            teachers.append(None if start["teacher"] is None or old_network is None else
                            weight_gaps(method, start["old"], start["teacher"], old_network))
            if t == 0:
                checked.append(same_logits(start["net"], self._network, stream, start["seen"]))
            if replay:
                train_loader = lockstep_draws.replay_loader(train_loader, clb["fits"][t], augment)
            original(self, train_loader, test_loader)
            if replay:
                batches.append(train_loader.check(strict=train_loader.differing == 0))
            ends.append(copy.deepcopy(self._network))
        return wrapped

    def after_task(original):
        def wrapped(self):
            memories.append((np.array(self._data_memory), np.array(self._targets_memory)))
            if getattr(self, "_class_means", None) is not None:
                means.append(np.array(self._class_means, dtype=np.float64))
            original(self)
        return wrapped

    with patched(learner, "_train", train), patched(learner, "after_task", after_task):
        p = parity.run_pycil(pycil_path, spec, stream, first_task_only=False, augment=augment)
    return {"summary": p, "ends": ends, "memories": memories, "logit_gap": checked[0],
            "start_gaps": starts, "teacher_gaps": teachers, "batches": batches,
            "class_means": means}


def same_logits(c_net, p_net, stream, seen: int) -> float:
    """Largest |logit difference| of the two task-0 networks on 64 test images, eval mode,
    PyCIL's normalisation (the check that the weights were mapped right: above 1e-4 of the
    largest |logit|, float rounding of the two codes' pooling and sums cannot explain it)."""
    import torch
    from clbudget.train.loop import Pipeline
    from clbudget.streams.catalog import normalization_constants
    mean, std = normalization_constants("pycil", "cifar10")
    inputs = Pipeline(tuple(mean), tuple(std))(torch.as_tensor(stream.tasks[0].test.x[:64]))
    c_net, p_was = copy.deepcopy(c_net).eval(), p_net.training
    p_net.eval()
    with torch.no_grad():
        c_logits = c_net(inputs)[:, :seen]
        gap = float((c_logits - p_net(inputs)["logits"]).abs().max())
    p_net.train(p_was)
    if gap > 1e-4 * max(1.0, float(c_logits.abs().max())):
        raise RuntimeError(f"after copying clbudget's task-0 weights the two networks' logits "
                           f"differ by {gap:.3g}: the weights are mapped wrongly")
    return gap


def compare(method: str, clb: dict, pyc: dict) -> list[dict]:
    c, p = clb["summary"], pyc["summary"]
    rows = []
    for t, (c_end, p_end) in enumerate(zip(clb["ends"], pyc["ends"])):
        seen = clb["starts"][t]["seen"]
        gaps = weight_gaps(method, seen, c_end, p_end)
        start = pyc["start_gaps"][t]
        row = {"task": t, "start_gap": max(start["backbone"], start["head"]),
               "loss_clbudget": c["loss"][t], "loss_pycil": p["loss"][t],
               "weight_gap_backbone": gaps["backbone"], "weight_gap_head": gaps["head"],
               "weight_gap_where": gaps["where"],
               "accuracy_clbudget": c["curve"][t], "accuracy_pycil": p["curve"][t],
               "cnn_pycil": p["cnn_curve"][t],
               "nme_pycil": p["nme_curve"][t] if p["nme_curve"] else None}
        if t < len(pyc["memories"]) and t < len(clb["memories"]):
            row["memory"] = memory_agreement(*clb["memories"][t], *pyc["memories"][t])
        teacher = pyc.get("teacher_gaps", [None] * (t + 1))[t]
        row["teacher_gap"] = None if teacher is None else max(teacher["backbone"], teacher["head"])
        if t < len(clb.get("class_means", [])) and t < len(pyc.get("class_means", [])):
            import torch
            row["class_means_gap"] = relative_gap(
                clb["class_means"][t].double(), torch.from_numpy(pyc["class_means"][t][:seen]))
        if t < len(pyc.get("batches", [])):
            row["batches"] = pyc["batches"][t]
        rows.append(row)
    return rows


def format_rows(method: str, seed: int, rows: list[dict], logit_gap: float) -> str:
    acc = "NME" if method in parity.NME_METHODS else "linear head"
    head = ["task", "start gap", "teacher gap", "loss c/p", "gap backbones", "gap head",
            "largest in", "class means gap", f"accuracy c/p ({acc})", "PyCIL CNN/NME",
            "memory: same images/order/classes (shortest common prefix)"]
    replayed = any("batches" in r for r in rows)
    if replayed:
        head.append("batches equal (images differing)")
    lines = [f"{method}, seed {seed}: gap = the largest max|clbudget - PyCIL| / max|clbudget| "
             f"of a tensor (start: after the copy, before training; then after the task); "
             f"task-0 logits after the copy differ by {logit_gap:.2g}",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        nme = "-" if r["nme_pycil"] is None else f"{r['nme_pycil']:.2f}"
        cells = [str(r["task"]), f"{r['start_gap']:.1e}", _gap(r.get("teacher_gap")),
                 f"{r['loss_clbudget']:.4f}/{r['loss_pycil']:.3f}",
                 f"{r['weight_gap_backbone']:.2e}", f"{r['weight_gap_head']:.2e}",
                 r["weight_gap_where"], _gap(r.get("class_means_gap")),
                 f"{r['accuracy_clbudget']:.2f}/{r['accuracy_pycil']:.2f}",
                 f"{r['cnn_pycil']:.2f}/{nme}", _memory_cell(r.get("memory"))]
        if replayed:
            b = r.get("batches")
            cells.append("-" if b is None else
                         f"{b['batches_equal']}/{b['batches']} ({b['images_differing']})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _memory_cell(m: dict | None) -> str:
    if m is None:
        return "-"
    prefix = f" ({m['shortest_prefix']})" if "shortest_prefix" in m else ""   # older records
    return f"{m['same_images']}/{m['same_order']}/{m['classes']}{prefix}"


def main(argv=None) -> int:
    args = parse_args(argv)
    from clbudget.experiment.run import load
    out = []
    for seed in args.seeds:
        stream = load(lockstep_spec(args, seed))
        spec = lockstep_spec(args, seed, parity.exact_memory_budget(args.method, stream))
        if args.control and args.pycil is None:
            rows = control(spec, stream, resync=args.resync)
            print(format_control(args.method, seed, rows, args.resync), flush=True)
            out.append({"seed": seed, "control": rows})
            _write(args, out)
            continue
        clb = run_clbudget(spec, stream)
        pyc = run_pycil(args.pycil, spec, stream, clb, args.resync, replays(args))
        rows = compare(args.method, clb, pyc)
        print(format_rows(args.method, seed, rows, pyc["logit_gap"]), flush=True)
        out.append({"seed": seed, "logit_gap": pyc["logit_gap"], "tasks": rows,
                    "clbudget": clb["summary"], "pycil": pyc["summary"]})
        if args.control:            # the yardstick beside it, from the same first run
            out[-1]["control"] = rows = control(spec, stream, clb, args.resync)
            print(format_control(args.method, seed, rows, args.resync), flush=True)
        _write(args, out)
    return 0


def _write(args, out: list[dict]) -> None:
    """After every seed: a stopped bench keeps the seeds it finished."""
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": dict(vars(args)), "seeds": out}, f, indent=1, default=str)


if __name__ == "__main__":
    sys.exit(main())
