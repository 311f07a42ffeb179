"""Run records built from real windows (a TelemetryHub fed on a test clock), in a temporary runs folder."""

from __future__ import annotations

import pytest

from workbench.serving.records import RequestRecord
from workbench.telemetry.histogram import LatencyHistogram
from workbench.telemetry.hub import TelemetryHub
from workbench.telemetry.window import ClientReport


@pytest.fixture(autouse=True)
def runs_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


def windows_for(latencies_s: list[float], n_windows: int = 3):
    """Windows with client latencies and matching server records, closed by a hub."""
    hub = TelemetryHub(window_ms=500, grace_ms=0, origin=0.0, clock=lambda: 0.0, wall_clock=lambda: 1e9)
    for k in range(n_windows):
        hist = LatencyHistogram()
        hist.record_many(latencies_s)
        hub.add_client(ClientReport(source="g", index=k, latency=hist.encode(), sent=len(latencies_s),
                                    ok=len(latencies_s), errors={}, not_sent=0, in_flight=1, lag_max_ms=0.2,
                                    cpu_fraction=0.1))
        hub.add_records([RequestRecord(request_id=i, model="m", outcome="ok", rows=1, received_at=k * 0.5 + 0.01,
                                       completed_at=k * 0.5 + 0.01 + v / 2, worker="m/r0", batch_size=1,
                                       compute_start=k * 0.5 + 0.01, compute_end=k * 0.5 + 0.01 + v / 4)
                         for i, v in enumerate(latencies_s)])
    return hub.tick(n_windows * 0.5)


@pytest.fixture
def make_windows():
    return windows_for
