"""Optional dependencies, imported on use with an error that names the extra to install.

The bottom layer (beside progress.py): both the experiment executors and BMC's expert
training (methods/bmc.py) ask for Ray here, so methods/ need not import experiment/.
"""
from __future__ import annotations

RAY_PIN = "ray==2.60.0"


class RayUnavailable(ValueError):
    """Ray was asked for but is not installed (a user error: one line, exit status 2)."""


def import_ray(flag: str = "--executor ray"):
    """The `ray` module, imported lazily; a clear error naming the extra if it is missing."""
    try:
        import ray
    except ImportError as e:
        raise RayUnavailable(
            f"{flag} needs Ray, which is not installed here ({e}); install the optional extra "
            f"with `pip install \"clbudget[ray]\"` ({RAY_PIN}), or use the local executor "
            f"(the default)") from None
    return ray
