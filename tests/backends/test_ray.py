"""The Ray Serve backend on a real local Ray (2 CPUs), started once for this module by one RayBackend.

Each test serves its own model on that backend (``add_model``) and removes it at the end; the last test
closes the backend and checks that no Ray process is left. Replicas ask for half a CPU each so that a
2-CPU Ray fits two replicas of one model plus room for Serve to roll.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import Counter

import numpy as np
import pytest

pytest.importorskip("ray.serve", reason="the Ray backend needs Ray Serve: pip install 'workbench[ray]'")

from workbench.errors import ConfigError, ModelNotFound, Overloaded, ServingError, WorkbenchError, WorkerCrashed  # noqa: E402
from workbench.testing import make_artifact, wait_for  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def backend():
    from workbench.backends.ray import RayBackend

    b = RayBackend(init_options={"num_cpus": 2}, ray_actor_options={"num_cpus": 0.5}, close_timeout_s=30)
    b.start()
    try:
        yield b
    finally:
        b.close()


@contextlib.contextmanager
def serving(backend, name, source, config=None):
    backend.add_model(name, source, config)
    try:
        yield name
    finally:
        backend.remove_model(name)


def records_of(backend):
    """A list that fills with the backend's request records, and its unsubscribe function."""
    got: list = []
    return got, backend.subscribe(got.extend)


async def _gather(backend, model, arrays, **kw):
    return await asyncio.gather(*(backend.infer_async(model, a, **kw) for a in arrays), return_exceptions=True)


def burst(backend, model, n, width, start=0):
    """``n`` one-row requests at once (row i holds i); raises if any answer is wrong."""
    arrays = [np.full((1, width), start + i, np.float32) for i in range(n)]
    results = asyncio.run(_gather(backend, model, arrays))
    for a, r in zip(arrays, results):
        if isinstance(r, BaseException):
            raise r
        np.testing.assert_array_equal(r, a)


def test_outputs_over_http_equal_the_local_backend(backend, zoo_mlp):
    import tritonclient.http as httpclient

    from workbench.http.serve import serve_http
    from workbench.serving.server import Server

    x = zoo_mlp.eval_data[0][:16].astype(np.float32)

    def over_http(server) -> tuple[np.ndarray, np.ndarray, dict]:
        with serve_http(server, port=0) as http:
            client = httpclient.InferenceServerClient(http.url.removeprefix("http://"), network_timeout=30)
            try:
                assert client.is_model_ready("mlp")
                outs = []
                for binary in (False, True):
                    inp = httpclient.InferInput("input", list(x.shape), "FP32")
                    inp.set_data_from_numpy(x, binary_data=binary)
                    result = client.infer("mlp", [inp])
                    outs.append(result.as_numpy(result.get_response()["outputs"][0]["name"]))
                return outs[0], outs[1], client.get_model_metadata("mlp")
            finally:
                client.close()

    with Server(models={"mlp": zoo_mlp}) as local:
        local_json, local_binary, local_meta = over_http(local)
    got, unsubscribe = records_of(backend)
    with serving(backend, "mlp", zoo_mlp):
        ray_json, ray_binary, ray_meta = over_http(backend)
        info = backend.model_info("mlp")
    unsubscribe()
    np.testing.assert_allclose(ray_json, local_json, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ray_binary, local_binary, rtol=1e-5, atol=1e-6)
    assert ray_json.argmax(1).tolist() == local_json.argmax(1).tolist()
    assert {k: ray_meta[k] for k in ("name", "inputs", "outputs")} == {k: local_meta[k] for k in ("name", "inputs", "outputs")}
    assert info["backend"] == "ray" and "ray" in info["routing"] and info["deployments"] == ["mlp"]
    # the same telemetry: one record per request with the replica's compute time inside its span
    mine = [r for r in got if r.model == "mlp" and r.outcome == "ok"]
    assert len(mine) >= 2
    for r in mine:
        assert r.received_at <= r.dispatched_at <= r.compute_start <= r.compute_end <= r.completed_at
        assert r.worker.startswith("mlp/") and r.batch_size >= 16 and r.rows == 16


