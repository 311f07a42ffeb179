"""Live reconfiguration under load, with no request dropped: every kind of change."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from workbench.errors import ConfigError, ModelLoadError, ServingError
from workbench.models import ModelArtifact
from workbench.serving import ServeConfig, Server
from workbench.testing import make_artifact, make_model, wait_for


class Load:
    """Clients that keep sending unique requests and check every answer, until stopped."""

    def __init__(self, server: Server, model: str, clients: int = 4):
        self.server, self.model = server, model
        self.ok = 0
        self.failures: list[BaseException] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(c,)) for c in range(clients)]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        wait_for(lambda: self.ok > 20, 10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def _run(self, client: int) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            x = np.full((1 + i % 3, 4), client * 1e6 + i, dtype=np.float32)
            try:
                y = self.server.infer(self.model, x)
                if not np.array_equal(x, y):
                    raise AssertionError("a request got another request's result")
                with self._lock:
                    self.ok += 1
            except (ServingError, AssertionError) as exc:
                with self._lock:
                    self.failures.append(exc)

    def wait_more(self, n: int = 20) -> None:
        target = self.ok + n
        wait_for(lambda: self.ok >= target, 20)


@pytest.mark.slow
def test_every_kind_of_change_under_load_drops_nothing(tmp_path, artifacts):
    records = []
    fast = make_model("sleepy", ms=1, shape=(4,)).with_changes(variant="fast").save(tmp_path / "fast")
    with Server(models={"s": artifacts.sleepy}) as server:
        server.subscribe(records.extend)
        with Load(server, "s") as load:
            server.reconfigure("s", max_batch_size=2)  # batching: at once
            changed_at = server.changes[-1].at
            load.wait_more()
            assert all(r.batch_size <= 2 for r in list(records) if r.dispatched_at and r.dispatched_at > changed_at)
            server.reconfigure("s", max_delay_ms=3, routing="round_robin")
            assert server.stats()["s"]["config"]["routing"] == "round_robin"
            load.wait_more()

            server.reconfigure("s", replicas=2)  # scale up: new workers start
            assert server.stats()["s"]["replicas"] == {"starting": 0, "ready": 2, "draining": 0, "stopping": 0,
                                                        "target": 2}
            load.wait_more()
            server.reconfigure("s", replicas=1)  # scale down: drained, not killed
            assert server.stats()["s"]["replicas"]["ready"] == 1 and server.stats()["s"]["restarts"] == 0
            load.wait_more()

            old_workers = set(server.stats()["s"]["workers"])
            server.reconfigure("s", stages=2, threads_per_worker=2)  # placement: rolling replacement
            workers = server.stats()["s"]["workers"]
            assert not old_workers & set(workers) and [len(w["pids"]) for w in workers.values()] == [2]
            load.wait_more()

            server.swap_variant("s", fast)  # variant: rolling replacement; returns once the old ones are gone
            swapped_at = time.monotonic()
            assert server.model_info("s")["variant"] == "fast"
            load.wait_more()
        assert load.failures == [] and load.ok > 100
    late = [r for r in records if r.dispatched_at and r.dispatched_at > swapped_at]
    assert late and all(r.variant == "fast" for r in late)
    kinds = [set(c.changes) for c in server.changes if c.model == "s"]
    assert kinds[1:] == [{"max_batch_size"}, {"max_delay_ms", "routing"}, {"replicas"}, {"replicas"},
                         {"stages", "threads_per_worker"}, {"variant", "artifact"}]
    times = [c.at for c in server.changes]
    assert times == sorted(times) and all(c.wall_time > 0 and c.description for c in server.changes)
    assert sum(r.outcome == "ok" for r in records) == load.ok


def test_a_variant_that_cannot_start_leaves_the_old_one_serving(tmp_path, artifacts):
    bad = make_artifact("echo", tmp_path / "bad", shape=(4,))
    manifest = json.loads((bad.path / "manifest.json").read_text())
    manifest["source"]["factory"] = "workbench.testing:no_such_model"
    (bad.path / "manifest.json").write_text(json.dumps(manifest))
    changes = []
    with Server(models={"e": artifacts.echo}) as server:
        server.subscribe_changes(changes.append)
        with Load(server, "e", clients=2) as load:
            with pytest.raises(ModelLoadError, match="previous workers keep serving: .*no_such_model"):
                server.swap_variant("e", ModelArtifact.open(bad.path))
            load.wait_more()
        assert load.failures == []
        assert server.model_info("e")["artifact"] == str(artifacts.echo.path)
        wait_for(lambda: server.stats()["e"]["replicas"] == {"starting": 0, "ready": 1, "draining": 0,
                                                             "stopping": 0, "target": 1}, 10)
    assert [c.description.split(":")[0] for c in changes] == ["variant fp32 → fp32", "reverted"]


def test_bad_changes_are_refused_before_anything_moves(artifacts, tmp_path):
    other = make_artifact("sleepy", tmp_path / "wide", ms=1, shape=(8,))
    with Server(models={"e": artifacts.echo}) as server:
        with pytest.raises(ConfigError, match="max_batch_size must be in 1..65536, got 0"):
            server.reconfigure("e", max_batch_size=0)
        with pytest.raises(ConfigError, match="unknown serve setting 'batchsize'"):
            server.reconfigure("e", batchsize=4)
        with pytest.raises(ConfigError, match="has 2 top-level layers: stages must be <= that"):
            server.reconfigure("e", stages=3)
        with pytest.raises(ConfigError, match="signature differs"):
            server.swap_variant("e", other)
        assert server.changes[-1].description == "serving e (fp32)"  # nothing changed
        new = server.reconfigure("e", ServeConfig(batching={"max_batch_size": 7}))
        assert new.batching.max_batch_size == 7 and server.stats()["e"]["config"]["batching"]["max_batch_size"] == 7
        t0 = time.monotonic()
        assert server.reconfigure("e", max_batch_size=7) == new  # no change: nothing recorded
        assert time.monotonic() - t0 < 5 and server.changes[-1].changes == {"max_batch_size": [32, 7]}
