"""Progress bars: tqdm on a terminal, silent under --json or in tests."""
from __future__ import annotations


class _Silent:
    def __init__(self, iterable):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable)

    def set_postfix(self, **kwargs):
        pass

    def update(self, n=1):
        pass

    def close(self):
        pass


def progress_bar(iterable, desc: str = "", enabled: bool = True, **kwargs):
    if not enabled:
        return _Silent(iterable)
    from tqdm.auto import tqdm
    return tqdm(iterable, desc=desc, leave=False, dynamic_ncols=True, **kwargs)
