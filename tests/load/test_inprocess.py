"""The in-process target: a LoadRun driving a Server in this process, on a generator thread."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from workbench.errors import ConfigError, Overloaded, RequestTimeout
from workbench.load import Closed, Constant, InProcessTarget, LoadRun
from workbench.load.inprocess import error_kind


class FlakyServer:
    """A stand-in with the Server's ``infer_async`` signature (a system edge): answers after 1 ms,
    refuses every 3rd request as overloaded and lets every 7th run past its deadline."""

    def __init__(self) -> None:
        self.calls = 0
        self.loops: set[int] = set()
        self.lock = threading.Lock()

    async def infer_async(self, model: str, inputs: np.ndarray, *, timeout_ms: float | None = None) -> np.ndarray:
        with self.lock:
            self.calls += 1
            n = self.calls
        self.loops.add(threading.get_ident())
        await asyncio.sleep(0.001)
        if n > 1 and n % 3 == 0:
            raise Overloaded("queue full", model=model)
        if n > 1 and n % 7 == 0:
            raise RequestTimeout("deadline passed", model=model)
        return inputs


def test_error_kinds_map_the_serving_errors():
    assert error_kind(Overloaded("x")) == "overloaded"
    assert error_kind(RequestTimeout("x")) == "timeout"
    assert error_kind(ConfigError("x")) == "bad_request"
    assert error_kind(ZeroDivisionError()) == "error"


def test_in_process_run_counts_errors_by_kind_on_its_own_thread():
    server = FlakyServer()
    x = np.zeros((1, 4), np.float32)
    run = LoadRun(InProcessTarget(server=server, model="m", example=x), Constant(rate=200), duration_s=1,
                  save=False).run()
    s = run.summary()
    assert s["sent"] == 200 and s["ok"] + s["errors"] == 200
    calls = list(range(2, 202))  # the probe was call 1
    overloaded = sum(1 for n in calls if n % 3 == 0)
    timeouts = sum(1 for n in calls if n % 3 and n % 7 == 0)
    assert s["errors_by_kind"] == {"overloaded": overloaded, "timeout": timeouts}
    assert threading.get_ident() not in server.loops  # the generator ran on its own thread
    assert run.context()["target"]["kind"] == "in_process"


def test_in_process_target_needs_an_example_when_the_server_cannot_describe_models():
    with pytest.raises(ConfigError, match="example="):
        InProcessTarget(server=FlakyServer(), model="m")
    with pytest.raises(ConfigError, match="one generator thread"):
        LoadRun(InProcessTarget(server=FlakyServer(), model="m", example=np.zeros((1, 4))), Closed(concurrency=2),
                duration_s=1, processes=2)


@pytest.mark.slow
def test_a_real_server_gives_server_side_windows(tmp_path):
    pytest.importorskip("workbench.serving.server")
    from workbench.serving import ServeConfig, Server
    from workbench.testing import make_model

    config = ServeConfig.from_dict({"placement": {"replicas": 1}, "batching": {"max_batch_size": 8, "max_delay_ms": 2}})
    with Server(models={"echo": make_model("sleepy", ms=2)}, config=config) as server:
        run = LoadRun(InProcessTarget(server=server, model="echo"), Constant(rate=200), duration_s=1.5,
                      runs_dir=tmp_path).run()
    s = run.summary()
    assert s["ok"] == s["sent"] == 300
    assert s["server_requests"] == 300 and s["server_latency_count"] == 300
    assert 0 < s["server_latency_p50_ms"] <= s["latency_p50_ms"] + 1  # the client sees at least the server's time
    assert s["compute_time_p50_ms"] >= 2  # the model sleeps 2 ms per batch
    assert s["mean_batch_size"] >= 1 and set(s["worker_busy"]) == {"echo/r0"}
    busy = [w.worker_busy["echo/r0"] for w in run.windows if w.worker_busy]
    assert busy and all(0 < b <= 1 for b in busy)
    assert all(set(w.batch_sizes) <= set(range(1, 9)) for w in run.windows)
    assert any("echo" in w.queue_depth for w in run.windows)
    context = run.record.context
    assert context["serve_config"]["batching"]["max_batch_size"] == 8 and context["variant"]
