"""Mutants of the house's layering (issue 15, tests/test_layers.py): behaviour unchanged, a
dependency made to run upward again; the layer test must fail."""
from bench.mutant_catalog import Mutant

MUTANTS = [
    Mutant("layers.budget_imports_methods", "clbudget/budget/costs.py",
           "        for load in METHOD_LOADERS:\n            load(name)\n",
           "        from clbudget.methods.registry import method_class\n"
           "        method_class(name)\n",
           ("tests/test_layers.py::test_no_module_imports_from_a_layer_above_its_own",),
           "budget/ loads outside methods through the registry again (a lazy upward import)"),
    Mutant("layers.method_imports_experiment", "clbudget/methods/bmc_experts.py",
           "    from clbudget.optional import import_ray\n",
           "    from clbudget.experiment.executors import import_ray\n",
           ("tests/test_layers.py::test_no_module_imports_from_a_layer_above_its_own",),
           "BMC asks the experiment layer for Ray again"),
    Mutant("layers.streams_circle", "clbudget/streams/glyphs.py",
           "from .base import Dataset, Split, cache_key, cached_split\n",
           "from .data import Dataset, Split, cache_key, cached_split\n",
           ("tests/test_layers.py::test_streams_modules_import_each_other_without_a_cycle",),
           "the glyph generator imports its base types through the loader (the old circle)"),
]
