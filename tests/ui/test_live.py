"""From windows to plot columns and big numbers (pure functions), and the hub → UI hand-over."""

from __future__ import annotations

import math

import pytest

from workbench.ui.live import (
    SERIES,
    LiveFeed,
    batch_histogram,
    change_markers,
    columns,
    merged_latency,
    point,
    summarize,
    worker_utilization,
)
from workbench.ui.state import LiveState

from .conftest import make_window


def test_a_point_uses_the_clients_figures_when_a_generator_reported():
    w = make_window(3, latencies_ms=[1.0] * 98 + [50.0, 50.0], server_ms=[0.5] * 100, errors={"overloaded": 5},
                    batch_sizes={4: 25}, queue_depth=7)
    p = point(w)
    assert set(p) == set(SERIES)
    assert p["t"] == 2.0
    assert p["p50"] == pytest.approx(1.0, rel=0.01) and p["p99"] == pytest.approx(50.0, rel=0.01)
    assert p["server_p50"] == pytest.approx(0.5, rel=0.01)
    assert p["rps"] == 200.0 and p["errors_per_s"] == 10.0  # 100 ok and 5 errors in half a second
    assert p["queue_depth"] == 7.0 and p["mean_batch_size"] == 4.0
    assert math.isnan(p["queue_p99"]) and math.isnan(p["compute_p50"])


def test_without_load_a_point_falls_back_to_the_servers_records():
    w = make_window(0, server_ms=[2.0] * 10, server_errors={"timeout": 1})
    p = point(w)
    assert p["p50"] == pytest.approx(2.0, rel=0.01) and p["errors_per_s"] == 2.0
    assert p["rps"] == pytest.approx(w.server_throughput_rps)
    empty = point(make_window(1))
    assert math.isnan(empty["p99"]) and empty["rps"] == 0.0 and math.isnan(empty["mean_batch_size"])


def test_columns_hold_one_value_per_window_per_series():
    data = columns([make_window(i, latencies_ms=[float(i + 1)] * 10) for i in range(3)])
    assert set(data) == set(SERIES) and data["t"] == [0.5, 1.0, 1.5]
    assert data["p50"] == pytest.approx([1.0, 2.0, 3.0], rel=0.01)


def test_change_markers_carry_time_label_and_full_text():
    long = "max_batch_size 32 → 8, max_delay_ms 2.0 → 5.0, routing least_outstanding → round_robin"
    windows = [make_window(0), make_window(1, changes=[{"at_s": 0.7, "description": "max_batch_size 32 → 8"},
                                                       {"at_s": 0.9, "description": long}])]
    markers = change_markers(windows)
    assert markers["t"] == [0.7, 0.9]
    assert markers["text"] == ["max_batch_size 32 → 8", long]
    assert markers["label"][0] == "max_batch_size 32 → 8" and len(markers["label"][1]) == 40
    assert change_markers([make_window(0)]) == {"t": [], "label": [], "text": []}


def test_batch_sizes_and_worker_utilization_aggregate_recent_windows():
    windows = [make_window(0, batch_sizes={1: 3, 8: 1}, worker_busy={"mlp/r0": 0.2, "mlp/r1": 0.6}),
               make_window(1, batch_sizes={8: 3, 16: 2}, worker_busy={"mlp/r0": 0.4})]
    hist = batch_histogram(windows)
    assert hist["size"] == [1, 8, 16] and hist["batches"] == [3, 4, 2]
    assert sum(hist["share"]) == pytest.approx(1.0)
    util = worker_utilization(windows)
    assert util["worker"] == ["mlp/r0", "mlp/r1"]
    assert util["busy"] == pytest.approx([0.3, 0.3]) and util["percent"] == pytest.approx([30.0, 30.0])


def test_big_numbers_merge_the_last_windows_histograms():
    live = LiveState()
    fast = make_window(0, latencies_ms=[1.0] * 99, errors={"timeout": 1})
    slow = make_window(1, latencies_ms=[1.0] * 98 + [80.0] * 3, changes=[{"at_s": 0.8, "description": "replicas 1 → 2"}])
    summarize(live, [fast, slow], last=2, added=2)
    expected = merged_latency([fast, slow])
    assert expected is not None and expected.count == 200
    assert live.p99_ms == pytest.approx(expected.percentile(99) * 1000)
    assert live.p99_ms == pytest.approx(80.0, rel=0.01)  # 3 of 200 above 1 ms: p99 lands on them
    assert live.p50_ms == pytest.approx(1.0, rel=0.01)
    assert live.rps == pytest.approx(200.0) and live.errors_total == 1 and live.windows == 2
    assert live.last_change == "replicas 1 → 2"
    summarize(live, [fast, slow, make_window(2, errors={"timeout": 3})], last=1, added=1)
    assert live.errors_total == 4 and live.p99_ms is None and live.errors_per_s == 6.0
    assert live.last_change == "replicas 1 → 2"  # kept until the next change


def test_the_feed_hands_closed_windows_from_the_hub_to_the_ui_thread():
    from workbench.serving.records import RequestRecord
    from workbench.telemetry.hub import TelemetryHub

    clock = [100.0]
    hub = TelemetryHub(window_ms=500, grace_ms=0, origin=100.0, clock=lambda: clock[0])
    feed = LiveFeed(hub, keep=3)
    hub.add_records([RequestRecord(request_id=i, model="mlp", outcome="ok", rows=1, received_at=100.1,
                                   completed_at=100.2) for i in range(5)])
    clock[0] = 100.6
    hub.tick()
    windows = feed.drain()
    assert [w.index for w in windows] == [0] and windows[0].server_requests == 5
    assert feed.drain() == []
    clock[0] = 103.0
    hub.tick()
    assert [w.index for w in feed.drain()] == [1, 2, 3, 4, 5]
    assert [w.index for w in feed.recent] == [3, 4, 5]  # bounded
    assert [w.index for w in feed.newer(3)] == [4, 5] and feed.newer(5) == []
    feed.close()
    clock[0] = 104.0
    hub.tick()
    assert feed.drain() == []
    hub.close(flush=False)
