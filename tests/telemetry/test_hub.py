"""TelemetryHub: windows from server records and load-generator reports, driven by a test clock."""

from __future__ import annotations

import threading

import pytest

from workbench.errors import ConfigError
from workbench.serving.records import ConfigChange, RequestRecord
from workbench.telemetry.histogram import LatencyHistogram
from workbench.telemetry.hub import TelemetryHub
from workbench.telemetry.window import ClientReport
from workbench.testing import wait_for


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def record(i, *, received, done, outcome="ok", worker="m/r0", start=None, end=None, batch=1, dispatched=None):
    return RequestRecord(request_id=i, model="m", outcome=outcome, rows=1, received_at=received, completed_at=done,
                         enqueued_at=received, dispatched_at=dispatched, compute_start=start, compute_end=end,
                         worker=worker, batch_size=batch, variant="fp32")


def report(source, index, latencies, **kw):
    hist = LatencyHistogram()
    hist.record_many(latencies)
    fields = dict(sent=len(latencies), ok=len(latencies), errors={}, not_sent=0, in_flight=0, lag_max_ms=0.0,
                  cpu_fraction=0.1)
    fields.update(kw)
    return ClientReport(source=source, index=index, latency=hist.encode(), **fields)


def make_hub(**kw):
    clock = Clock()
    return TelemetryHub(window_ms=500, grace_ms=100, origin=0.0, clock=clock, wall_clock=lambda: 1000.0, **kw), clock


def test_a_window_closes_after_its_grace_with_the_server_side_figures():
    hub, _ = make_hub()
    seen = []
    hub.subscribe(seen.append)
    batch_a = [record(i, received=0.10, dispatched=0.11, start=0.12, end=0.22, batch=4, done=0.23) for i in range(4)]
    batch_b = [record(10 + i, received=0.30, dispatched=0.30, start=0.31, end=0.36, batch=2, worker="m/r1", done=0.37)
               for i in range(2)]
    refused = record(20, received=0.4, done=0.4, outcome="overloaded", worker=None)
    late = record(30, received=0.45, dispatched=0.46, start=0.47, end=0.55, done=0.56)
    hub.add_records(batch_a + batch_b + [refused, late])
    assert hub.tick(0.59) == []  # window 0 ended at 0.5; its grace runs to 0.6
    [w] = hub.tick(0.6)
    assert seen == [w] and w.index == 0 and (w.start_s, w.end_s) == (0.0, 0.5)
    assert w.server_requests == 7 and w.server_errors == {"overloaded": 1}
    assert w.server_latency.count == 6 and w.server_latency.max_ms == pytest.approx(130, rel=1e-3)
    assert w.queue_time.count == 6 and w.queue_time.max_ms == pytest.approx(10, rel=1e-3)
    assert w.compute_time.count == 2  # one per batch, not one per request
    assert w.batch_sizes == {2: 1, 4: 1} and w.mean_batch_size == 3
    assert w.worker_busy == {"m/r0": pytest.approx(0.2), "m/r1": pytest.approx(0.1)}
    assert w.variants == ("fp32",) and w.latency is None and w.wall_time == pytest.approx(999.9)
    assert w.server_throughput_rps == 12  # 6 ok in half a second
    [w1] = hub.tick(1.1)
    assert w1.server_requests == 1 and w1.worker_busy == {"m/r0": pytest.approx(0.16)}


def test_reports_from_several_generators_merge_exactly_into_their_window():
    hub, _ = make_hub()
    a, b = [0.001 * i for i in range(1, 101)], [0.5 + 0.001 * i for i in range(50)]
    hub.add_client(report("g1", 0, a, errors={"overloaded": 2}, in_flight=3, lag_max_ms=1.5))
    hub.add_client(report("g2", 0, b, errors={"overloaded": 1, "timeout": 4}, in_flight=2, lag_max_ms=0.5,
                          cpu_fraction=0.7))
    [w] = hub.tick(0.6)
    whole = LatencyHistogram()
    whole.record_many(a + b)
    assert LatencyHistogram.decode(w.histograms["latency"]) == whole and w.latency == whole.stats()
    assert (w.sent, w.ok, w.in_flight) == (150, 150, 5)
    assert w.errors == {"overloaded": 3, "timeout": 4}
    assert (w.generator_lag_ms, w.generator_cpu) == (1.5, 0.7)
    assert w.throughput_rps == 300


