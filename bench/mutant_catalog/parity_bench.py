"""Mutants of the PyCIL parity bench (bench/parity.py, issue 24): the schedule PyCIL is set to
under --pycil-schedule, and the class order clbudget's side is given.

    python -m bench.mutants --only parity_bench
"""
from bench.mutant_catalog import Mutant

B = "bench/parity.py"
T = "tests/test_parity_bench.py"

MUTANTS = [
    Mutant("parity_bench.unscaled_is_scaled", B,
           'if schedule == "unscaled":', 'if False:',
           (f"{T}::test_unscaled_schedule_sets_only_the_epochs",
            f"{T}::test_the_schedules_alternate_from_pycils_own_constants"),
           "--pycil-schedule unscaled still scales PyCIL's milestones"),
    Mutant("parity_bench.unscaled_keeps_pycils_epochs", B,
           '"init_epoch": spec.epochs, "epochs": spec.epochs}', '}',
           (f"{T}::test_unscaled_schedule_sets_only_the_epochs",),
           "unscaled leaves PyCIL's 200/170 epochs instead of --epochs"),
    Mutant("parity_bench.constants_not_kept", B,
           'if not hasattr(module, "_parity_original"):', 'if True:',
           (f"{T}::test_the_schedules_alternate_from_pycils_own_constants",),
           "an unscaled run after a scaled one reads the scaled milestones as PyCIL's own"),
    Mutant("parity_bench.fixed_class_order", B,
           'class_order="per-seed", device="cpu"', 'class_order="fixed", device="cpu"',
           (f"{T}::test_the_spec_uses_pycils_per_seed_order_and_exact_memory",),
           "clbudget's side shuffles with 1993 instead of PyCIL's seed"),
]
MUTANTS.append(
    Mutant("parity_bench.one_pycil_side_for_every_schedule", B,
           'return [{**r, "pycil": r["pycil_by_schedule"][schedule]} for r in rows]',
           'return list(rows)',
           (f"{T}::test_each_schedule_gets_its_own_table",),
           "every schedule's table compares against the first schedule's PyCIL run"))
