import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The ZO tests run tiny ops; on a shared 2-core box extra intra-op threads only spin."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
