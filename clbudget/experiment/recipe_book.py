"""Moved to `clbudget.train.recipe_book` (issue 15: dependencies run one way).

This old path is kept as an alias of that very module (same object, so attribute patches and
private names behave as before); new code imports `clbudget.train.recipe_book`."""
import sys

from clbudget.train import recipe_book as _moved

sys.modules[__name__] = _moved
