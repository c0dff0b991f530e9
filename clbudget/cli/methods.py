"""`clbudget methods`, `clbudget recipes` and `clbudget check-method`: what can be run, how
each method is trained, and the conformance checks of a method (yours: pkg.module:Class)."""
from __future__ import annotations

from clbudget.budget.costs import COST_MODELS, StreamShape
from clbudget.cli.common import add_json_flag, emit, table


def add_parser(sub) -> None:
    """`methods`, `recipes` and `check-method`."""
    m = sub.add_parser("methods", help="list the methods, what they retain, their papers")
    add_json_flag(m)
    m.set_defaults(func=cmd_methods)

    rc = sub.add_parser("recipes", help="the training recipes: phases, optimisation, precision")
    add_json_flag(rc)
    rc.set_defaults(func=cmd_recipes)

    c = sub.add_parser("check-method", help="run the registry-wide conformance checks on a "
                                            "method (yours: --method pkg.module:Class)",
                       description="Train METHOD on a tiny glyphs stream and check: finite "
                                   "losses; ledger == bytes held after every task; within "
                                   "budget; same seed, same result; resumed == uninterrupted. "
                                   "Exit 1 if a check fails.")
    c.add_argument("name", metavar="METHOD", help="a registered name or pkg.module:Class")
    add_json_flag(c)
    c.set_defaults(func=cmd_check_method)


def cmd_methods(args) -> None:
    from clbudget.methods.registry import load_all
    METHODS = load_all()
    rows = [{"name": m.name, "paper": m.paper, "implemented": m.name in METHODS,
             "recipe": METHODS[m.name].recipe if m.name in METHODS else "",
             "dataset_recipes": dict(METHODS[m.name].dataset_recipes) if m.name in METHODS
             else {},
             "reference": _reference_of(METHODS.get(m.name)),
             "exemplars": m.uses_exemplars, "budgeted": m.budgeted,
             "retains": ", ".join(sorted(k for k in m.cost(
                 StreamShape(2, (3, 32, 32), 10), "resnet32", 10, "strict").by_kind()))}
            for m in COST_MODELS.values()]
    emit(args, {"methods": rows},
         table(rows, ["name", "recipe", "exemplars", "budgeted", "retains", "paper"])
         + "".join(f"\n{r['name']} on {d}: recipe {n}" for r in rows
                   for d, n in r["dataset_recipes"].items())
         + "\n(reference code per method: --json, field 'reference'; or the method's docstring)")


def _reference_of(cls) -> str:
    """The 'Reference:' line of a method module's docstring (the code it follows)."""
    import importlib
    if cls is None:
        return ""
    doc = importlib.import_module(cls.__module__).__doc__ or ""
    lines = doc.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Reference:"):
            text = [line[len("Reference:"):].strip()]
            for cont in lines[i + 1:]:
                if not cont.strip() or ":" in cont.split(" ")[0]:
                    break
                text.append(cont.strip())
            return " ".join(text)
    return ""


def cmd_recipes(args) -> None:
    from clbudget.train.recipes import RECIPES, get_recipe
    get_recipe("pycil-icarl")   # loads the reference recipes
    rows, lines = [], []
    for name in sorted(RECIPES):
        r = RECIPES[name]
        rows.append({**r.to_dict(), "fingerprint": r.fingerprint})
        lines.append(f"{name}  [{r.fingerprint}]  precision {r.precision}  augmentation "
                     f"{r.augmentation}  normalization {r.normalization}\n  source: {r.source}")
        for phase, c in r.phases:
            sched = (f"{c.schedule} {'/'.join(map(str, c.milestones))}"
                     if c.schedule == "multistep" else c.schedule)
            if c.schedule == "plateau":
                sched = f"plateau patience {c.patience} x{c.gamma:g}"
            extra = "".join(f"  {k} {v:g}" for k, v in (("mixup", c.mixup),
                                                         ("validation", c.validation)) if v)
            if c.sampler != "shuffle":
                extra += f"  sampler {c.sampler}"
            lines.append(f"  {phase:14s} {c.epochs:4d} ep  batch {c.batch_size:4d}  "
                         f"{c.optimizer} lr {c.lr:g}  momentum {c.momentum:g}  wd "
                         f"{c.weight_decay:g}  {sched}  augment {'on' if c.augment else 'off'}"
                         f"{extra}")
    emit(args, {"recipes": rows}, "\n".join(lines))


def cmd_check_method(args) -> None:
    from clbudget.conformance import check_method, render_checks
    report = check_method(args.name)
    emit(args, report, render_checks(report))
    if not report["passed"]:
        raise SystemExit(1)
