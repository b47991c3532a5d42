"""A small digits workload built once per test session into a temporary cache.

Tiny models run fastest on one thread (and this machine is shared), so every test in this
folder runs with ``torch.set_num_threads(1)``, restored afterwards.
"""

import pytest
import torch

SMALL = {"hidden": 24, "depth": 2, "base_epochs": 4, "expert_epochs": 4}


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def small():
    """Model-size options of the small workload (to build matching modules in tests)."""
    return dict(SMALL)


@pytest.fixture(scope="session")
def digits_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("bbopt-cache")


@pytest.fixture(scope="session")
def digits(digits_cache):
    from bbopt.merge.workloads import digits_workload

    return digits_workload(0, cache_dir=digits_cache, **SMALL)
