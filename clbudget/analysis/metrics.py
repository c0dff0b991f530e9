"""Moved to `clbudget.experiment.metrics` (issue 15: dependencies run one way).

This old path is kept as an alias of that very module (same object, so attribute patches and
private names behave as before); new code imports `clbudget.experiment.metrics`."""
import sys

from clbudget.experiment import metrics as _moved

sys.modules[__name__] = _moved
