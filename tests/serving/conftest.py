"""Fixtures for the serving tests: shared test-model artifacts, and a check after every test that no
worker process is left behind."""

from __future__ import annotations

import psutil
import pytest

from workbench.testing import make_artifact

#: servers shared by the tests of a module (their workers are expected to outlive each test)
SHARED: list = []


def worker_pids(server) -> set[int]:
    return {pid for model in server.stats().values() for w in model["workers"].values() for pid in w["pids"]}


def _workers() -> list[psutil.Process]:
    """Children of this test process, except multiprocessing's resource tracker and shared servers' workers."""
    allowed = set().union(*(worker_pids(s) for s in SHARED)) if SHARED else set()
    out = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.pid in allowed or child.status() == psutil.STATUS_ZOMBIE:
                continue
            if "resource_tracker" not in " ".join(child.cmdline()):
                out.append(child)
        except psutil.NoSuchProcess:
            continue
    return out


@pytest.fixture(autouse=True)
def no_leftover_processes():
    """Every test must leave no worker process of its own behind (checked with a deadline, not a sleep).
    Processes that were already there belong to other tests; killing them would only make their
    servers restart them."""
    before = {p.pid for p in _workers()}
    yield
    _, alive = psutil.wait_procs([p for p in _workers() if p.pid not in before], timeout=10)
    if alive:
        for proc in alive:
            proc.kill()
        pytest.fail(f"processes left running after the test: {[p.pid for p in alive]}")


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory):
    """Artifacts of the shared test models, built once per session."""
    root = tmp_path_factory.mktemp("artifacts")

    class Artifacts:
        echo = make_artifact("echo", root / "echo", shape=(4,))
        sleepy = make_artifact("sleepy", root / "sleepy", ms=20, shape=(4,))
        hang = make_artifact("sleepy", root / "hang", ms=1, shape=(4,), hang_value=-7.0)
        mlp = make_artifact("reference_mlp", root / "mlp")

    return Artifacts


@pytest.fixture(scope="module")
def shared_server(artifacts):
    """One server per test module with an echo model (2 replicas) and the reference MLP."""
    from workbench.serving import ServeConfig, Server

    server = Server(models={"echo": artifacts.echo, "mlp": artifacts.mlp},
                    config={"echo": ServeConfig(placement={"replicas": 2}), "mlp": None})
    server.start()
    SHARED.append(server)
    yield server
    SHARED.remove(server)
    server.close()