def test_windows_wait_for_registered_sources_but_not_forever():
    hub, _ = make_hub(max_wait_ms=1000)
    hub.register_source("g1", from_index=1)
    assert [w.index for w in hub.tick(0.6)] == [0]  # g1 reports from window 1 on
    assert hub.tick(1.2) == []  # window 1 waits for g1
    hub.add_client(report("g1", 1, [0.01]))
    [w1] = hub.tick(1.2)
    assert w1.ok == 1
    assert hub.tick(2.4) == []  # window 2: no report yet, within max_wait
    [w2] = hub.tick(2.5)  # 1 s after its end: closed without g1
    assert w2.index == 2 and w2.ok == 0
    hub.add_client(report("g1", 2, [0.02, 0.03]))  # late: counts in the next window to close
    hub.unregister_source("g1")
    [w3] = hub.tick(2.55)
    assert w3.index == 3 and w3.ok == 2


def test_queue_depth_is_sampled_at_each_window_end_and_changes_land_in_their_window():
    hub, clock = make_hub()
    depth = {"m": 0}
    hub.add_gauge(lambda: dict(depth))
    hub.add_change(ConfigChange(model="m", at=0.7, wall_time=1.0, changes={"max_batch_size": [8, 16]},
                                description="max_batch_size 8 → 16"))
    depth["m"] = 5
    hub.tick(0.51)  # window 0 just ended: sampled now
    depth["m"] = 9
    [w0] = hub.tick(0.6)
    hub.tick(1.01)
    [w1] = hub.tick(1.1)
    assert w0.queue_depth == {"m": 5} and w1.queue_depth == {"m": 9}
    assert w0.changes == () and w1.changes[0]["changes"] == {"max_batch_size": [8, 16]}
    assert w1.changes[0]["at_s"] == pytest.approx(0.7)


def test_a_failing_subscriber_or_gauge_does_not_stop_the_others():
    hub, _ = make_hub()
    seen = []
    hub.subscribe(lambda w: 1 / 0)
    hub.subscribe(seen.append)
    hub.add_gauge(lambda: {}["missing"])
    unsubscribe = hub.subscribe(seen.append)
    unsubscribe()
    hub.tick(0.51)
    hub.tick(0.6)
    assert [w.index for w in seen] == [0]


def test_flush_closes_the_window_in_progress_and_records_before_the_origin_are_dropped():
    hub, clock = make_hub()
    hub.add_records([record(1, received=-1.0, done=-0.5), record(2, received=0.1, done=0.2)])
    clock.now = 0.3
    [w] = hub.flush()
    assert w.index == 0 and w.server_requests == 1
    hub.close()
    hub.add_records([record(3, received=0.4, done=0.45)])  # ignored once closed
    assert hub.next_index == 1


def test_the_hub_thread_delivers_windows_in_order_as_they_close():
    windows = []
    done = threading.Event()
    with TelemetryHub(window_ms=50, grace_ms=10) as hub:
        hub.subscribe(lambda w: (windows.append(w), len(windows) >= 4 and done.set()))
        hub.add_client(report("g", 1, [0.002] * 10))
        assert done.wait(10)
    assert [w.index for w in windows[:4]] == [0, 1, 2, 3]
    assert windows[1].ok == 10 and list(hub.windows)[: len(windows)] == windows


def test_many_records_are_aggregated_in_one_pass():
    hub, _ = make_hub()
    records = [record(i, received=i * 1e-5, dispatched=i * 1e-5, start=(i // 8) * 8e-5, end=(i // 8) * 8e-5 + 5e-5,
                      batch=8, done=i * 1e-5 + 1e-4) for i in range(40_000)]
    for chunk in range(0, len(records), 50):  # as the server delivers them: small lists
        hub.add_records(records[chunk:chunk + 50])
    [w] = wait_for(lambda: hub.tick(0.6))
    assert w.server_requests == 40_000 and w.compute_time.count == 5_000 and w.batch_sizes == {8: 5_000}


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="window_ms must be between 10 and 60000"):
        TelemetryHub(window_ms=5)
    with pytest.raises(ConfigError, match="grace_ms"):
        TelemetryHub(grace_ms=-1)
