"""Telemetry: HDR latency histograms, windows aggregated from client and server timings, subscribers,
and run records on disk. Names are imported on first use."""

from __future__ import annotations

from workbench._lazy import lazy_getattr

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


__getattr__ = lazy_getattr(__name__, _EXPORTS)
