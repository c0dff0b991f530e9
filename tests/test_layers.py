"""Dependencies run one way (issue 15): no module imports from a layer above its own.

Every import is read with `ast`, module-level and function-level alike (a lazy import inside a
function is how an upward dependency, or a cycle, hides), and mapped to its layer:

    0 base        progress.py, optional.py (progress bars; optional extras such as Ray)
    1 streams     data sets and protocols
    2 nets        backbones and the classifier head (imports streams.catalog for hints only)
    3 budget      bytes: accountant, ledger, cost models, allocator
    4 train       the one training loop, recipes, FLOPs, option fields
    5 methods     registry, Method base, state codec, memory, losses, one file per method
    6 experiment  run, evaluate, metrics of one run, sweep, executors, store, checkpoints
    7 analysis    metrics over stored results; also results.py (`clbudget.load`) and
                  conformance.py (`check-method` runs a method through experiment/)
    8 cli         cli/ (one module per command group), configfile.py, __main__.py, the
                  package root
    9 bench       benchmarks and the mutant catalogue (never imported by clbudget)

An import within one layer is allowed.  The streams modules must also have no import cycle
among themselves.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LAYERS = {   # module-name prefix -> layer; the longest matching prefix decides
    "clbudget.progress": 0, "clbudget.optional": 0,
    "clbudget.streams": 1,
    "clbudget.nets": 2,
    "clbudget.budget": 3,
    "clbudget.train": 4,
    "clbudget.methods": 5,
    "clbudget.experiment": 6,
    "clbudget.analysis": 7, "clbudget.results": 7, "clbudget.conformance": 7,
    "clbudget.cli": 8, "clbudget.configfile": 8,
    "clbudget.__main__": 8, "clbudget": 8,
    "bench": 9,
}
NAMES = {0: "base", 1: "streams", 2: "nets", 3: "budget", 4: "train", 5: "methods",
         6: "experiment", 7: "analysis", 8: "cli", 9: "bench"}


def layer_of(module: str) -> int:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")),
               key=len, default=None)
    assert best is not None, f"{module} is in no layer: place it in LAYERS (tests/test_layers.py)"
    return LAYERS[best]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources() -> dict[str, ast.Module]:
    files = sorted((ROOT / "clbudget").rglob("*.py")) + sorted((ROOT / "bench").rglob("*.py"))
    return {module_name(f): ast.parse(f.read_text(), str(f)) for f in files}


def imports(module: str, tree: ast.Module, is_package: bool) -> list[tuple[int, str]]:
    """(line, imported module) for every import anywhere in the file; relative imports
    resolved; `from pkg import name` counts as pkg.name (a submodule or a name of pkg:
    either way its layer is pkg's or below)."""
    package = module if is_package else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return out


def ours(name: str) -> bool:
    return name.split(".")[0] in ("clbudget", "bench")


def package_modules(trees) -> set[str]:
    return {m for m in trees if (ROOT / m.replace(".", "/") / "__init__.py").exists()}


def upward_imports(trees: dict[str, ast.Module]) -> list[str]:
    packages = package_modules(trees)
    bad = []
    for module, tree in trees.items():
        mine = layer_of(module)
        for line, target in imports(module, tree, module in packages):
            if ours(target) and layer_of(target) > mine:
                bad.append(f"{module}:{line} ({NAMES[mine]}) imports {target} "
                           f"({NAMES[layer_of(target)]})")
    return bad


def test_no_module_imports_from_a_layer_above_its_own():
    assert upward_imports(sources()) == []


def test_the_check_sees_lazy_and_relative_imports():
    """The check itself: a function-level import and a relative one are both caught."""
    lazy = ast.parse("def f():\n    from clbudget.methods.registry import method_class\n")
    assert upward_imports({"clbudget.budget.costs": lazy}) == [
        "clbudget.budget.costs:2 (budget) imports clbudget.methods.registry.method_class "
        "(methods)"]
    relative = ast.parse("from ..experiment import run\n")
    assert upward_imports({"clbudget.methods.base": relative}) == [
        "clbudget.methods.base:1 (methods) imports clbudget.experiment.run (experiment)"]


def streams_cycle(trees: dict[str, ast.Module]) -> list[str]:
    """A cycle among the streams modules (module-level and lazy imports), or []."""
    packages = package_modules(trees)
    mods = {m for m in trees if m.startswith("clbudget.streams.")}
    graph = {}
    for m in mods:
        targets = set()
        for _, target in imports(m, trees[m], m in packages):
            while target and target not in mods:   # pkg.name -> pkg, down to a module
                target = target.rpartition(".")[0]
            if target:
                targets.add(target)
        graph[m] = targets - {m}
    state: dict[str, int] = {}   # 1 on the path, 2 done

    def visit(m, path):
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                return path[path.index(t):] + [t]
            if t not in state:
                found = visit(t, path + [t])
                if found:
                    return found
        state[m] = 2
        return []

    for m in sorted(graph):
        if m not in state:
            found = visit(m, [m])
            if found:
                return found
    return []


def test_streams_modules_import_each_other_without_a_cycle():
    assert streams_cycle(sources()) == []
    circle = {"clbudget.streams.a": ast.parse("from .b import x\n"),
              "clbudget.streams.b": ast.parse("def f():\n    from . import a\n")}
    assert streams_cycle(circle) == ["clbudget.streams.a", "clbudget.streams.b",
                                     "clbudget.streams.a"]
