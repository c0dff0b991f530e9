"""Mechanism mutants: does a test fail when a mechanism is removed?

For every mutant of the catalogue (`bench/mutant_catalog/`), copy the project to a temporary
folder, apply the mutant's one text replacement, and run the tests it names there.  A mutant is
*killed* when those tests fail (pytest exit 1), *survives* when they pass, and is *broken* when
the mutated copy does not even collect (pytest exit 2-4: a typo in the catalogue, not a kill).
A mutant whose tests run past `--timeout` is *timed out*: not a kill (a hang proves nothing
about the assertion), listed apart so it can be given a faster guarding test.
Before any mutant, the named tests run once on the unmutated copy: they must pass.

    python -m bench.mutants                     # every mutant, 2 at a time
    python -m bench.mutants --only icarl,wa     # areas (or name prefixes)
    python -m bench.mutants --only budget       # budget.units, budget.costs, budget.allocator
    python -m bench.mutants --origin blind-2    # the second blind round, whatever its areas
    python -m bench.mutants --list              # the catalogue (name, origin, mechanism)
    python -m bench.mutants --json out.json     # also write the results
    python -m bench.mutants --only loop.train --tests tests   # against the whole suite

A mutant's name is "AREA.what_it_breaks"; its area is its catalogue module
(`bench/mutant_catalog/AREA.py`, dots as underscores), its origin the round that wrote it
(`bench/mutant_catalog/origins.py`).

A mutant's named tests are where it is expected to die; `--tests` runs other test paths
instead (`tests` = the whole suite: a mutant that survives its area's files may still be
killed elsewhere, which is what "passes the whole suite" means).

Exit status 0 only when every selected mutant is killed.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from bench.mutant_catalog import Mutant, catalogue, select

ROOT = Path(__file__).resolve().parent.parent
COPIED = ("clbudget", "tests", "bench", "examples", "pyproject.toml")


def areas() -> list[str]:
    from bench.mutant_catalog import modules
    return [module.AREA for module in modules()]


def copy_project(dest: Path) -> Path:
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


def apply(mutant: Mutant, root: Path) -> None:
    path = root / mutant.path
    text = path.read_text()
    n = text.count(mutant.old)
    if n != 1:
        raise ValueError(f"{mutant.name}: its text occurs {n} times in {mutant.path} "
                         f"(must be once): the catalogue is stale")
    path.write_text(text.replace(mutant.old, mutant.new))


def run_tests(root: Path, tests, timeout_s: float) -> tuple[int, str]:
    from tests.helpers import REAL_CIFAR10   # found from this tree, not from the copy's folder
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1",
           "CLBUDGET_CIFAR10": os.environ.get("CLBUDGET_CIFAR10", str(REAL_CIFAR10))}
    # addopts cleared (no -q twice), the suite's own deselection of `pycil` tests kept
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
           "-o", "addopts=", "-m", "not pycil", *tests]
    try:
        done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True,
                              timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return -1, "timed out"
    return done.returncode, (done.stdout + done.stderr)


def first_failure(output: str) -> str:
    for line in output.splitlines():
        if line.startswith("FAILED "):
            return line[len("FAILED "):].split(" - ")[0]
    return ""


def try_mutant(mutant: Mutant, timeout_s: float) -> dict:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="clbudget-mutant-") as tmp:
        root = copy_project(Path(tmp))
        try:
            apply(mutant, root)
        except ValueError as e:
            return {"name": mutant.name, "verdict": "broken", "detail": str(e), "wall_s": 0.0}
        code, output = run_tests(root, mutant.tests, timeout_s)
    verdict = {1: "killed", 0: "survived", -1: "timed out"}.get(code, "broken")
    detail = first_failure(output) if code == 1 else ("timed out" if code == -1 else
                                                      output.strip().splitlines()[-1:] or [""])
    if isinstance(detail, list):
        detail = detail[0] if detail else ""
    return {"name": mutant.name, "verdict": verdict, "detail": detail,
            "wall_s": round(time.perf_counter() - t0, 1), "mechanism": mutant.mechanism,
            "origin": mutant.origin}


def baseline(mutants, timeout_s: float) -> tuple[int, str]:
    """The union of the named tests on the unmutated project: they must pass."""
    tests = sorted({t for m in mutants for t in m.tests})
    with tempfile.TemporaryDirectory(prefix="clbudget-mutant-base-") as tmp:
        return run_tests(copy_project(Path(tmp)), tests, timeout_s * 4)


def by_area_table(results) -> str:
    """A markdown table of the verdicts per catalogue area (the area is the name's module)."""
    order = areas()
    counts: dict[str, dict[str, int]] = {}
    for r in results:
        area = max((a for a in order if r["name"].startswith(a + ".")), key=len)
        row = counts.setdefault(area, {"killed": 0, "survived": 0, "timed out": 0, "broken": 0})
        row[r["verdict"]] += 1
    lines = ["| area | mutants | killed | survived | timed out | broken |",
             "|---|---|---|---|---|---|"]
    total = {"killed": 0, "survived": 0, "timed out": 0, "broken": 0}
    for area in order:
        if area in counts:
            c = counts[area]
            lines.append(f"| {area} | {sum(c.values())} | {c['killed']} | {c['survived']} | "
                         f"{c['timed out']} | {c['broken']} |")
            for k in total:
                total[k] += c[k]
    lines.append(f"| **all** | **{sum(total.values())}** | **{total['killed']}** | "
                 f"**{total['survived']}** | **{total['timed out']}** | **{total['broken']}** |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="",
                   help="comma-separated areas or name prefixes ('budget', 'budget.costs', "
                        "'der' (not derpp), 'derpp.best_args')")
    p.add_argument("--origin", default="",
                   help="comma-separated origin prefixes ('blind' = the three blind rounds, "
                        "'blind-2', 'mechanism', 'proof', 'oracle', 'survivors')")
    p.add_argument("--list", action="store_true", help="print the catalogue and stop")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant")
    p.add_argument("--json", default=None,
                   help="write the results to this file (rewritten after every mutant, so a "
                        "stopped run keeps what it did: see --resume)")
    p.add_argument("--resume", default=None,
                   help="a --json file of an earlier (stopped) run: its mutants are not run "
                        "again and their results count in this run's table and totals")
    p.add_argument("--tests", default="",
                   help="comma-separated test paths run for every mutant instead of its own "
                        "(e.g. 'tests': the whole suite)")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip the run on the unmutated copy (only when those tests are known "
                        "to pass, e.g. the whole suite right after CI)")
    args = p.parse_args(argv)
    mutants = catalogue()
    if args.tests:
        tests = tuple(t.strip() for t in args.tests.split(",") if t.strip())
        missing = [t for t in tests if not (ROOT / t.split("::")[0]).exists()]
        if missing:
            print(f"--tests: no such test path: {', '.join(missing)}", file=sys.stderr)
            return 2
        mutants = [replace(m, tests=tests) for m in mutants]
    if args.only or args.origin:
        mutants = select(mutants, args.only, args.origin)
        if not mutants:
            print(f"no mutant matches --only {args.only!r} --origin {args.origin!r} "
                  f"(areas: {', '.join(sorted({a for a in areas()}))})", file=sys.stderr)
            return 2
    if args.list:
        for m in mutants:
            print(f"{m.name:52s} {m.origin:38s} {m.mechanism}")
        print(f"{len(mutants)} mutants")
        return 0
    earlier = []
    if args.resume:
        done = {r["name"]: r for r in json.loads(Path(args.resume).read_text())["results"]}
        earlier = [done[m.name] for m in mutants if m.name in done]
        mutants = [m for m in mutants if m.name not in done]
        print(f"--resume: {len(earlier)} results from {args.resume}, {len(mutants)} to run",
              flush=True)
    code, output = (0, "") if (args.no_baseline or not mutants) else baseline(mutants,
                                                                             args.timeout)
    if code != 0:
        print(output[-3000:], file=sys.stderr)
        print(f"the guarding tests fail on the unmutated project (pytest exit {code}): "
              f"fix them first", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    results = list(earlier)
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        for r in pool.map(lambda m: try_mutant(m, args.timeout), mutants):
            results.append(r)
            print(f"{r['verdict']:9s} {r['name']:44s} {r['wall_s']:6.1f}s  {r['detail']}",
                  flush=True)
            if args.json:
                write_json(args.json, results, done=False)
    print(by_area_table(results))
    killed = sum(r["verdict"] == "killed" for r in results)
    survivors = [r["name"] for r in results if r["verdict"] == "survived"]
    broken = [r["name"] for r in results if r["verdict"] == "broken"]
    slow = [r["name"] for r in results if r["verdict"] == "timed out"]
    print(f"killed {killed}/{len(results)} in {time.perf_counter() - t0:.0f} s")
    if survivors:
        print("survived: " + ", ".join(survivors))
    if slow:
        print(f"timed out (over {args.timeout:.0f} s; not counted as killed): " + ", ".join(slow))
    if broken:
        print("broken (fix the catalogue): " + ", ".join(broken))
    if args.json:
        write_json(args.json, results, done=True)
    return 0 if killed == len(results) else 1


def write_json(path: str, results: list, done: bool) -> None:
    """The results so far (`done` false while the run goes on), replaced atomically."""
    killed = sum(r["verdict"] == "killed" for r in results)
    tmp = Path(f"{path}.part")
    tmp.write_text(json.dumps({"killed": killed, "total": len(results), "done": done,
                               "results": results}, indent=2))
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())
