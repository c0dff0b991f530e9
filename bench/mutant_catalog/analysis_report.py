"""Mutants of the analysis over result rows: Pareto fronts (analysis/pareto.py), cost axes and
relative time (analysis/rows.py), AUC (analysis/auc.py), compute and report tables.

The name says what each mutant breaks, its origin field which round wrote it
(bench/mutant_catalog/origins.py tells how each round was written).

    python -m bench.mutants --only analysis.report
"""
from bench.mutant_catalog import Mutant
from bench.mutant_catalog.origins import (
    MECHANISM, PROOF, BLIND1, BLIND2, BLIND3, SURVIVORS, BLIND1_TESTS, BLIND2_TESTS, BLIND3_TESTS)

AREA = "analysis.report"
COMPUTE = "clbudget/analysis/compute.py"
REPORT = "clbudget/analysis/report.py"
SUMMARY = "clbudget/analysis/summary.py"
AUC = "clbudget/analysis/auc.py"
PARETO = "clbudget/analysis/pareto.py"
ROWS = "clbudget/analysis/rows.py"
T_ANALYSIS = "tests/test_analysis.py"
T_METRIC_DEFINITIONS = "tests/test_metric_definitions.py"
T_METRICS_REFERENCE = "tests/test_metrics_reference.py"
T_PARETO_BRUTEFORCE = "tests/test_pareto_bruteforce.py"
T_REPORT_COMPUTE = "tests/test_report_compute.py"
T_ROWS_ORACLE = "tests/test_rows_oracle.py"

