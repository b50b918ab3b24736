import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    # These tests run tiny tensors; on a shared CPU, several threads per op cost more than they give.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
