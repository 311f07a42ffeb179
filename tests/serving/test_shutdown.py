"""Shutdown: close() stops every worker within a bounded time, and no worker outlives its parent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import psutil
import pytest

from workbench.errors import BackendUnavailable, ServingError
from workbench.serving import ServeConfig, Server
from workbench.testing import wait_for


def test_close_with_requests_in_flight_ends_every_request_and_every_worker(artifacts):
    server = Server(models={"s": artifacts.sleepy}, config=ServeConfig(batching={"max_batch_size": 2}))
    server.start()
    results: list = []

    def client(i: int) -> None:
        x = np.full((1, 4), float(i), np.float32)
        try:
            results.append(server.infer("s", x))
        except ServingError as exc:
            results.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    wait_for(lambda: server.stats()["s"]["in_flight"] > 0, 10)
    workers = [psutil.Process(p) for w in server.stats()["s"]["workers"].values() for p in w["pids"]]
    t0 = time.monotonic()
    server.close(timeout_s=5)
    assert time.monotonic() - t0 < 6
    for t in threads:
        t.join(timeout=10)
    assert len(results) == 40  # none hangs
    assert all(isinstance(r, np.ndarray) or isinstance(r, BackendUnavailable) for r in results)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in workers)
    server.close()  # twice is fine
    with pytest.raises(BackendUnavailable, match="closed"):
        server.infer("s", np.zeros((1, 4), np.float32))


def test_close_kills_a_worker_stuck_in_compute_within_its_bound(artifacts):
    config = ServeConfig(admission={"timeout_ms": 60_000})  # the hang would outlast close without the bound
    server = Server(models={"h": artifacts.hang}, config=config).start()
    outcome: list = []
    thread = threading.Thread(target=lambda: outcome.append(_try(server, np.full((1, 4), -7.0, np.float32))))
    thread.start()
    wait_for(lambda: server.stats()["h"]["in_flight"] == 1, 10)
    t0 = time.monotonic()
    server.close(timeout_s=2)
    assert time.monotonic() - t0 < 3.5
    thread.join(timeout=10)
    assert len(outcome) == 1 and isinstance(outcome[0], ServingError)


def _try(server: Server, x: np.ndarray) -> object:
    try:
        return server.infer("h", x)
    except ServingError as exc:
        return exc


PARENT = """
import json, sys, threading
from workbench.models import ModelArtifact
from workbench.serving import ServeConfig, Server
server = Server(models={"m": ModelArtifact.open(sys.argv[1])},
                config=ServeConfig(placement={"stages": 2})).start()
pids = [p for w in server.stats()["m"]["workers"].values() for p in w["pids"]]
print(json.dumps(pids), flush=True)
threading.Event().wait(120)  # until killed
"""


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.slow
def test_workers_exit_when_their_parent_is_killed(artifacts):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(artifacts.echo.path)], stdout=subprocess.PIPE,
                              text=True, cwd=os.getcwd())
    try:
        line = parent.stdout.readline()  # type: ignore[union-attr]
        pids = json.loads(line)
        assert len(pids) == 2 and all(not _gone(p) for p in pids)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        wait_for(lambda: all(_gone(p) for p in pids), timeout_s=10, message="workers gone after their parent")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=10)
        for pid in pids if "pids" in locals() else []:  # never leave an orphan behind, even on failure
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)
