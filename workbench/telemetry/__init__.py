"""Telemetry: HDR latency histograms, windows aggregated from client and server timings, subscribers,
and run records on disk. Names are imported on first use."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "LatencyHistogram": "workbench.telemetry.histogram",
    "LatencyStats": "workbench.telemetry.histogram",
    "Window": "workbench.telemetry.window",
    "ClientReport": "workbench.telemetry.window",
    "TelemetryHub": "workbench.telemetry.hub",
    "RunRecord": "workbench.telemetry.runs",
    "compare_runs": "workbench.telemetry.runs",
    "list_runs": "workbench.telemetry.runs",
    "runs_dir": "workbench.telemetry.runs",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'workbench.telemetry' has no attribute {name!r}")
