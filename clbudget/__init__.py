"""clbudget: memory-budget-aware evaluation of class-incremental continual learning."""


def load_results(path, status: str | None = "finished"):
    """A results store (sweep folder or SQLite file) as a pandas DataFrame, one row per run
    with flat columns; see clbudget/results.py for the columns."""
    from clbudget.results import load_results as load
    return load(path, status)
