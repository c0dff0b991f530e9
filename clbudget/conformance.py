"""The registry-wide conformance checks, as `clbudget check-method NAME` runs them.

Every method, built-in or a user's (`pkg.module:Class`), must on a tiny glyphs stream
(3 tasks of 2 classes, 16x16 images, 1 epoch, conv2; seconds on a CPU):
- `finite_losses`: every epoch's mean loss is finite;
- `ledger_equals_held`: after every task, the strict ledger (computed from `retained()`)
  equals the bytes of every distinct tensor storage the method holds (`held_bytes`, which
  walks the method's attributes and never reads `retained()`): a tensor kept but not
  declared, or declared twice, fails;
- `within_budget`: after every task the ledger is within the allocated budget;
- `deterministic`: two runs with the same seed give the same accuracy matrices and losses;
- `resume_equals_uninterrupted`: a run stopped after its first task and resumed from its
  checkpoint (experiment/checkpoint.py) ends with the uninterrupted run's result.
tests/test_methods.py and tests/test_reliability.py hold the built-ins to the same checks;
`held_bytes` is theirs too (tests/helpers.py imports it from here).
"""
from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass

import torch
from torch import nn

CHECK_GLYPHS = (("num_classes", 6), ("train_per_class", 40), ("test_per_class", 12),
                ("image_size", 16), ("seed", 0))


def check_spec(method: str, **overrides):
    """The stream and settings the checks run on (tests/helpers.py `tiny_spec`'s)."""
    from clbudget.experiment.run import RunSpec
    base = dict(method=method, dataset="glyphs", budget="5xconv2+300ex", init=0, inc=2,
                num_classes=6, epochs=1, batch_size=32, seed=0, backbone="conv2",
                device="cpu", glyphs_options=CHECK_GLYPHS)
    base.update(overrides)
    return RunSpec(**base)


def held_bytes(obj) -> int:
    """Bytes of every distinct tensor storage reachable from a method's attributes.

    Walks modules (state_dict), tensors, containers and memories, skipping the run
    context and config; each storage is counted once.  Independent of `retained()`.
    """
    from clbudget.methods.memory import ExemplarMemory
    seen: dict[tuple, int] = {}

    def visit(o, depth=0):
        if depth > 6:
            return
        if torch.is_tensor(o):
            key = (o.untyped_storage().data_ptr(), o.device.type)
            if o.numel():
                seen[key] = max(seen.get(key, 0), o.untyped_storage().nbytes())
        elif isinstance(o, nn.Module):
            for t in o.state_dict(keep_vars=True).values():
                visit(t, depth + 1)
        elif isinstance(o, dict):
            for v in o.values():
                visit(v, depth + 1)
        elif isinstance(o, (list, tuple)):
            for v in o:
                visit(v, depth + 1)
        elif isinstance(o, ExemplarMemory):
            visit(vars(o), depth + 1)

    for name, value in vars(obj).items():
        if name not in ("ctx", "config"):
            visit(value)
    return sum(seen.values())


@dataclass
class Check:
    name: str
    passed: bool | None = None     # None: not applicable / not reached
    detail: str = ""

    def fail(self, detail: str) -> None:
        if self.passed is not False:   # the first failure is the one reported
            self.passed, self.detail = False, detail


def _comparable(row: dict) -> tuple:
    acc = row["accuracy"]
    return acc["matrix"], acc["task_aware"]["matrix"], row["losses"]


class _Stop(Exception):
    pass


