"""Soak, short version: ``workbench serve`` (a real process) of a slow double under a steady Poisson load
at 60 % of its capacity for 30 s over HTTP, its process tree sampled every second.

The same code as ``python -m benchmarks.reliability.soak`` (10 minutes there). No request fails; after a
5 s warm-up the server tree's RSS does not grow past the stated bound; open files and processes come
back to where they were before the load and no worker was replaced; latency stays stable (the median
of the per-second p99s of the last third against the first: a single stall of a busy machine does not
decide it here; the whole-run p99 comparison is the benchmark's).
"""

from __future__ import annotations

import pytest

from benchmarks.reliability.soak import FD_SLACK, P99_FACTOR, RSS_GROWTH_BOUND_MB, SOAK_SERVICE, run_soak

pytestmark = pytest.mark.slow


def test_steady_load_for_30_s_leaks_no_memory_files_or_processes(tmp_path):
    service = SOAK_SERVICE
    f = run_soak(seconds=30.0, warmup_s=5.0, sample_s=1.0, measure_capacity=False, service=service,
                 folder=tmp_path)
    assert f["rate_rps"] == pytest.approx(0.6 * service.nominal_rps)
    assert f["ok"] >= 0.9 * f["rate_rps"] * 30 and f["errors"] == 0 and f["not_sent"] == 0, f["errors_by_kind"]
    assert f["samples"] >= 25

    assert f["rss_growth_mb"] is not None and f["rss_growth_mb"] <= RSS_GROWTH_BOUND_MB, f["rss_series_mb"]
    assert f["fds_after"] <= f["fds_before"] + FD_SLACK, (f["fds_before"], f["fds_after"])
    n = f["processes_before"]  # the server, its worker and multiprocessing's resource tracker
    assert n >= 2 and f["processes_during"] == [n] and f["processes_after"] == n and f["same_processes"]

    first, last = f["window_p99_median_first_ms"], f["window_p99_median_last_ms"]
    assert first is not None and last is not None and last <= P99_FACTOR * first, f["window_p99_ms"]
    assert f["leftover_processes"] == []
