"""Helpers of the tuner tests."""

from __future__ import annotations

import psutil


def children() -> list[psutil.Process]:
    """Processes this test process started (workers, load generators), not multiprocessing's tracker."""
    out = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if "resource_tracker" not in " ".join(proc.cmdline()):
                out.append(proc)
        except psutil.NoSuchProcess:
            pass
    return out
