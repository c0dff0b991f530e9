"""Mutants of the PyCIL parity bench (bench/parity.py): the schedule PyCIL is set to under
--pycil-schedule, and the class order clbudget's side is given.

The name says what each mutant breaks, its origin field which round wrote it
(bench/mutant_catalog/origins.py tells how each round was written).

    python -m bench.mutants --only parity_bench
"""
from bench.mutant_catalog import Mutant
from bench.mutant_catalog.origins import MECHANISM

AREA = "parity_bench"
BENCH_PARITY = "bench/parity.py"
T_PARITY_BENCH = "tests/test_parity_bench.py"

MUTANTS = [
    # --- bench/parity.py -------------------------------------------------------------------------
    Mutant("parity_bench.unscaled_is_scaled", BENCH_PARITY,
           'if schedule == "unscaled":',
           'if False:',
           (f"{T_PARITY_BENCH}::test_unscaled_schedule_sets_only_the_epochs",
            f"{T_PARITY_BENCH}::test_the_schedules_alternate_from_pycils_own_constants"),
           "--pycil-schedule unscaled still scales PyCIL's milestones", origin=MECHANISM),
    Mutant("parity_bench.unscaled_keeps_pycils_epochs", BENCH_PARITY,
           '"init_epoch": spec.epochs, "epochs": spec.epochs}',
           '}',
           (f"{T_PARITY_BENCH}::test_unscaled_schedule_sets_only_the_epochs",),
           "unscaled leaves PyCIL's 200/170 epochs instead of --epochs", origin=MECHANISM),
    Mutant("parity_bench.constants_not_kept", BENCH_PARITY,
           'if not hasattr(module, "_parity_original"):',
           'if True:',
           (f"{T_PARITY_BENCH}::test_the_schedules_alternate_from_pycils_own_constants",),
           "an unscaled run after a scaled one reads the scaled milestones as PyCIL's own",
           origin=MECHANISM),
    Mutant("parity_bench.fixed_class_order", BENCH_PARITY,
           'p.add_argument("--clbudget-class-order", default="per-seed"',
           'p.add_argument("--clbudget-class-order", default="fixed"',
           (f"{T_PARITY_BENCH}::test_the_spec_uses_pycils_per_seed_order_and_exact_memory",),
           "clbudget's side shuffles with 1993 instead of PyCIL's seed", origin=MECHANISM),
    Mutant("parity_bench.one_pycil_side_for_every_schedule", BENCH_PARITY,
           'return [{**r, "pycil": r["pycil_by_schedule"][schedule]} for r in rows]',
           'return list(rows)',
           (f"{T_PARITY_BENCH}::test_each_schedule_gets_its_own_table",),
           "every schedule's table compares against the first schedule's PyCIL run",
           origin=MECHANISM),
    Mutant("parity_bench.spec_ignores_clbudget_class_order", BENCH_PARITY,
           "class_order=args.clbudget_class_order,",
           'class_order="per-seed",',
           ('tests/test_parity_bench.py::test_the_unscaled_comparison_arguments',),
           "--clbudget-class-order fixed still trains clbudget on PyCIL's per-seed orders",
           origin=MECHANISM),
    Mutant("parity_bench.pycil_own_order_ignored", BENCH_PARITY,
           "    if pycil_order_seed is not None:\n",
           "    if False:\n",
           (f"{T_PARITY_BENCH}::test_pycil_keeps_its_own_order_beside_clbudgets_fixed_one",),
           "PyCIL is fed clbudget's fixed order instead of its own per-seed one",
           origin=MECHANISM),
    Mutant("parity_bench.pycil_own_order_permutes_clbudgets", BENCH_PARITY,
           "order = np.sort(order)[np.random.permutation(len(order))]",
           "order = order[np.random.permutation(len(order))]",
           (f"{T_PARITY_BENCH}::test_pycil_keeps_its_own_order_beside_clbudgets_fixed_one",),
           "PyCIL's own order permutes clbudget's order, not range(k) as data_manager.py does",
           origin=MECHANISM),
    Mutant("parity_bench.trainer_seed_wrong", BENCH_PARITY,
           "TRAINER_TORCH_SEED = 1 ",
           "TRAINER_TORCH_SEED = 0 ",
           (f"{T_PARITY_BENCH}::test_the_trainers_fixed_torch_seed_is_the_one_pycil_sets",
            f"{T_PARITY_BENCH}::test_the_trainers_fixed_torch_seed_is_pycils"),
           "--pycil-torch-seed fixed seeds torch with 0, not trainer.py's 1", origin=MECHANISM),
]
