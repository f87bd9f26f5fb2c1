"""Shared fixtures of the training tests: the embedded digits data only (no downloads)."""

import pytest
import scipy.linalg  # noqa: F401  (loaded before the thread limit, which covers loaded libraries only)
import torch
from threadpoolctl import threadpool_limits


@pytest.fixture(scope="session")
def digits():
    from amc.train.data import load_digits

    return load_digits()


@pytest.fixture(autouse=True)
def _one_thread():
    # The tests run two pytest workers on two cores: one torch and one BLAS
    # thread each, because oversubscribed BLAS threads slow the analog
    # model's eigenvalue routines by orders of magnitude.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(previous)
