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
    Mutant("fields.bool_accepts_int", "clbudget/experiment/fields.py",
           "        if isinstance(value, bool):\n            return value\n",
           "        if isinstance(value, (bool, int)):\n            return value\n",
           (f"{OPTS}::test_bad_values_are_refused_naming_field_type_and_value",),
           "a bool field takes 0/1"),
    Mutant("fields.nested_unchecked", "clbudget/experiment/fields.py",
           '            return _check_mapping(tp, value, f"{where}.")\n',
           "            return value\n",
           (f"{OPTS}::test_bad_values_are_refused_naming_field_type_and_value",
            f"{OPTS}::test_config_file_option_is_checked"),
           "a nested phase mapping (first={...}) is not checked field by field"),
]
