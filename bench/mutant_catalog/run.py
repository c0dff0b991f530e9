"""Mutants of one run (experiment/run.py): the budget check on the built ledger, option types
(train/fields.py), the run key.

The name says what each mutant breaks, its origin field which round wrote it
(bench/mutant_catalog/origins.py tells how each round was written).

    python -m bench.mutants --only run
"""
from bench.mutant_catalog import Mutant
from bench.mutant_catalog.origins import MECHANISM

AREA = "run"
RUN = "clbudget/experiment/run.py"
FIELDS = "clbudget/train/fields.py"
T_MEMO_CONVENTION = "tests/test_memo_convention.py"
T_METHODS = "tests/test_methods.py"
T_OPTION_TYPES = "tests/test_option_types.py"

MUTANTS = [
    # --- clbudget/experiment/run.py --------------------------------------------------------------
    Mutant("run.budget_checks_strict_ledger", RUN,
           "    ledger = method.ledger(convention)\n",
           '    ledger = method.ledger("strict")\n',
           (f"{T_MEMO_CONVENTION}::test_check_budget_binds_the_allocations_convention",
            f"{T_MEMO_CONVENTION}::test_issue_command_finishes_every_task_under_the_memo_convention",
            f"{T_METHODS}::test_method_contract"),
           "the run checks the strict ledger whatever convention sized the budget (issue 17)",
           origin=MECHANISM),
    Mutant("run.budget_checks_memo_ledger", RUN,
           "    ledger = method.ledger(convention)\n",
           '    ledger = method.ledger("memo")\n',
           (f"{T_MEMO_CONVENTION}::test_check_budget_binds_the_allocations_convention",),
           "the run checks the memo ledger, letting a strict budget's overflow pass",
           origin=MECHANISM),
    Mutant("run.option_types_unchecked", RUN,
           '    options = check_fields(cls.Config, options, f"{cls.name} option")\n',
           "",
           (f"{T_OPTION_TYPES}::test_method_config_checks_types_and_applies_good_values",
            f"{T_OPTION_TYPES}::test_cli_bad_option_exits_2_in_one_line_before_reading_data"),
           "method options reach the Config unchecked (T=abc trains, then a TypeError)",
           origin=MECHANISM),
    Mutant("run.key_hashes_options_as_given", RUN,
           "            d[\"method_options\"] = {k: v for k, v in given.items()\n",
           "            d[\"method_options\"] = {k: v for k, v in d[\"method_options\"].items()\n",
           (f"{T_OPTION_TYPES}::test_a_run_key_holds_option_values_as_the_config_does",),
           "T=2 and T=2.0 get two run keys: a sweep trains the same run twice", origin=MECHANISM),
    # --- clbudget/train/fields.py ----------------------------------------------------------------
    Mutant("run.fields_bool_accepts_int", FIELDS,
           "        if isinstance(value, bool):\n            return value\n",
           "        if isinstance(value, (bool, int)):\n            return value\n",
           (f"{T_OPTION_TYPES}::test_bad_values_are_refused_naming_field_type_and_value",),
           "a bool field takes 0/1", origin=MECHANISM),
    Mutant("run.fields_nested_unchecked", FIELDS,
           '            return _check_mapping(tp, value, f"{where}.")\n',
           "            return value\n",
           (f"{T_OPTION_TYPES}::test_bad_values_are_refused_naming_field_type_and_value",
            f"{T_OPTION_TYPES}::test_config_file_option_is_checked"),
           "a nested phase mapping (first={...}) is not checked field by field", origin=MECHANISM),
]
