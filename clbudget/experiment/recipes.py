"""Moved to `clbudget.train.recipes` (issue 15: dependencies run one way).

This old path is kept as an alias of that very module (same object, so attribute patches and
private names behave as before); new code imports `clbudget.train.recipes`."""
import sys

from clbudget.train import recipes as _moved

sys.modules[__name__] = _moved
