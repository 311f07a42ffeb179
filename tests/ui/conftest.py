"""Fixtures for the UI tests: private run-record folders, sessions that always close, windows built
from real latencies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _runs_folder(tmp_path, monkeypatch):
    """Run records of these tests go to a temporary folder, never to the user's."""
    monkeypatch.setenv("WORKBENCH_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


@pytest.fixture
def session(tmp_path):
    from workbench.ui.session import WorkbenchSession

    s = WorkbenchSession(runs_dir=str(tmp_path / "runs"))
    try:
        yield s
    finally:
        s.close()


def make_window(index: int, *, latencies_ms: Sequence[float] = (), server_ms: Sequence[float] = (),
                errors: dict[str, int] | None = None, server_errors: dict[str, int] | None = None,
                batch_sizes: dict[int, int] | None = None, worker_busy: dict[str, float] | None = None,
                changes: Sequence[dict[str, Any]] = (), queue_depth: int = 0, window_s: float = 0.5) -> Any:
    """A real telemetry Window whose client (``latencies_ms``) and server figures come from histograms."""
    from workbench.telemetry.histogram import LatencyHistogram
    from workbench.telemetry.window import Window

    fields: dict[str, Any] = {"histograms": {}}
    if latencies_ms:
        h = LatencyHistogram()
        h.record_many([v / 1000 for v in latencies_ms])
        fields.update(latency=h.stats(), ok=len(latencies_ms), sent=len(latencies_ms))
        fields["histograms"]["latency"] = h.encode()
    if server_ms:
        h = LatencyHistogram()
        h.record_many([v / 1000 for v in server_ms])
        fields.update(server_latency=h.stats(), server_requests=len(server_ms))
        fields["histograms"]["server_latency"] = h.encode()
    return Window(index=index, start_s=index * window_s, end_s=(index + 1) * window_s, wall_time=1e9 + index,
                  errors=dict(errors or {}), server_errors=dict(server_errors or {}),
                  batch_sizes=dict(batch_sizes or {}), worker_busy=dict(worker_busy or {}),
                  changes=tuple(changes), queue_depth={"mlp": queue_depth} if queue_depth else {}, **fields)
