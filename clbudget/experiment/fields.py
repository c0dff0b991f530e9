"""Moved to `clbudget.train.fields` (issue 15: dependencies run one way).

This old path is kept as an alias of that very module (same object, so attribute patches and
private names behave as before); new code imports `clbudget.train.fields`."""
import sys

from clbudget.train import fields as _moved

sys.modules[__name__] = _moved
