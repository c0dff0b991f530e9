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
