"""WorkbenchSession against the real thing: zoo model, worker processes, HTTP API, load generator,
telemetry hub and run records, driven the way the dashboard drives it (pump() as the UI thread)."""

from __future__ import annotations

import psutil
import pytest

from workbench.errors import ConfigError
from workbench.testing import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def session(session):
    """The shared session fixture, attached as the dashboard attaches it: updates wait for pump()."""
    session.updates.attach()
    return session


def pump_until(session, condition, timeout_s=60.0, message="condition"):
    """Play the UI thread: pump the session until ``condition()`` holds."""
    def check():
        session.pump()
        return condition()
    return wait_for(check, timeout_s, interval_s=0.05, message=message)


def spawned_children() -> set[int]:
    """Our spawned worker and generator processes (the resource tracker lives as long as we do)."""
    return {p.pid for p in psutil.Process().children(recursive=True)
            if "resource_tracker" not in " ".join(p.cmdline() or [])}


def all_gone(pids: set[int]) -> bool:
    def gone(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True
    return all(gone(p) for p in pids)


def test_load_serve_put_load_tune_live_and_stop(session, zoo_mlp):
    state = session.state
    before = spawned_children()
    session.load_model("mlp").result(300)
    session.pump()
    assert state.model.model_name == "mlp" and state.model.signature.startswith("input float32[N, 784]")
    assert state.model.accuracy is not None and state.model.accuracy > 0.9 and state.model.parameters > 0

    state.serve.param.update(max_delay_ms=1.0, max_batch_size=32)
    session.start_serving().result(180)
    session.pump()
    assert state.serve.status == "serving" and state.serve.url.startswith("http://127.0.0.1:")
    assert state.serve.applied["max_batch_size"] == 32 and state.serve.pending() == {}

    state.load.param.update(schedule="constant", rate=150.0, duration_s=60.0, until_stopped=False)
    session.start_load().result(60)
    # the run's own windows, not only the first figures: those can come from the HTTP generator's probe
    # request, sent before the run's first window, and a change made then is not part of the run
    pump_until(session, lambda: state.live.p99_ms is not None and state.live.rps > 0 and session.load.run.windows,
               message="live figures from the run")
    assert "over HTTP" in state.load.status and state.load.running

    state.serve.max_batch_size = 8
    assert state.serve.pending() == {"max_batch_size": [32, 8]}
    session.apply().result(60)
    pump_until(session, lambda: "max_batch_size 32 → 8" in state.live.last_change, message="change marked")
    assert state.serve.applied["max_batch_size"] == 8 and state.serve.status == "serving"
    marked = [c for w in session.feed.recent for c in w.changes if "max_batch_size" in c["changes"]]
    assert marked and marked[0]["changes"]["max_batch_size"] == [32, 8]

    state.serve.replicas = 2  # new workers start in the background; the page keeps pumping
    session.apply().result(180)
    pump_until(session, lambda: state.serve.workers == 2, message="two replicas reported")
    served = spawned_children() - before
    assert len(served) >= 3  # two workers and the load generator at least

    session.stop_load().result(60)
    pump_until(session, lambda: not state.load.running and state.runs.runs, message="run recorded")
    assert state.load.status == "stopped" and state.runs.runs[0] == state.load.run_id
    from workbench.telemetry.runs import RunRecord

    record = RunRecord.load(state.load.run_id, directory=session.runs_dir)
    assert record.context["source"] == "dashboard" and record.summary["ok"] > 0
    assert any("max_batch_size" in c["changes"] for w in record.windows for c in w.changes)

    session.stop_serving().result(60)
    session.pump()
    assert state.serve.status == "stopped" and state.serve.url == "" and state.serve.applied == {}
    wait_for(lambda: all_gone(served), 30, message="workers and generator stopped")


def test_refusals_say_what_to_do_first(session):
    with pytest.raises(ConfigError, match="load a model first"):
        session.start_serving()
    with pytest.raises(ConfigError, match="start serving first"):
        session.start_load()
    with pytest.raises(ConfigError, match="nothing is being served"):
        session.apply()
    with pytest.raises(ConfigError, match="no load is running"):
        session.stop_load()
    future = session.load_model("/nonexistent/model.pt2")
    with pytest.raises(Exception, match="does not exist"):
        future.result(60)
    session.pump()
    assert "does not exist" in session.state.model.task.error and not session.state.model.task.busy
    assert session.state.model.source == "file"


def test_compress_then_swap_the_variant_in_while_serving(session, zoo_mlp):
    state = session.state
    session.load_model("mlp").result(300)
    state.compress.param.update(quantize=True, quantize_dtype="int8", prune=False, distill=False, onnx=False)
    session.compress().result(600)
    session.pump()
    assert state.compress.variants == ["int8"]
    assert [row["variant"] for row in state.compress.table] == ["fp32", "int8"]
    assert state.compress.param.serve_variant.objects == ["original", "int8"]

    session.start_serving().result(180)
    session.pump()
    assert state.serve.variant == "fp32"
    state.compress.serve_variant = "int8"
    session.apply().result(180)
    pump_until(session, lambda: state.serve.variant == "int8" and "variant fp32 → int8" in state.live.last_change,
               message="variant swapped and marked")
    import numpy as np

    out = session.server.infer("mlp", zoo_mlp.example[:2])
    assert out.shape == (2, 10) and np.argmax(out, 1).tolist() == np.argmax(zoo_mlp.predict(zoo_mlp.example[:2]), 1).tolist()


def test_demo_comes_alive_and_close_stops_everything(tmp_path, zoo_mlp):
    from workbench.ui.session import WorkbenchSession

    before = spawned_children()
    session = WorkbenchSession(runs_dir=str(tmp_path / "runs"))
    try:
        session.demo(rate=80.0)
        assert session.state.section == "Live"
        pump_until(session, lambda: session.state.load.running and session.state.live.p99_ms is not None,
                   timeout_s=180, message="demo alive")
        assert session.state.serve.status == "serving" and session.state.load.until_stopped
        started = spawned_children() - before
        assert started
    finally:
        session.close()
    assert session.closed and session.server is None and not session.load.running
    wait_for(lambda: all_gone(started), 30, message="every process of the session stopped")
    with pytest.raises(ConfigError, match="closed"):
        session.load_model("mlp")


def test_until_stopped_load_runs_segment_after_segment(session, zoo_mlp):
    state = session.state
    session.load_model("mlp").result(300)
    session.start_serving().result(180)
    state.serve.max_delay_ms = 3.0  # a script need not wait for the page to catch up before applying
    session.apply().result(60)
    assert session.server.model_info("mlp")["config"]["batching"]["max_delay_ms"] == 3.0
    session.load.segment_for = lambda schedule: 1.5  # short segments, so the test sees the hand-over
    state.load.param.update(schedule="poisson", rate=60.0, until_stopped=True)
    session.start_load().result(60)
    pump_until(session, lambda: len(state.runs.runs) >= 2, timeout_s=90, message="two segments recorded")
    assert state.load.running and "until stopped" in state.load.status
    session.stop_load().result(60)
    pump_until(session, lambda: not state.load.running, message="load stopped")
    assert state.load.status == "stopped"
