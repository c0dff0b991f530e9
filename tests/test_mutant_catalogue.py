"""The mutant catalogue stays applicable and organised by area: every mutant's text occurs once
in its file, every test it names exists, its name starts with its module's area, its origin is
one of the rounds, and `--only AREA` selects exactly that module's mutants
(`python -m bench.mutants` runs them; this only checks the list)."""
from __future__ import annotations

from pathlib import Path

import pytest

from bench.mutant_catalog import Mutant, catalogue, modules, select
from bench.mutant_catalog.origins import ORIGINS
from bench.mutants import ROOT, main


def test_every_mutant_applies_once_and_names_existing_tests():
    mutants = catalogue()
    for m in mutants:
        text = (ROOT / m.path).read_text()
        assert text.count(m.old) == 1, f"{m.name}: text occurs {text.count(m.old)}x in {m.path}"
        assert m.old != m.new, m.name
        assert m.tests, f"{m.name} names no test"
        for node in m.tests:
            file, _, func = node.partition("::")
            assert Path(ROOT / file).exists(), f"{m.name}: no test file {file}"
            source = (ROOT / file).read_text()
            if func:
                assert f"def {func.split('[')[0]}(" in source, f"{m.name}: no test {node}"


def test_every_name_starts_with_its_modules_area_and_every_origin_is_a_round():
    areas = []
    for module in modules():
        area = module.AREA
        areas.append(area)
        assert module.__name__.rsplit(".", 1)[1] == area.replace(".", "_"), module.__name__
        assert module.MUTANTS, f"{module.__name__} holds no mutant"
        for m in module.MUTANTS:
            assert m.name.startswith(area + "."), f"{m.name} is not in area {area}"
            assert m.name.count(".") == area.count(".") + 1, f"{m.name}: one part after the area"
            assert m.origin in ORIGINS, f"{m.name}: origin {m.origin!r}"
            assert m.mechanism, f"{m.name} says no mechanism"
    assert len(set(areas)) == len(areas)
    # no area is an area's parent under another module ("budget" and "budget.costs" both)
    for a in areas:
        assert not any(b.startswith(a + ".") for b in areas), a
    # provenance of the rounds that the kill rates in BENCHMARKS.md are per
    origins = {m.origin for m in catalogue()}
    assert {o for o in ORIGINS if o.startswith("blind-")} <= origins


def test_only_area_selects_exactly_that_modules_mutants():
    mutants = catalogue()
    for module in modules():
        assert select(mutants, module.AREA) == list(module.MUTANTS), module.AREA
    # a parent area selects its children, a prefix of a name component does not
    budget = [m for mod in modules() if mod.AREA.startswith("budget.") for m in mod.MUTANTS]
    assert len(budget) > 0 and select(mutants, "budget") == budget
    der = select(mutants, "der")
    assert der and all(m.name.startswith("der.") for m in der)
    assert select(mutants, "derpp.best_args") and all(
        m.name.startswith("derpp.best_args") for m in select(mutants, "derpp.best_args"))
    assert select(mutants, "icarl,wa") == [m for m in mutants
                                          if m.name.startswith(("icarl.", "wa."))]


def test_origin_filter_selects_by_round():
    made = [Mutant("a.x", "p", "o", "n", ("t",), "m", "blind-1 (r1)"),
            Mutant("a.y", "p", "o", "n", ("t",), "m", "blind-2 (r2)"),
            Mutant("b.z", "p", "o", "n", ("t",), "m", "mechanism")]
    assert select(made, origin="blind") == made[:2]
    assert select(made, origin="blind-2") == [made[1]]
    assert select(made, "a", "mechanism") == []
    assert select(made, "b", "mechanism") == [made[2]]


def test_list_prints_name_origin_and_mechanism(capsys):
    assert main(["--only", "der", "--list"]) == 0
    out = capsys.readouterr().out.splitlines()
    der = select(catalogue(), "der")
    assert out[-1] == f"{len(der)} mutants"
    for m, line in zip(der, out):
        assert line.split()[0] == m.name and m.origin in line and m.mechanism in line


def test_an_unknown_area_is_refused_naming_the_areas(capsys):
    assert main(["--only", "budgte", "--list"]) == 2
    err = capsys.readouterr().err
    assert "budgte" in err and "budget.costs" in err


@pytest.mark.parametrize("old", ["blind.", "blind2.", "blind3.", "oracle.", "proof."])
def test_no_name_keeps_its_rounds_prefix(old):
    assert not [m.name for m in catalogue() if m.name.startswith(old)]


def test_the_per_area_table_counts_each_verdict_under_its_area():
    from bench.mutants import by_area_table
    results = [{"name": "der.a", "verdict": "killed"}, {"name": "der.b", "verdict": "survived"},
               {"name": "derpp.c", "verdict": "killed"},
               {"name": "budget.costs.d", "verdict": "timed out"},
               {"name": "budget.costs.e", "verdict": "broken"}]
    rows = by_area_table(results).splitlines()
    assert rows[2:] == ["| budget.costs | 2 | 0 | 0 | 1 | 1 |",     # catalogue order
                        "| der | 2 | 1 | 1 | 0 | 0 |",
                        "| derpp | 1 | 1 | 0 | 0 | 0 |",
                        "| **all** | **5** | **2** | **1** | **1** | **1** |"]


def test_resume_counts_an_earlier_runs_results_and_runs_none_of_them_again(tmp_path, capsys):
    import json
    der = select(catalogue(), "der")
    earlier = {"results": [{"name": m.name, "verdict": "killed", "detail": "", "wall_s": 1.0}
                           for m in der[:-1]] +
               [{"name": der[-1].name, "verdict": "survived", "detail": "", "wall_s": 1.0}]}
    (tmp_path / "earlier.json").write_text(json.dumps(earlier))
    out = tmp_path / "out.json"
    # nothing left to run: no baseline, no pytest; the earlier verdicts are this run's
    assert main(["--only", "der", "--resume", str(tmp_path / "earlier.json"),
                 "--json", str(out)]) == 1
    text = capsys.readouterr().out
    assert f"| der | {len(der)} | {len(der) - 1} | 1 | 0 | 0 |" in text
    assert f"survived: {der[-1].name}" in text
    written = json.loads(out.read_text())
    assert written["done"] and written["total"] == len(der) and written["killed"] == len(der) - 1
