"""Mutants of the run's budget check and of the metrics over result rows (run.py, analysis/)."""
from bench.mutant_catalog import Mutant

MEMO = "tests/test_memo_convention.py"

MUTANTS = [
    Mutant("run.budget_checks_strict_ledger", "clbudget/experiment/run.py",
           "    ledger = method.ledger(convention)\n",
           '    ledger = method.ledger("strict")\n',
           (f"{MEMO}::test_check_budget_binds_the_allocations_convention",
            f"{MEMO}::test_issue_command_finishes_every_task_under_the_memo_convention",
            "tests/test_methods.py::test_method_contract"),
           "the run checks the strict ledger whatever convention sized the budget (issue 17)"),
    Mutant("run.budget_checks_memo_ledger", "clbudget/experiment/run.py",
           "    ledger = method.ledger(convention)\n",
           '    ledger = method.ledger("memo")\n',
           (f"{MEMO}::test_check_budget_binds_the_allocations_convention",),
           "the run checks the memo ledger, letting a strict budget's overflow pass"),
]

OPTS = "tests/test_option_types.py"

MUTANTS += [
    Mutant("run.option_types_unchecked", "clbudget/experiment/run.py",
           '    options = check_fields(cls.Config, options, f"{cls.name} option")\n',
           "",
           (f"{OPTS}::test_method_config_checks_types_and_applies_good_values",
            f"{OPTS}::test_cli_bad_option_exits_2_in_one_line_before_reading_data"),
           "method options reach the Config unchecked (T=abc trains, then a TypeError)"),
    Mutant("fields.bool_accepts_int", "clbudget/train/fields.py",
           "        if isinstance(value, bool):\n            return value\n",
           "        if isinstance(value, (bool, int)):\n            return value\n",
           (f"{OPTS}::test_bad_values_are_refused_naming_field_type_and_value",),
           "a bool field takes 0/1"),
    Mutant("fields.nested_unchecked", "clbudget/train/fields.py",
           '            return _check_mapping(tp, value, f"{where}.")\n',
           "            return value\n",
           (f"{OPTS}::test_bad_values_are_refused_naming_field_type_and_value",
            f"{OPTS}::test_config_file_option_is_checked"),
           "a nested phase mapping (first={...}) is not checked field by field"),
]

METRICS = "tests/test_metric_definitions.py"

MUTANTS += [
    Mutant("metrics.clipped_forgetting_without_last_row", "clbudget/experiment/metrics.py",
           "max(A[t][j] for t in range(j, T)) - A[T - 1][j]",
           "max(A[t][j] for t in range(j, T - 1)) - A[T - 1][j]",
           (f"{METRICS}::test_forgetting_definitions_by_hand",
            f"{METRICS}::test_clipped_is_the_toolkits_formula"),
           "the PyCIL/Mammoth forgetting leaves out the last row, so it is not clipped at 0"),
    Mutant("metrics.chaudhry_forgetting_with_last_row", "clbudget/experiment/metrics.py",
           "max(A[t][j] for t in range(j, T - 1)) - A[T - 1][j]",
           "max(A[t][j] for t in range(j, T)) - A[T - 1][j]",
           (f"{METRICS}::test_forgetting_definitions_by_hand",),
           "Chaudhry's forgetting takes the last row into its max (never negative)"),
    Mutant("report.forgetting_choice_ignored", "clbudget/analysis/report.py",
           'fmt_ci(s[f"forgetting_{forgetting}"])', 'fmt_ci(s["forgetting"])',
           (f"{METRICS}::test_report_shows_the_chosen_forgetting_labelled",),
           "the report shows Chaudhry's forgetting whatever --forgetting says"),
    Mutant("auc.percent_not_fraction", "clbudget/analysis/summary.py",
           "(name, auc_memo, 100.0)", "(name, auc_memo, 1.0)",
           (f"{METRICS}::test_report_auc_table_is_on_memos_scale",
            "tests/test_analysis.py::test_auc_summary_per_seed_and_of_means"),
           "the primary AUC is % x MiB again, 100x MEMO Table 1's numbers"),
]

MUTANTS += [
    Mutant("loop.predict_ignores_eval_batch_size", "clbudget/train/loop.py",
           "        batch_size = batch_size or self.eval_batch_size\n",
           "        batch_size = batch_size or 1024\n",
           ("tests/test_eval_batch.py::test_predict_batches_by_the_devices_eval_batch_size",),
           "evaluation ignores the per-device batch (back to 1024 on CPU)"),
    Mutant("run.key_hashes_options_as_given", "clbudget/experiment/run.py",
           "            d[\"method_options\"] = {k: v for k, v in given.items()\n",
           "            d[\"method_options\"] = {k: v for k, v in d[\"method_options\"].items()\n",
           ("tests/test_option_types.py::test_a_run_key_holds_option_values_as_the_config_does",),
           "T=2 and T=2.0 get two run keys: a sweep trains the same run twice"),
]
