"""Window: plain data that round-trips through JSON and flattens into DataFrame rows."""

from __future__ import annotations

import json
import pickle

from workbench.telemetry.histogram import LatencyHistogram
from workbench.telemetry.window import ClientReport, Window


def full_window() -> Window:
    hist = LatencyHistogram()
    hist.record_many([0.001, 0.002, 0.010])
    return Window(index=3, start_s=1.5, end_s=2.0, wall_time=1e9, sent=3, ok=3, errors={"timeout": 1},
                  latency=hist.stats(), server_requests=4, server_errors={"overloaded": 1},
                  server_latency=hist.stats(), queue_depth={"m": 2}, batch_sizes={1: 2, 8: 1},
                  worker_busy={"m/r0": 0.25}, variants=("fp32",),
                  changes=({"model": "m", "at_s": 1.7, "changes": {"max_batch_size": [8, 16]}},),
                  histograms={"latency": hist.encode()})


def test_window_round_trips_through_json():
    window = full_window()
    data = json.loads(json.dumps(window.to_dict()))
    assert data["batch_sizes"] == {"1": 2, "8": 1} and data["latency"]["count"] == 3
    assert Window.from_dict(data) == window
    assert Window.from_dict({**data, "a_field_from_a_newer_version": 1}) == window


def test_window_row_flattens_stats_errors_and_workers():
    row = full_window().to_row()
    assert row["latency_p99_ms"] == full_window().latency.p99_ms and row["queue_time_p99_ms"] is None
    assert row["throughput_rps"] == 6 and row["server_throughput_rps"] == 6
    assert row["error_timeout"] == 1 and row["busy_m/r0"] == 0.25 and row["mean_batch_size"] == 10 / 3
    assert row["queue_depth"] == 2 and row["changes"] == 1


def test_client_report_crosses_processes():
    report = ClientReport(source="g", index=1, latency=LatencyHistogram().encode(), sent=1, ok=1, errors={},
                          not_sent=0, in_flight=0, lag_max_ms=0.1, cpu_fraction=0.2)
    assert pickle.loads(pickle.dumps(report)) == report
