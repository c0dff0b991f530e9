import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Decoded data and generated glyphs go to a per-session folder, not the user's cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("CLBUDGET_CACHE", str(tmp_path_factory.mktemp("clbudget_cache")))
    yield
    mp.undo()