def test_batch_size_and_replicas_change_live(backend, tmp_path):
    art = make_artifact("sleepy", tmp_path / "sleepy", ms=30, shape=(2,))
    config = {"batching": {"max_batch_size": 2, "max_delay_ms": 50}}
    got, unsubscribe = records_of(backend)
    with serving(backend, "live", art, config):
        burst(backend, "live", 12, 2)
        first = {r.batch_size for r in got if r.model == "live"}
        assert max(first) == 2, first
        pids = {w["pids"][0] for w in backend.stats()["live"]["workers"].values()}
        assert len(pids) == 1

        backend.reconfigure("live", max_batch_size=8)
        got.clear()
        burst(backend, "live", 16, 2, start=100)
        sizes = {r.batch_size for r in got if r.model == "live"}
        assert 2 < max(sizes) <= 8, sizes
        stats = backend.stats()["live"]
        assert {w["pids"][0] for w in stats["workers"].values()} == pids  # changed in place, not restarted
        assert stats["config"]["batching"]["max_batch_size"] == 8

        backend.reconfigure("live", replicas=2)
        assert backend.stats()["live"]["replicas"]["ready"] == 2
        got.clear()
        wait_for(lambda: burst(backend, "live", 16, 2) or len({r.worker for r in got if r.model == "live"}) == 2,
                 timeout_s=30, message="both replicas answering")
        assert pids <= {w["pids"][0] for w in backend.stats()["live"]["workers"].values()}

        backend.reconfigure("live", replicas=1)  # returns once Serve runs exactly one replica
        replicas = backend.stats()["live"]["replicas"]
        assert (replicas["ready"], replicas["starting"], replicas["stopping"]) == (1, 0, 0), replicas
        descriptions = [c.description for c in backend.changes if c.model == "live"]
        assert any("max_batch_size 2 → 8" in d for d in descriptions), descriptions
        assert any("replicas 1 → 2" in d for d in descriptions), descriptions
    unsubscribe()


def test_killed_replica_is_replaced_and_every_request_ends(backend, tmp_path):
    art = make_artifact("sleepy", tmp_path / "sleepy", ms=20, shape=(2,))
    config = {"placement": {"replicas": 2}, "batching": {"max_batch_size": 4, "max_delay_ms": 5}}
    sent, concurrency = 240, 8
    got, unsubscribe = records_of(backend)
    with serving(backend, "faulty", art, config):
        wait_for(lambda: burst(backend, "faulty", 16, 2) or len(backend.stats()["faulty"]["workers"]) == 2,
                 timeout_s=30, message="both replicas answering")
        workers = backend.stats()["faulty"]["workers"]
        victim = next(iter(workers.values()))["pids"][0]
        outcomes: Counter[str] = Counter()
        done = 0

        async def client(queue: asyncio.Queue) -> None:
            nonlocal done
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                x = np.full((1, 2), i, np.float32)
                try:
                    y = await backend.infer_async("faulty", x, timeout_ms=20_000)
                    outcomes["ok" if np.array_equal(x, y) else "wrong answer"] += 1
                except WorkerCrashed:
                    outcomes["crashed"] += 1
                except WorkbenchError as exc:
                    outcomes[f"other {type(exc).__name__}: {exc}"] += 1
                done += 1

        async def load() -> None:
            queue: asyncio.Queue = asyncio.Queue()
            for i in range(sent):
                queue.put_nowait(i)
            tasks = [asyncio.create_task(client(queue)) for _ in range(concurrency)]
            while done < sent // 4 and not all(t.done() for t in tasks):
                await asyncio.sleep(0.01)
            os.kill(victim, signal.SIGKILL)  # a replica's process dies under load
            await asyncio.wait_for(asyncio.gather(*tasks), 120)

        asyncio.run(load())
        # every request ended, with its result or a clear error; nothing else
        assert sum(outcomes.values()) == sent, outcomes
        assert set(outcomes) <= {"ok", "crashed"}, outcomes
        mine = [r for r in got if r.model == "faulty"]
        retried = [r for r in mine if r.retries]
        assert retried, "no request was on the killed replica"
        assert all(r.outcome == "ok" for r in retried), Counter(r.outcome for r in retried)
        # Ray replaces the replica; the backend counts the death and keeps serving on both
        stats = backend.stats()["faulty"]
        assert stats["restarts"] >= 1 and stats["retried"] >= len(retried)
        wait_for(lambda: backend.stats()["faulty"]["replicas"]["ready"] == 2, timeout_s=60,
                 message="Ray started a replacement replica")
        wait_for(lambda: burst(backend, "faulty", 16, 2) or any(
            w["pids"][0] not in (victim, *[v["pids"][0] for v in workers.values()])
            for w in backend.stats()["faulty"]["workers"].values()), timeout_s=30, message="the new replica answering")
    unsubscribe()


