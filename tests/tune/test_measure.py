"""The tuner's bench: one warm server, changed the cheapest way per config, and load runs that stop
early once they clearly violate the bound (test doubles as models: echo and a model that sleeps)."""

from __future__ import annotations

import pytest

from workbench.testing import make_artifact
from workbench.tune.measure import Bench

BASE = {"replicas": 1, "stages": 1, "threads_per_worker": 1, "max_batch_size": 8, "max_delay_ms": 0.0,
        "routing": "round_robin", "variant": "fast"}


@pytest.fixture
def bench(tmp_path):
    sources = {"fast": make_artifact("echo", tmp_path / "fast", name="m"),
               "slow": make_artifact("sleepy", tmp_path / "slow", name="m", ms=40.0)}
    bench = Bench("m", sources, runs_dir=tmp_path / "runs")
    yield bench
    bench.close()


def test_each_change_applies_the_cheapest_way_and_reuses_the_server(bench):
    assert bench.apply(BASE) == "started"
    server = bench.server
    assert bench.apply({**BASE, "max_batch_size": 32, "routing": "least_outstanding"}) == "live"
    assert bench.apply({**BASE, "replicas": 2}) == "rolled"
    assert bench.apply({**BASE, "replicas": 2, "variant": "slow"}) == "swapped"
    assert bench.server is server and bench.restarts == 1
    assert server.model_info("m")["config"]["placement"]["replicas"] == 2
    assert bench.apply({**BASE, "variant": "fast"}) == "restarted"  # placement and variant: one new set of workers
    assert bench.restarts == 2


def test_a_clearly_violating_run_stops_early_and_a_good_one_does_not(bench):
    bench.apply({**BASE, "variant": "slow", "max_batch_size": 1})  # 40 ms per request, one at a time
    slow = bench.measure(100, 3.0, p99_ms=10)
    assert slow.stopped_early and not slow.meets(10) and slow.duration_s < 2.5
    assert "the queue is growing" in slow.reason or "took over 2× the 10 ms bound" in slow.reason
    bench.apply({**BASE, "variant": "fast"})
    fast = bench.measure(50, 1.0, p99_ms=1000)
    assert not fast.stopped_early and fast.meets(1000) and fast.run_id and fast.sent > 20
