"""Shared fixtures of the training tests: the embedded digits data only (no downloads)."""

import pytest
import torch


@pytest.fixture(scope="session")
def digits():
    from amc.train.data import load_digits

    return load_digits()


@pytest.fixture(autouse=True)
def _one_thread():
    # The tests run two pytest workers on two cores; one torch thread each.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
