"""Shared fixtures of the model tests: a one-thread guard."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Run a module's tests on one torch thread.

    Tiny matrices: with other processes on the 2 cores, OpenMP's spinning threads make each
    forward ~100x slower than one thread. Opt in with ``pytestmark = usefixtures("one_thread")``.
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
