"""Shared fixtures. Zoo models train once into the user's cache (or $WORKBENCH_CACHE) and are reused."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest


def wait_until(condition: Callable[[], object], timeout_s: float = 10.0, interval_s: float = 0.02) -> object:
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout_s} s")
        time.sleep(interval_s)


@pytest.fixture(scope="session")
def zoo_mlp():
    from workbench.models import load_zoo

    return load_zoo("mlp", progress=False)
