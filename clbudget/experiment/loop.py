"""Moved to `clbudget.train.loop` (issue 15: dependencies run one way).

This old path is kept as an alias of that very module (same object, so attribute patches and
private names behave as before); new code imports `clbudget.train.loop`."""
import sys

from clbudget.train import loop as _moved

sys.modules[__name__] = _moved
