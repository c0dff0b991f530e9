"""The mutant catalogue stays applicable: every mutant's text occurs once in its file and
every test it names exists (`python -m bench.mutants` runs them; this only checks the list)."""
from __future__ import annotations

from pathlib import Path

from bench.mutant_catalog import catalogue
from bench.mutants import ROOT


def test_every_mutant_applies_once_and_names_existing_tests():
    mutants = catalogue()
    for m in mutants:
        text = (ROOT / m.path).read_text()
        assert text.count(m.old) == 1, f"{m.name}: text occurs {text.count(m.old)}x in {m.path}"
        assert m.old != m.new, m.name
        assert m.tests, f"{m.name} names no test"
        for node in m.tests:
            file, _, func = node.partition("::")
            source = (ROOT / file).read_text()
            assert Path(ROOT / file).exists(), f"{m.name}: no test file {file}"
            if func:
                assert f"def {func.split('[')[0]}(" in source, f"{m.name}: no test {node}"
