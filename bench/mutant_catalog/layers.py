"""Mutants of the layering: a package importing one it must not.

The name says what each mutant breaks, its origin field which round wrote it
(bench/mutant_catalog/origins.py tells how each round was written).

    python -m bench.mutants --only layers
"""
from bench.mutant_catalog import Mutant
from bench.mutant_catalog.origins import MECHANISM

AREA = "layers"
COSTS = "clbudget/budget/costs.py"
BMC = "clbudget/methods/bmc.py"
BMC_EXPERTS = "clbudget/methods/bmc_experts.py"
GLYPHS = "clbudget/streams/glyphs.py"
T_LAYERS = "tests/test_layers.py"

MUTANTS = [
    # --- clbudget/budget/costs.py ----------------------------------------------------------------
    Mutant("layers.budget_imports_methods", COSTS,
           "        for load in METHOD_LOADERS:\n            load(name)\n",
           "        from clbudget.methods.registry import method_class\n"
           "        method_class(name)\n",
           (f"{T_LAYERS}::test_no_module_imports_from_a_layer_above_its_own",),
           "budget/ loads outside methods through the registry again (a lazy upward import)",
           origin=MECHANISM),
    # --- clbudget/methods/bmc.py -----------------------------------------------------------------
    Mutant("layers.method_imports_experiment", BMC_EXPERTS,
           "    from clbudget.optional import import_ray\n",
           "    from clbudget.experiment.executors import import_ray\n",
           (f"{T_LAYERS}::test_no_module_imports_from_a_layer_above_its_own",),
           "BMC asks the experiment layer for Ray again", origin=MECHANISM),
    # --- clbudget/streams/glyphs.py --------------------------------------------------------------
    Mutant("layers.streams_circle", GLYPHS,
           "from .base import Dataset, Split, cache_key, cached_split\n",
           "from .data import Dataset, Split, cache_key, cached_split\n",
           (f"{T_LAYERS}::test_streams_modules_import_each_other_without_a_cycle",),
           "the glyph generator imports its base types through the loader (the old circle)",
           origin=MECHANISM),
]
