"""Fault tolerance with real processes: a worker SIGKILLed under load, a hung worker, a model that
raises, workers that cannot start. Every request is counted: none hangs, none vanishes."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from workbench.errors import ModelLoadError, ServingError, WorkerCrashed
from workbench.models import ModelArtifact
from workbench.serving import ServeConfig, Server
from workbench.testing import make_artifact, wait_for


def pids_of(server: Server, model: str) -> dict[str, list[int]]:
    return {name: w["pids"] for name, w in server.stats()[model]["workers"].items() if w["state"] == "ready"}


def run_load(server: Server, model: str, n: int, threads: int, during=None) -> tuple[dict, list]:
    """Send ``n`` unique requests from ``threads`` threads; returns outcomes by kind and the failures."""
    outcomes: dict[str, int] = {}
    failures: list[tuple[int, BaseException]] = []
    started = threading.Event()
    lock = threading.Lock()

    def one(i: int) -> None:
        started.set()
        x = np.full((1, 4), float(i), dtype=np.float32)
        t0 = time.monotonic()
        try:
            y = server.infer(model, x)
            assert np.array_equal(x, y), f"request {i} got another request's result"
            kind = "ok"
        except ServingError as exc:
            kind = type(exc).__name__
            failures.append((i, exc))
        elapsed = time.monotonic() - t0
        assert elapsed < server.stats()[model]["config"]["admission"]["timeout_ms"] / 1000 + 1.0
        with lock:
            outcomes[kind] = outcomes.get(kind, 0) + 1

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(one, i + 1) for i in range(n)]
        if during is not None:
            started.wait(10)
            during()
        for f in futures:
            f.result(timeout=60)
    return outcomes, failures


def test_a_worker_killed_under_load_loses_no_request(artifacts):
    config = ServeConfig(placement={"replicas": 2}, batching={"max_batch_size": 8},
                         admission={"timeout_ms": 15_000})
    records = []
    with Server(models={"s": artifacts.sleepy}, config=config) as server:
        server.subscribe(records.extend)
        victim_name, (victim,) = next(iter(pids_of(server, "s").items()))

        def kill_when_busy() -> None:
            wait_for(lambda: server.stats()["s"]["workers"][victim_name]["outstanding"] > 0, 10)
            os.kill(victim, signal.SIGKILL)

        outcomes, failures = run_load(server, "s", n=300, threads=16, during=kill_when_busy)
        assert outcomes == {"ok": 300}, failures[:3]
        wait_for(lambda: server.stats()["s"]["replicas"]["ready"] == 2, 30)  # replaced
        stats = server.stats()["s"]
        assert stats["restarts"] == 1 and stats["outcomes"]["ok"] == 300
        assert victim not in {p for ps in pids_of(server, "s").values() for p in ps}
        assert "killed by signal SIGKILL" in stats["last_error"]
        wait_for(lambda: len(records) >= 300)
    retried = [r for r in records if r.retries]
    assert retried and all(r.outcome == "ok" and r.worker != victim_name for r in retried)


def test_a_hung_worker_is_killed_by_its_deadline_and_replaced(artifacts):
    config = ServeConfig(placement={"replicas": 2}, admission={"timeout_ms": 5000, "compute_timeout_ms": 400})
    with Server(models={"h": artifacts.hang}, config=config) as server:
        before = {p for ps in pids_of(server, "h").values() for p in ps}
        poison_result: list = []

        def poison() -> None:
            t0 = time.monotonic()
            try:
                server.infer("h", np.full((1, 4), -7.0, dtype=np.float32))
            except ServingError as exc:
                poison_result.append((exc, time.monotonic() - t0))

        thread = threading.Thread(target=poison)
        thread.start()
        wait_for(lambda: server.stats()["h"]["in_flight"] == 1, 10)  # the poison is on a worker, alone
        outcomes, failures = run_load(server, "h", n=100, threads=8)
        thread.join(timeout=10)
        assert outcomes == {"ok": 100}, failures[:3]  # batch-mates of the poison were retried alone
        ((exc, elapsed),) = poison_result
        assert isinstance(exc, WorkerCrashed) and "hung" in str(exc)
        assert elapsed < 5.0  # ended well within its deadline: noticed after 400 ms, twice (one retry)
        wait_for(lambda: server.stats()["h"]["replicas"]["ready"] == 2, 30)
        after = {p for ps in pids_of(server, "h").values() for p in ps}
        assert server.stats()["h"]["restarts"] == 2 and not before & after
        np.testing.assert_array_equal(server.infer("h", np.ones((1, 4), np.float32)), np.ones((1, 4)))


def test_a_model_error_fails_its_batch_only_and_the_worker_carries_on(tmp_path):
    artifact = make_artifact("sleepy", tmp_path / "e", ms=0, shape=(4,), error_value=-3.0)
    with Server(models={"e": artifact}) as server:
        with pytest.raises(ServingError, match="failed on this input: ValueError: the input holds -3.0"):
            server.infer("e", np.full((2, 4), -3.0, dtype=np.float32))
        np.testing.assert_array_equal(server.infer("e", np.ones((2, 4), np.float32)), np.ones((2, 4)))
        stats = server.stats()["e"]
        assert stats["restarts"] == 0 and stats["outcomes"] == {"error": 1, "ok": 1}


def test_workers_that_cannot_start_give_a_clear_error(tmp_path):
    artifact = make_artifact("echo", tmp_path / "bad", shape=(4,))
    manifest = json.loads((artifact.path / "manifest.json").read_text())
    manifest["source"]["factory"] = "workbench.testing:no_such_model"
    (artifact.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="its workers cannot load it: stage 0: ModelLoadError: .*has no attribute 'no_such_model'"):
        Server(models={"bad": ModelArtifact.open(artifact.path)}).start()
