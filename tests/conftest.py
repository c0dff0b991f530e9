import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Decoded data and generated glyphs go to a per-session folder, not the user's cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("CLBUDGET_CACHE", str(tmp_path_factory.mktemp("clbudget_cache")))
    yield
    mp.undo()


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One intra-op thread: on a small shared CI machine torch's thread pool contends with
    itself and with subprocess tests (the suite runs about 2x faster). Every comparison of
    two runs in the tests computes both at this same thread count; CLBUDGET_THREADS=1 keeps
    it so in the runs and sweeps the command line starts (experiment/threads.py)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("CLBUDGET_THREADS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
    mp.undo()


@pytest.fixture
def cifar10_tree():
    """The real CIFAR-10 JPEG tree; fails (never skips) where it is absent (tests/helpers.py)."""
    from tests.helpers import real_cifar10
    return real_cifar10()
