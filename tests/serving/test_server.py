"""The Server with real worker processes: results, batching, records, several models, bad input."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from workbench.errors import BackendUnavailable, ConfigError, ModelNotFound, RequestTimeout
from workbench.serving import ServeConfig, Server
from workbench.testing import make_model, wait_for


def rows(n: int, start: float = 0.0, width: int = 4) -> np.ndarray:
    return (start + np.arange(n * width, dtype=np.float32)).reshape(n, width)


def test_outputs_equal_a_direct_model_call(shared_server, artifacts):
    x = np.random.default_rng(1).standard_normal((5, 784)).astype(np.float32)
    expected = artifacts.mlp.build_runner()(x)
    np.testing.assert_allclose(shared_server.infer("mlp", x), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(shared_server.infer("mlp", x[:1]), expected[:1], rtol=1e-5, atol=1e-5)


def test_concurrent_requests_each_get_their_own_result(shared_server):
    records = []
    unsubscribe = shared_server.subscribe(records.extend)
    inputs = [rows(1 + i % 3, start=1000.0 * i) for i in range(240)]
    with ThreadPoolExecutor(8) as pool:
        outputs = list(pool.map(lambda x: shared_server.infer("echo", x), inputs))
    for x, y in zip(inputs, outputs):
        np.testing.assert_array_equal(x, y)
    wait_for(lambda: len([r for r in records if r.model == "echo"]) >= 240)
    unsubscribe()
    workers = {r.worker for r in records if r.model == "echo"}
    assert workers == {"echo/r0", "echo/r1"}  # both replicas served


def test_waiting_requests_are_batched_together(shared_server):
    records = []
    unsubscribe = shared_server.subscribe(records.extend)

    async def burst():
        xs = [rows(1, start=i) for i in range(64)]
        return xs, await asyncio.gather(*(shared_server.submit("mlp", np.repeat(x, 196, axis=1)) for x in xs))

    xs, outs = shared_server.run_coroutine(burst()).result(timeout=30)
    assert len(outs) == 64 and all(o.shape == (1, 10) for o in outs)
    wait_for(lambda: len([r for r in records if r.model == "mlp"]) >= 64)
    unsubscribe()
    sizes = [r.batch_size for r in records if r.model == "mlp"]
    assert max(sizes) == 32  # requests that queued while the worker was busy went as a full batch
    assert all(1 <= s <= 32 for s in sizes)


def test_a_request_larger_than_the_batch_is_split_and_reassembled(shared_server):
    x = rows(100)
    np.testing.assert_array_equal(shared_server.infer("echo", x), x)
    assert shared_server.stats()["echo"]["config"]["batching"]["max_batch_size"] == 32


def test_every_request_leaves_a_timing_record(shared_server):
    records = []
    unsubscribe = shared_server.subscribe(records.extend)
    for i in range(5):
        shared_server.infer("echo", rows(2, start=i))
    wait_for(lambda: len(records) >= 5)
    unsubscribe()
    for r in records[:5]:
        assert r.outcome == "ok" and r.model == "echo" and r.rows == 2 and r.retries == 0
        assert r.received_at <= r.enqueued_at <= r.dispatched_at <= r.compute_start <= r.compute_end <= r.completed_at
        assert r.worker in ("echo/r0", "echo/r1") and r.batch_size >= 2 and r.variant == "fp32"
    assert len({r.request_id for r in records}) == len(records)


def test_bad_input_is_refused_with_a_clear_error(shared_server):
    with pytest.raises(ConfigError, match=r"must have shape \(batch, 4\), got \(4,\)"):
        shared_server.infer("echo", np.zeros(4, dtype=np.float32))
    with pytest.raises(ConfigError, match="must have dtype float32, got float64"):
        shared_server.infer("echo", np.zeros((1, 4)))
    with pytest.raises(ModelNotFound, match=r"no model named 'nope' is served; served: \['echo', 'mlp'\]"):
        shared_server.infer("nope", rows(1))
    with pytest.raises(ConfigError, match="cannot be read as float32"):
        shared_server.infer("echo", [["a", "b", "c", "d"]])
    with pytest.raises(ConfigError, match="timeout_ms must be a number > 0, got 0"):
        shared_server.infer("echo", rows(1), timeout_ms=0)
    np.testing.assert_array_equal(shared_server.infer("echo", [[1, 2, 3, 4]]), [[1, 2, 3, 4]])  # lists convert
    assert shared_server.stats()["echo"]["outcomes"]["bad_request"] >= 4


def test_requests_end_by_their_deadline(shared_server, artifacts):
    shared_server.add_model("slow", artifacts.sleepy, ServeConfig(batching={"max_batch_size": 1}))
    try:
        async def three():  # one computes (20 ms), one waits in the worker's pipe, one in the queue
            return await asyncio.gather(*(shared_server.submit("slow", rows(1), timeout_ms=5) for _ in range(3)),
                                        return_exceptions=True)

        t0 = time.monotonic()
        outcomes = shared_server.run_coroutine(three()).result(timeout=10)
        assert time.monotonic() - t0 < 1.0
        assert all(isinstance(o, RequestTimeout) for o in outcomes), outcomes
        assert "did not complete within its deadline of 5 ms" in str(outcomes[0])
        assert any("waiting in the queue" in str(o) for o in outcomes)
        assert any("on worker slow/r0" in str(o) for o in outcomes)
        np.testing.assert_array_equal(shared_server.infer("slow", rows(1)), rows(1))  # it carries on
    finally:
        shared_server.remove_model("slow")


def test_async_entry_points(shared_server):
    x = rows(3)

    async def from_a_notebook_loop():  # a loop that is not the server's
        return await shared_server.infer_async("echo", x)

    np.testing.assert_array_equal(asyncio.run(from_a_notebook_loop()), x)

    async def on_the_server_loop():
        assert asyncio.get_running_loop() is shared_server.loop
        return await shared_server.submit("echo", x), await shared_server.infer_async("echo", x)

    a, b = shared_server.run_coroutine(on_the_server_loop()).result(timeout=10)
    np.testing.assert_array_equal(a, x)
    np.testing.assert_array_equal(b, x)

    async def wrong_loop():
        await shared_server.submit("echo", x)

    with pytest.raises(RuntimeError, match="must be awaited on server.loop"):
        asyncio.run(wrong_loop())


def test_a_cancelled_request_ends_as_cancelled(shared_server, artifacts):
    shared_server.add_model("slow", artifacts.sleepy)
    try:
        records = []
        unsubscribe = shared_server.subscribe(records.extend)

        async def cancel_one():
            task = asyncio.ensure_future(shared_server.submit("slow", rows(1)))
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        shared_server.run_coroutine(cancel_one()).result(timeout=10)
        wait_for(lambda: [r for r in records if r.model == "slow"])
        unsubscribe()
        assert [r.outcome for r in records if r.model == "slow"] == ["cancelled"]
    finally:
        shared_server.remove_model("slow")


def test_several_models_at_once_each_with_its_own_workers(shared_server, artifacts):
    x_mlp = np.random.default_rng(2).standard_normal((3, 784)).astype(np.float32)
    expected = artifacts.mlp.build_runner()(x_mlp)
    errors = []

    def client(model: str) -> None:
        try:
            for i in range(30):
                if model == "mlp":
                    np.testing.assert_allclose(shared_server.infer("mlp", x_mlp), expected, rtol=1e-5, atol=1e-5)
                else:
                    x = rows(2, start=i)
                    np.testing.assert_array_equal(shared_server.infer("echo", x), x)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(m,)) for m in ("mlp", "echo", "mlp", "echo")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    stats = shared_server.stats()
    assert set(stats) == {"echo", "mlp"}
    assert stats["echo"]["replicas"]["ready"] == 2 and stats["mlp"]["replicas"]["ready"] == 1
    pids = [set(w["pids"]) for m in stats.values() for w in m["workers"].values()]
    assert len(set().union(*pids)) == 3  # three separate worker processes


def test_models_are_added_and_removed_live(shared_server, artifacts):
    shared_server.add_model("late", artifacts.echo, ServeConfig(batching={"max_batch_size": 4}))
    info = shared_server.model_info("late")
    assert info["ready"] and info["variant"] == "fp32" and info["config"]["batching"]["max_batch_size"] == 4
    assert info["signature"]["input"]["shape"] == [4]
    np.testing.assert_array_equal(shared_server.infer("late", rows(9)), rows(9))
    with pytest.raises(ConfigError, match="already served"):
        shared_server.add_model("late", artifacts.echo)
    shared_server.remove_model("late")
    assert shared_server.models() == ["echo", "mlp"]
    with pytest.raises(ModelNotFound):
        shared_server.infer("late", rows(1))
    kinds = [c.description for c in shared_server.changes if c.model == "late"]
    assert kinds == ["serving late (fp32)", "stopped serving late"]


def test_serves_a_model_object_and_an_artifact_path(artifacts):
    model = make_model("echo", shape=(4,))
    with Server(models={"obj": model, "path": str(artifacts.echo.path)}) as server:
        assert model.artifact is None  # the user's object is left alone
        for name in ("obj", "path"):
            np.testing.assert_array_equal(server.infer(name, rows(2)), rows(2))
    with pytest.raises(BackendUnavailable, match="closed"):
        server.infer("obj", rows(1))


def test_unservable_sources_and_configs_are_refused():
    with pytest.raises(ConfigError, match="cannot serve a int"):
        Server(models={"x": 3}).start()
    with pytest.raises(ConfigError, match=r"config names model\(s\) \['other'\]"):
        Server(models={"x": "mlp"}, config={"other": ServeConfig()})
    with pytest.raises(BackendUnavailable, match="not running"):
        Server(models={}).infer("x", rows(1))


def test_a_batch_waits_up_to_max_delay_for_company(shared_server, artifacts):
    shared_server.add_model("delayed", artifacts.echo, ServeConfig(batching={"max_batch_size": 8, "max_delay_ms": 150}))
    try:
        records = []
        unsubscribe = shared_server.subscribe(records.extend)

        async def staggered():
            first = asyncio.ensure_future(shared_server.submit("delayed", rows(1, 1)))
            await asyncio.sleep(0.02)
            second = asyncio.ensure_future(shared_server.submit("delayed", rows(2, 10)))
            return await asyncio.gather(first, second)

        a, b = shared_server.run_coroutine(staggered()).result(timeout=10)
        np.testing.assert_array_equal(a, rows(1, 1))
        np.testing.assert_array_equal(b, rows(2, 10))
        wait_for(lambda: len(records) >= 2)
        unsubscribe()
        first, second = sorted(records, key=lambda r: r.received_at)
        assert first.batch_size == second.batch_size == 3  # the worker was idle, yet the batch waited
        assert first.dispatched_at == second.dispatched_at
        assert first.dispatched_at - first.enqueued_at >= 0.15  # closed by the oldest request's max_delay
    finally:
        shared_server.remove_model("delayed")