def check_method(name: str, spec=None) -> dict:
    """Run every check on method `name`; {"method", "passed", "checks": [...]}."""
    from clbudget.experiment.checkpoint import Checkpoints
    from clbudget.experiment.run import prepare, run_experiment, to_device
    spec = spec or check_spec(name)
    checks = {c.name: c for c in (Check("finite_losses"), Check("ledger_equals_held"),
                                  Check("within_budget"), Check("deterministic"),
                                  Check("resume_equals_uninterrupted"))}
    source = None
    try:
        stream, ctx, method = prepare(spec)
    except Exception as e:   # cannot even be built: nothing else can be checked
        for c in checks.values():
            c.fail(f"could not prepare the run: {type(e).__name__}: {e}")
        return _report(name, spec, checks, source)
    budget = ctx.allocation.budget_bytes
    ledger_c, budget_c, loss_c = (checks[k] for k in ("ledger_equals_held", "within_budget",
                                                      "finite_losses"))
    try:
        for task in to_device(stream, ctx.device):
            method.begin_task(task)
            stats = method.learn(task)
            method.end_task(task)
            losses = stats.get("loss", []) if isinstance(stats, dict) else []
            if not all(math.isfinite(float(v)) for v in losses):
                loss_c.fail(f"task {task.index}: losses {losses}")
            ledger = method.ledger("strict")
            held = held_bytes(method)
            if ledger.total_bytes != held:
                ledger_c.fail(f"task {task.index}: ledger {ledger.total_bytes:,} B "
                              f"{ledger.by_kind()} but the method holds {held:,} B "
                              f"({held - ledger.total_bytes:+,} B undeclared)")
            if method.budgeted and ledger.total_bytes > budget:
                budget_c.fail(f"task {task.index}: ledger {ledger.total_bytes:,} B over the "
                              f"budget of {budget:,} B")
        for c, ok in ((loss_c, "every epoch's loss finite"),
                      (ledger_c, f"ledger == held bytes after each of {stream.num_tasks} tasks "
                                 f"({ledger.total_bytes:,} B at the end)"),
                      (budget_c, f"{ledger.total_bytes:,} B <= budget {budget:,} B")):
            if c.passed is None:
                c.passed, c.detail = True, ok
        if not method.budgeted:
            budget_c.passed, budget_c.detail = None, "not budgeted (an upper bound)"
    except Exception as e:
        for c in (loss_c, ledger_c, budget_c):
            c.fail(f"training raised {type(e).__name__}: {e}")
    from clbudget.methods.registry import source as method_source
    source = method_source(spec.method)

    det, res = checks["deterministic"], checks["resume_equals_uninterrupted"]
    try:
        first = run_experiment(spec, stream=stream)
        second = run_experiment(spec, stream=stream)
    except Exception as e:
        det.fail(f"run raised {type(e).__name__}: {e}")
        res.fail("needs a finished run")
        return _report(name, spec, checks, source)
    if _comparable(first) == _comparable(second):
        det.passed, det.detail = True, "same seed, same accuracy matrices and losses"
    else:
        det.fail("two runs with seed 0 differ in accuracy matrices or losses (an unseeded "
                 "random draw? use ctx.trainer.generator)")
    with tempfile.TemporaryDirectory(prefix="clbudget-check-") as tmp:
        checkpoints = Checkpoints(tmp)

        def stop_after_first(index, _row):
            if index == 0:
                raise _Stop
        try:
            try:
                run_experiment(spec, stream=stream, checkpoints=checkpoints,
                               on_task=stop_after_first)
            except _Stop:
                pass
            resumed = run_experiment(spec, stream=stream, checkpoints=checkpoints)
        except Exception as e:
            res.fail(f"checkpoint or resume raised {type(e).__name__}: {e}")
            return _report(name, spec, checks, source)
    if resumed.get("resumed_tasks") != 1:
        res.fail(f"the rerun resumed {resumed.get('resumed_tasks')} tasks, expected 1")
    elif _comparable(resumed) == _comparable(first):
        res.passed, res.detail = True, "stopped after task 0, resumed: same result"
    else:
        res.fail("stopped after task 0 and resumed, the accuracy matrices or losses differ "
                 "from the uninterrupted run's (state not in the method's attributes?)")
    return _report(name, spec, checks, source)


def _report(name, spec, checks: dict, source) -> dict:
    out = [{"check": c.name, "passed": c.passed, "detail": c.detail} for c in checks.values()]
    return {"method": name, "spec": spec.to_dict(), "source": source,
            "passed": all(c.passed is not False for c in checks.values()), "checks": out}


def render_checks(report: dict) -> str:
    verdict = {True: "PASS", False: "FAIL", None: "n/a "}
    lines = [f"check-method {report['method']}"
             + (f" ({report['source']['file']})" if report.get("source") else "")
             + ": 3 tasks of 2 glyph classes, 16x16, conv2, 1 epoch, cpu"]
    lines += [f"  {verdict[c['passed']]}  {c['check']:<28} {c['detail']}"
              for c in report["checks"]]
    lines.append("passed" if report["passed"] else "FAILED")
    return "\n".join(lines)
