"""Where the catalogue's mutants came from: the `origin` field of each `Mutant`, and how each
round was written.  This module holds no mutants; the area modules import its names.

The kill rates in BENCHMARKS.md are per round, and a round's rate means something only with
how it was written, so that text is kept here:

- mechanism: written by the contributor of a mechanism, with the test that guards it, one per
  mechanism a method's or a module's docstring names (issues 12, 20-25 and later).

- proof (issue 23 B, 2026-12-05): mutants proven by the independent implementations of issue
  23 part B: metrics against a plain-loop reference, evaluate against a brute-force count,
  statistics against scipy, Pareto fronts against an O(n^2) check, the cost axes of rows by
  hand, every recipe's optimizer and schedule as `Trainer.fit` builds them, and the papers'
  losses by value.  Each is a realistic one-line bug: a ddof, an off-by-one, a wrong
  direction, a wrong weighting, a milestone not scaled, an unseen class not masked.

- oracle (issue 23 A, 2026-12-05): mutants of byte accounting and allocation, guarded by the
  hand-counted oracles (tests/test_oracle_bytes.py, tests/oracle_counts.py) and the
  allocator's properties (tests/test_allocator_properties.py).  Each is a realistic one-line
  slip: a unit's size, a rounding, a stream shape assumed (CIFAR-100's 100 classes, 3x32x32),
  a convention's item, a stored dtype's bytes, the ladder's direction or reserve.

- blind-1 (issue 23, "keep yourselves honest"): written blind on 2026-12-05 from the code at
  commit 3fb84297e4a1566d829c623bbf8ac9bcf2885b7c, by a helper that read clbudget/, README.md,
  DESIGN.md and the seeds but none of tests/ nor the other catalogue modules.  Each is a
  one-line bug a careless but competent engineer could write; most change a reported number
  only in some situations (the mechanism says which).  Someone who had read the tests, not
  their author, chose the test files of each area (BLIND1_TESTS).

- blind-2: written blind on 2026-12-05 from the code at commit
  055c2c3d1326b804ea9cef42217fe9feefc8af6c, by a helper that read clbudget/, README.md,
  DESIGN.md and the catalogue's format only: no test file, no other catalogue module.  Each
  is a one-line (or one-statement) bug a careless but competent engineer could write; the
  mechanism says what it changes and when it shows.  The tests guarding each area were chosen
  by someone other than their author, before the round was run (BLIND2_TESTS).

- blind-3: written blind on 2026-12-05 from the code at commit
  d8f53c33136742a53fe334a2ac1580dc8fe4565d, by a helper that read clbudget/, README.md,
  DESIGN.md and the catalogue's format only: no test file, no other catalogue module.  Each
  is a one-statement bug a careless but competent engineer could write: a dropped dtype or
  size factor, floor vs round, an off-by-one, a one-sided test, a swapped ratio, a missing
  `abs`, a wrong slice of logits.  None was checked against the tests before they were run;
  each was checked only to apply once, to import, and to change behaviour on the input its
  mechanism line names.  A first draft of 141 candidates was screened only by the overlap
  check (which prints the names of the round's mutants whose (file, text) an earlier round
  already uses, never the earlier mutants): the 68 it named were dropped, and at most two
  mutants were kept per function.  The test files per area were chosen before the mutants
  were read (BLIND3_TESTS).

- survivors (2026-12-07): mutants that survived the suite when written blind (issue "kill
  the mutants the suite still lets through"), each with the test written for it afterwards,
  from the formula or the reference, not from the code: the "mean ± CI" cells of the report's
  tables printed at the full interval width; iCaRL's linear-head (CNN) task-aware curve as the
  plain mean over tasks while every other curve is per test image; MIND's class-incremental
  path (a subnetwork leaving out its own weights at inference, and the fan of the head's
  He-normal redraw without weight sharing).

Until 2026-12-07 the catalogue was kept by round (blind.py, blind2.py, blind3.py, oracles.py,
proofs.py, survivors.py, ...) and the names said so ("blind2.loop.milestones_floor"); the
names now say the area and what breaks ("loop.train.milestones_floor"), the round is here.

    python -m bench.mutants --origin blind-2 --list
"""
from __future__ import annotations