def test_pipeline_of_two_deployments_equals_the_whole_model(backend, zoo_mlp, tmp_path):
    art = zoo_mlp.save(tmp_path / "mlp")
    x = zoo_mlp.eval_data[0][:40].astype(np.float32)
    whole = art.build_runner()(x)
    config = {"placement": {"stages": 2}, "batching": {"max_batch_size": 8, "max_delay_ms": 2}}
    with serving(backend, "piped", art, config):
        info = backend.model_info("piped")
        assert info["deployments"] == ["piped-stage0", "piped-stage1"]
        deployments = backend.stats()["piped"]["deployments"]
        assert all(deployments[d]["replicas"].get("RUNNING") == 1 for d in info["deployments"]), deployments
        one_by_one = asyncio.run(_gather(backend, "piped", [x[i:i + 1] for i in range(len(x))]))
        np.testing.assert_allclose(np.concatenate(one_by_one), whole, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(backend.infer("piped", x), whole, rtol=1e-5, atol=1e-6)  # split in 5 batches


def test_swapping_the_variant_rolls_new_replicas(backend, tmp_path):
    first = make_artifact("echo", tmp_path / "echo", shape=(2,))
    second = make_artifact("sleepy", tmp_path / "sleepy", ms=1, shape=(2,))
    with serving(backend, "swap", first):
        burst(backend, "swap", 4, 2)
        before = {w["pids"][0] for w in backend.stats()["swap"]["workers"].values()}
        backend.swap_variant("swap", second)
        assert backend.model_info("swap")["artifact"] == str(second.path)
        wait_for(lambda: burst(backend, "swap", 4, 2) or any(
            w["pids"][0] not in before for w in backend.stats()["swap"]["workers"].values()),
            timeout_s=30, message="a replica of the new variant answering")
        assert any("artifact" in c.changes for c in backend.changes if c.model == "swap")


def test_model_errors_overload_and_bad_input_are_clear(backend, tmp_path):
    art = make_artifact("sleepy", tmp_path / "sleepy", ms=200, shape=(2,), error_value=-1.0)
    config = {"batching": {"max_batch_size": 1}, "admission": {"max_queue": 2}}
    with serving(backend, "strict", art, config):
        with pytest.raises(ServingError, match="'strict' failed on this input: .*refuses"):
            backend.infer("strict", np.full((1, 2), -1.0, np.float32))
        with pytest.raises(ConfigError, match="shape"):
            backend.infer("strict", np.ones((1, 3), np.float32))
        with pytest.raises(ModelNotFound, match="'nope'.*served"):
            backend.infer("nope", np.ones((1, 2), np.float32))
        results = asyncio.run(_gather(backend, "strict", [np.ones((1, 2), np.float32)] * 12))
        refused = [r for r in results if isinstance(r, Overloaded)]
        assert refused and "max_queue=2" in str(refused[0]), results
        assert all(isinstance(r, (np.ndarray, Overloaded)) for r in results), results
        np.testing.assert_array_equal(backend.infer("strict", np.ones((1, 2), np.float32)), np.ones((1, 2)))
        assert backend.stats()["strict"]["outcomes"]["overloaded"] == len(refused)


def test_close_leaves_no_ray_processes(backend):
    import ray

    from workbench.backends.ray.cluster import ray_processes

    processes = ray_processes()
    names = {p.name() for p in processes}
    assert {"raylet", "gcs_server"} <= names, names
    started = time.monotonic()
    backend.close()
    assert not ray.is_initialized()
    assert not [p.pid for p in processes if p.is_running() and p.status() != "zombie"]
    assert ray_processes() == []
    assert time.monotonic() - started < 60
