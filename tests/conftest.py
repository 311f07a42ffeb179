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


@pytest.fixture(autouse=True, scope="module")
def no_server_left_running(request):
    """A module that starts a serving loop must close it: a leftover Server keeps restarting workers."""
    import threading

    before = {t.ident for t in threading.enumerate() if t.name == "workbench-serving"}
    yield
    deadline = time.monotonic() + 10
    while True:
        left = [t for t in threading.enumerate() if t.name == "workbench-serving" and t.ident not in before]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if left:  # reported, not failed: the module's own tests decide what is a leak of theirs
        import warnings

        warnings.warn(f"{request.module.__name__} left {len(left)} Server(s) running", stacklevel=1)


@pytest.fixture(autouse=True, scope="module")
def no_process_left_running(request):
    """Name the child processes a module started and left alive (reported, not failed: a later test that
    counts processes would otherwise fail without saying whose they are)."""
    import psutil

    def alive() -> dict[int, str]:
        out = {}
        for p in psutil.Process().children(recursive=True):
            try:
                cmd = " ".join(p.cmdline())
            except psutil.Error:
                continue
            if "resource_tracker" not in cmd:
                out[p.pid] = cmd
        return out

    before = set(alive())
    yield
    deadline = time.monotonic() + 10
    while True:
        left = {pid: cmd for pid, cmd in alive().items() if pid not in before}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if left:
        import warnings

        names = "; ".join(f"{pid}: {cmd[:160]}" for pid, cmd in left.items())
        warnings.warn(f"{request.module.__name__} left {len(left)} process(es) running: {names}", stacklevel=1)
