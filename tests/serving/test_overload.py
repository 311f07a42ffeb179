"""Admission: past ``max_queue`` a request is refused at once with Overloaded, and memory stays bounded
however hard the server is pushed."""

from __future__ import annotations

import asyncio
import statistics

import numpy as np
import psutil
import pytest

from workbench.errors import Overloaded
from workbench.serving import ServeConfig, Server
from workbench.testing import make_artifact, wait_for


def test_overload_is_refused_at_once_and_memory_stays_bounded(tmp_path):
    artifact = make_artifact("sleepy", tmp_path / "slow", ms=50, shape=(4096,))
    config = ServeConfig(batching={"max_batch_size": 4}, admission={"max_queue": 16})
    records = []
    with Server(models={"slow": artifact}, config=config) as server:
        server.subscribe(records.extend)

        async def wave(n: int) -> list:
            xs = [np.full((1, 4096), float(i), dtype=np.float32) for i in range(n)]
            return await asyncio.gather(*(server.submit("slow", x) for x in xs), return_exceptions=True)

        first = server.run_coroutine(wave(500)).result(timeout=60)
        ok = [r for r in first if isinstance(r, np.ndarray)]
        refused = [r for r in first if isinstance(r, Overloaded)]
        assert len(ok) + len(refused) == 500  # every request ended, as a result or a refusal
        assert ok and len(refused) > 400  # about the queue (16) plus what the worker holds got in
        assert all(e.retry_after_s > 0 and "max_queue=16" in str(e) and e.model == "slow" for e in refused)
        wait_for(lambda: len(records) >= 500)
        turned_away = [r for r in records if r.outcome == "overloaded"]
        assert len(turned_away) == len(refused)
        # refused at once: never queued, and answered in far less time than one 50 ms batch takes
        # (the median: a garbage-collection pause may stall any single one)
        assert all(r.enqueued_at is None and r.dispatched_at is None for r in turned_away)
        assert statistics.median(r.latency_s for r in turned_away) < 0.005

        rss = psutil.Process().memory_info().rss
        for _ in range(12):  # 6000 more requests of 16 KB: 96 MB if anything kept them
            results = server.run_coroutine(wave(500)).result(timeout=60)
            assert sum(isinstance(r, Overloaded) for r in results) > 400
        grown_mb = (psutil.Process().memory_info().rss - rss) / 2**20
        assert grown_mb < 48, f"memory grew by {grown_mb:.0f} MB under overload"
        assert server.stats()["slow"]["peak_queue_rows"] <= 16


def test_a_request_that_can_never_fit_is_told_so(artifacts):
    with Server(models={"e": artifacts.echo}, config=ServeConfig(admission={"max_queue": 8})) as server:
        with pytest.raises(Overloaded, match="a request of 9 rows can never fit max_queue=8 rows"):
            server.infer("e", np.zeros((9, 4), np.float32))
