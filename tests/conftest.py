"""Shared test settings."""

from __future__ import annotations

import torch


def pytest_configure() -> None:
    # The tests use tiny tensors: one intra-op thread per test process is faster than two threads contending
    # for the 2 cores (the suite runs as two pytest-xdist workers, see `make test`).
    torch.set_num_threads(1)