MECHANISM = "mechanism"
PROOF = "proof (issue 23 B, 2026-12-05)"
ORACLE = "oracle (issue 23 A, 2026-12-05)"
BLIND1 = "blind-1 (2026-12-05, commit 3fb8429)"
BLIND2 = "blind-2 (2026-12-05, commit 055c2c3)"
BLIND3 = "blind-3 (2026-12-05, commit d8f53c3)"
SURVIVORS = "survivors (2026-12-07)"
ORIGINS = (MECHANISM, PROOF, ORACLE, BLIND1, BLIND2, BLIND3, SURVIVORS)

# The test files each blind round's mutants run against, by the round's own areas (budget,
# storage, analysis, loop, losses: the areas the round's author wrote for, not the catalogue's
# modules).  Round 1's were chosen by someone who had read the tests; after the round,
# tests/test_blind_round_gaps.py was written against its survivors and added.
BLIND1_TESTS = {
    "budget": ("tests/test_oracle_bytes.py", "tests/test_allocator_properties.py",
               "tests/test_budget.py", "tests/test_memo_convention.py", "tests/test_stored.py",
               "tests/test_codecs.py", "tests/test_blind_round_gaps.py"),
    "storage": ("tests/test_oracle_bytes.py", "tests/test_stored.py", "tests/test_codecs.py",
                "tests/test_codecs_reservoir.py", "tests/test_allocator_properties.py",
                "tests/test_blind_round_gaps.py"),
    "analysis": ("tests/test_metrics_reference.py", "tests/test_evaluate_oracle.py",
                 "tests/test_stats_scipy.py", "tests/test_pareto_bruteforce.py",
                 "tests/test_rows_oracle.py", "tests/test_analysis.py",
                 "tests/test_metric_definitions.py", "tests/test_report_compute.py",
                 "tests/test_blind_round_gaps.py"),
    "loop": ("tests/test_loop_recipes.py", "tests/test_recipes.py", "tests/test_parity.py",
             "tests/test_blind_round_gaps.py"),
    "losses": ("tests/test_method_losses.py", "tests/test_paper_methods.py",
               "tests/test_expanding_methods.py"),
}

# Round 2: the first round's areas plus the feature, CLR-backbone and multi-domain tests,
# chosen before the round was run; tests/test_blind2_gaps.py (written against its survivors
# afterwards) runs in every area.
_BLIND2_EXTRA = {"budget": ("tests/test_features.py", "tests/test_clr_backbone.py",
                            "tests/test_blind2_gaps.py"),
                 "storage": ("tests/test_blind2_gaps.py",),
                 "analysis": ("tests/test_multidomain.py", "tests/test_blind2_gaps.py"),
                 "loop": ("tests/test_blind2_gaps.py",),
                 "losses": ("tests/test_multidomain.py", "tests/test_blind2_gaps.py")}
BLIND2_TESTS = {area: tests + _BLIND2_EXTRA.get(area, ()) for area, tests in BLIND1_TESTS.items()}

# Round 3: the second round's files plus the end-to-end files that run methods and rows
# (test_ray, test_gpu_check, test_faults and test_sweep left out: one to eight minutes each),
# chosen before reading the round.  Added after the round (not blind): the tests written
# against its survivors, tests/test_blind3_gaps.py and tests/test_bmc_losses_by_value.py.
_BLIND3_EXTRA = {
    "budget": ("tests/test_run.py", "tests/test_methods.py"),
    "storage": ("tests/test_features.py", "tests/test_run.py", "tests/test_methods.py"),
    "analysis": ("tests/test_audit.py", "tests/test_eval_batch.py", "tests/test_run.py"),
    "loop": ("tests/test_distillation_methods.py", "tests/test_paper_methods.py",
             "tests/test_features.py", "tests/test_streams.py", "tests/test_methods.py"),
    "losses": ("tests/test_distillation_methods.py", "tests/test_parity.py",
               "tests/test_features.py", "tests/test_methods.py"),
}
_BLIND3_AFTER = {"budget": ("tests/test_blind3_gaps.py",),
                 "analysis": ("tests/test_blind3_gaps.py",),
                 "loop": ("tests/test_blind3_gaps.py",),
                 "losses": ("tests/test_blind3_gaps.py", "tests/test_bmc_losses_by_value.py")}
BLIND3_TESTS = {area: tests + tuple(t for t in _BLIND3_EXTRA.get(area, ()) if t not in tests)
                + _BLIND3_AFTER.get(area, ())
                for area, tests in BLIND2_TESTS.items()}
