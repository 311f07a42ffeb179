"""The run summary's figures and the generator verdict, from generator totals."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.load.messages import Done
from workbench.load.schedules import Closed, Constant
from workbench.load.summary import summarize
from workbench.telemetry.histogram import LatencyHistogram


def done(latencies, lags, *, cpu_s=0.5, t0=100.0, ended=110.0, sent=None, stopped=False, errors=None, source="g"):
    lat, lag = LatencyHistogram(), LatencyHistogram()
    lat.record_many(latencies)
    lag.record_many(lags)
    n = len(latencies)
    return Done(source=source, t0=t0, first_send=t0, last_send=t0 + 9.995, last_completion=t0 + 9.997,
                ended_at=ended, sent=sent if sent is not None else n, ok=n, errors=errors or {}, not_sent=0,
                unfinished=0, latency=lat.encode(), lag=lag.encode(), cpu_s=cpu_s, stopped_early=stopped,
                last_index=19)


def test_rates_totals_and_percentiles():
    latencies = np.linspace(0.001, 0.010, 2000)
    s = summarize(dones=[done(latencies, [0.0005] * 2000, errors={"overloaded": 3}, sent=2003)], windows=[],
                  schedule=Constant(rate=200), duration_s=10, max_lag_ms=10)
    assert s["target_rps"] == 200 and s["throughput_rps"] == 200 and s["elapsed_s"] == 10
    assert s["send_rate_rps"] == pytest.approx(2002 / 9.995, rel=1e-6)
    assert (s["sent"], s["ok"], s["errors"], s["errors_by_kind"]) == (2003, 2000, 3, {"overloaded": 3})
    assert s["latency_count"] == 2000 and s["latency_p50_ms"] == pytest.approx(5.5, rel=2e-3)
    assert s["generator_ceiling_rps"] == pytest.approx(2003 / 0.5)
    assert s["generator_limited"] is False and s["generator_message"] == ""


def test_a_lag_that_is_small_next_to_the_latency_is_not_the_generator_s_fault():
    latencies = [0.001] * 590 + [0.9] * 10  # a stalled server
    lags = [0.0005] * 590 + [0.03] * 10  # the generator was briefly busy with the backlog's answers
    s = summarize(dones=[done(latencies, lags)], windows=[], schedule=Constant(rate=60), duration_s=10, max_lag_ms=10)
    assert s["generator_lag_p99_ms"] == pytest.approx(30, rel=1e-2) and not s["generator_limited"]


def test_a_generator_that_falls_behind_or_saturates_its_core_is_flagged():
    behind = summarize(dones=[done([0.02] * 600, [0.015] * 600)], windows=[], schedule=Constant(rate=60),
                       duration_s=10, max_lag_ms=10)
    assert behind["generator_limited"] and "fell behind its schedule" in behind["generator_message"]
    busy = summarize(dones=[done([0.002] * 600, [0.0] * 600, cpu_s=9.5)], windows=[], schedule=Closed(concurrency=4),
                     duration_s=10, max_lag_ms=10)
    assert busy["generator_limited"] and "95% of a core" in busy["generator_message"]
    assert busy["concurrency"] == 4 and busy["target_rps"] is None


def test_several_generators_add_up_and_a_stopped_run_uses_its_own_length():
    a = done([0.001] * 100, [0.0] * 100, source="a", stopped=True)
    b = done([0.003] * 100, [0.0] * 100, source="b", stopped=True)
    s = summarize(dones=[a, b], windows=[], schedule=Constant(rate=20), duration_s=60, max_lag_ms=10)
    assert s["processes"] == 2 and s["ok"] == 200 and s["stopped_early"]
    assert s["elapsed_s"] == pytest.approx(9.997) and s["latency_p50_ms"] == pytest.approx(1.0, rel=1e-3)