MUTANTS = [
    # --- clbudget/analysis/compute.py ------------------------------------------------------------
    Mutant("analysis.report.headline_untested", COMPUTE,
           "            elif comp.significant:\n",
           "            elif True:\n",
           (f"{T_REPORT_COMPUTE}::test_headline_names_the_best_and_the_paired_test",),
           "every method is reported worse than the best, significant or not", origin=MECHANISM),
    Mutant("analysis.report.compute_non_strict_dominance", COMPUTE,
           "        if no_worse and better:\n",
           "        if no_worse:\n",
           (f"{T_PARETO_BRUTEFORCE}::test_pareto_over_several_costs_is_the_brute_force_front",),
           "identical points dominate each other and all leave the front", origin=PROOF),
    Mutant("analysis.report.gflops_ci_full_width", COMPUTE,
           'half = (s["ci_high"] - s["ci_low"]) / 2',
           'half = s["ci_high"] - s["ci_low"]',
           (f"{T_REPORT_COMPUTE}::test_table_cells_print_the_ci_half_width_in_markdown_and_html",),
           "the Compute table's training GFLOPs cell prints ± the CI's full width",
           origin=SURVIVORS),
    # --- clbudget/analysis/report.py -------------------------------------------------------------
    Mutant("analysis.report.forgetting_choice_ignored", REPORT,
           'fmt_ci(s[f"forgetting_{forgetting}"])',
           'fmt_ci(s["forgetting"])',
           (f"{T_METRIC_DEFINITIONS}::test_report_shows_the_chosen_forgetting_labelled",),
           "the report shows Chaudhry's forgetting whatever --forgetting says", origin=MECHANISM),
    Mutant("analysis.report.ci_cell_full_width", REPORT,
           "{(s['ci_high'] - s['ci_low']) / 2:.{digits}f}",
           "{(s['ci_high'] - s['ci_low']):.{digits}f}",
           (f"{T_REPORT_COMPUTE}::test_table_cells_print_the_ci_half_width_in_markdown_and_html",),
           "a Markdown/HTML table cell prints mean ± the CI's full width, not its half-width",
           origin=SURVIVORS),
    # --- clbudget/analysis/summary.py ------------------------------------------------------------
    Mutant("analysis.report.auc_percent_not_fraction", SUMMARY,
           "(name, auc_memo, 100.0)",
           "(name, auc_memo, 1.0)",
           (f"{T_METRIC_DEFINITIONS}::test_report_auc_table_is_on_memos_scale",
            f"{T_ANALYSIS}::test_auc_summary_per_seed_and_of_means"),
           "the primary AUC is % x MiB again, 100x MEMO Table 1's numbers", origin=MECHANISM),
    # --- clbudget/analysis/auc.py ----------------------------------------------------------------
    Mutant("analysis.report.auc_unsorted", AUC,
           "pts = sorted(zip(xs, ys))",
           "pts = list(zip(xs, ys))",
           (f"{T_METRICS_REFERENCE}::test_auc_is_the_trapezoid_over_mib_in_any_input_order",),
           "the trapezoid runs over the budgets in input order", origin=PROOF),
    Mutant("analysis.report.auc_megabytes", AUC,
           "(b / MIB, a)",
           "(b / 1e6, a)",
           (f"{T_METRICS_REFERENCE}::test_auc_is_the_trapezoid_over_mib_in_any_input_order",),
           "AUC over MB (10^6) instead of MiB", origin=PROOF),
    # the same slip as analysis.report.auc_unsorted, written again by another round
    Mutant("analysis.report.auc_unsorted_2", AUC,
           "pts = sorted(zip(xs, ys))",
           "pts = list(zip(xs, ys))",
           BLIND1_TESTS["analysis"],
           "trapezoid over budgets in the given order: wrong when budgets are not listed "
           "increasing", origin=BLIND1),
    Mutant("analysis.report.auc_unsorted_budgets", AUC,
           "pts = sorted(zip(xs, ys))",
           "pts = list(zip(xs, ys))",
           BLIND2_TESTS["analysis"],
           "trapezoid over points in input order: wrong (possibly negative) area when budgets are not given in increasing order",
           origin=BLIND2),
    Mutant("analysis.report.auc_decimal_mb", AUC,
           "MIB = 2 ** 20",
           "MIB = 10 ** 6",
           BLIND2_TESTS["analysis"],
           "AUC's x axis in decimal MB (10^6) as the paper writes, not MiB: every AUC x 1.048576",
           origin=BLIND2),
    Mutant("analysis.report.auc_budget_in_mb", AUC,
           "pts = [(b / MIB, a) for b, a",
           "pts = [(b / 1e6, a) for b, a",
           BLIND3_TESTS["analysis"],
           "AUC's budget axis in decimal MB instead of MiB: every area 4.9% too large",
           origin=BLIND3),
    Mutant("analysis.report.trapezoid_right_endpoint", AUC,
           "(x1 - x0) * (y0 + y1) / 2",
           "(x1 - x0) * y1",
           BLIND3_TESTS["analysis"],
           "AUC by right-endpoint rectangles instead of trapezoids: differs whenever accuracy "
           "changes between budgets", origin=BLIND3),
    # --- clbudget/analysis/pareto.py -------------------------------------------------------------
    Mutant("analysis.report.pareto_equal_y_at_larger_x_kept", PARETO,
           "if ys[i] > best_y and ys[i] == group_best:",
           "if ys[i] >= best_y and ys[i] == group_best:",
           (f"{T_PARETO_BRUTEFORCE}::test_pareto_mask_is_the_brute_force_front",),
           "a point as accurate as a cheaper one stays on the front", origin=PROOF),
    Mutant("analysis.report.pareto_group_best_ignored", PARETO,
           "if ys[i] > best_y and ys[i] == group_best:",
           "if ys[i] > best_y:",
           (f"{T_PARETO_BRUTEFORCE}::test_pareto_mask_is_the_brute_force_front",),
           "a point below another of the same cost stays on the front", origin=PROOF),
    Mutant("analysis.report.pareto_nan_on_front", PARETO,
           "return v is not None and math.isfinite(v)",
           "return v is not None",
           (f"{T_PARETO_BRUTEFORCE}::test_pareto_mask_is_the_brute_force_front",),
           "NaN / infinite coordinates enter the front", origin=PROOF),
    Mutant("analysis.report.pareto_keeps_equal_y", PARETO,
           "if ys[i] > best_y and ys[i] == group_best:",
           "if ys[i] >= best_y and ys[i] == group_best:",
           BLIND1_TESTS["analysis"],
           "a costlier point with the same accuracy as a cheaper one stays on the front",
           origin=BLIND1),
    Mutant("analysis.report.pareto_group_order", PARETO,
           "key=lambda i: (xs[i], -ys[i], i))\n    mask",
           "key=lambda i: (xs[i], ys[i], i))\n    mask",
           BLIND1_TESTS["analysis"],
           "points of equal cost sorted by increasing accuracy: only ties in cost go wrong",
           origin=BLIND1),
    Mutant("analysis.report.pareto_equal_y_larger_x_kept", PARETO,
           "if ys[i] > best_y and ys[i] == group_best:",
           "if ys[i] >= best_y and ys[i] == group_best:",
           BLIND2_TESTS["analysis"],
           "a point costing more for the same accuracy as a cheaper one stays on the front (ties in y only)",
           origin=BLIND2),
    Mutant("analysis.report.pareto_only_previous_group_binds", PARETO,
           "best_y = max(best_y, group_best)",
           "best_y = group_best",
           BLIND3_TESTS["analysis"],
           "a point is compared only with the next-cheaper cost group, not all cheaper ones: "
           "dominated points on the front when accuracy dips then recovers",
           origin=BLIND3),
    # --- clbudget/analysis/rows.py ---------------------------------------------------------------
    Mutant("analysis.report.rows_total_cost_of_held_ledger", ROWS,
           '    held = ledger_bytes(row, "strict")\n',
           "    held = held_bytes(row)\n",
           (f"{T_ROWS_ORACLE}::test_a_memo_convention_row_holds_its_memo_ledger_and_costs_its_strict_total",),
           "a memo-convention row's total cost is its memo ledger, not the strict one",
           origin=PROOF),
    Mutant("analysis.report.rows_total_cost_without_communication", ROWS,
           "return None if held is None else held + communication_bytes(row)",
           "return held",
           (f"{T_ROWS_ORACLE}::test_communication_is_added_to_the_strict_total_under_both_conventions",),
           "BMC's communication left out of the total cost", origin=PROOF),
    Mutant("analysis.report.total_cost_run_convention", ROWS,
           'held = ledger_bytes(row, "strict")',
           "held = held_bytes(row)",
           BLIND1_TESTS["analysis"],
           "BMC total cost uses the run's convention: memo-convention runs report memo bytes",
           origin=BLIND1),
    Mutant("analysis.report.cost_accuracy_per_mb", ROWS,
           "return acc / (cost / MIB)",
           "return acc / (cost / 10**6)",
           BLIND1_TESTS["analysis"],
           "cost-accuracy in % per MB (10^6), labelled per MiB", origin=BLIND1),
    Mutant("analysis.report.relative_time_any_epochs", ROWS,
           'return stream_key(row), spec_of(row).get("epochs"), device_of(row)',
           "return stream_key(row), device_of(row)",
           BLIND1_TESTS["analysis"],
           "relative time's finetune reference ignores epochs: shows only when a sweep mixes "
           "epoch counts", origin=BLIND1),
    Mutant("analysis.report.total_cost_held_convention", ROWS,
           'held = ledger_bytes(row, "strict")',
           "held = held_bytes(row)",
           BLIND2_TESTS["analysis"],
           "BMC total cost uses the ledger of the run's convention: differs only for memo-convention rows",
           origin=BLIND2),
    Mutant("analysis.report.relative_time_ignores_epochs", ROWS,
           'return stream_key(row), spec_of(row).get("epochs"), device_of(row)',
           "return stream_key(row), device_of(row)",
           BLIND2_TESTS["analysis"],
           "relative time divides by finetune rows of any epoch count: only when finetune ran at several epochs",
           origin=BLIND2),
    Mutant("analysis.report.relative_time_pooled_reference", ROWS,
           "means = [sum(v) / len(v) for v in by_seed.values()]",
           "means = [w for v in by_seed.values() for w in v]",
           BLIND2_TESTS["analysis"],
           "fallback reference = mean of all finetune rows, not mean of per-seed means: only when "
           "seeds have unequal numbers of finetune rows and the row's seed has none",
           origin=BLIND2),
    Mutant("analysis.report.breakdown_per_task_is_other", ROWS,
           'BREAKDOWN = {"model": ("params", "buffers", "per_task"),',
           'BREAKDOWN = {"model": ("params", "buffers"),',
           BLIND3_TESTS["analysis"],
           "per-task modules (CLR kernels/BN, MIND BN sets) move from the model bar to "
           "'other' in the breakdown", origin=BLIND3),
    Mutant("analysis.report.held_bytes_always_strict", ROWS,
           'return ledger_bytes(row, spec_of(row).get("convention", "strict"))',
           "return ledger_bytes(row)",
           BLIND3_TESTS["analysis"],
           "held bytes of a memo-convention run read from the strict ledger", origin=BLIND3),
    Mutant("analysis.report.critical_path_replaces_wall", ROWS,
           'return wall - sum(row.get("task_wall_s") or []) + critical',
           "return critical",
           BLIND3_TESTS["analysis"],
           "a BMC row's timed wall is its critical path alone, evaluation and the rest "
           "dropped: BMC relative time too small", origin=BLIND3),
]
