"""LoadRun against a real OIP v2 server over HTTP, with the generator in its own process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from workbench.errors import BackendUnavailable, ConfigError, ModelNotFound
from workbench.load import Closed, Constant, HttpTarget, LoadRun, Poisson
from workbench.telemetry.histogram import LatencyHistogram
from workbench.telemetry.hub import TelemetryHub
from workbench.telemetry.runs import RunRecord
from workbench.testing import wait_for

ROOT = Path(__file__).resolve().parents[2]


def target(server, **kw):
    return HttpTarget(url=server.url, model="echo", **kw)


@pytest.mark.slow
def test_open_loop_rate_is_achieved_within_5_percent_over_10_s(echo_server):
    run = LoadRun(target(echo_server), Constant(rate=200), duration_s=10).run()
    s = run.summary()
    assert s["sent"] == s["ok"] == 2000 and s["errors"] == 0 and s["not_sent"] == 0
    assert s["throughput_rps"] == pytest.approx(200, rel=0.05)
    assert s["send_rate_rps"] == pytest.approx(200, rel=0.05)
    windows = run.windows
    assert [w.index for w in windows] == list(range(len(windows))) and len(windows) in (20, 21)
    assert sum(w.sent for w in windows) == 2000
    assert all(abs(w.sent - 100) <= 1 for w in windows[:19])  # the schedule's pace, window by window
    assert sum(w.latency.count for w in windows if w.latency) == 2000


def test_a_server_stall_shows_in_the_latency_of_every_request_due_during_it(echo_server):
    """Coordinated omission: with only 4 connections, ~196 of the requests due during a 1 s stall wait
    inside the generator, never reaching the server; from their intended send times they still wait up
    to 1 s, so about half of the 200 requests due in the stall must show more than 0.5 s."""
    run = LoadRun(target(echo_server), Constant(rate=200), duration_s=3, max_connections=4)
    with run:
        wait_for(lambda: len(run.windows) >= 2, timeout_s=10)
        echo_server.stall(1.0)
        assert run.wait(30)
    s = run.summary()
    assert s["ok"] == s["sent"] == 600 and s["errors"] == 0
    whole = LatencyHistogram.merged(w.histograms["latency"] for w in run.windows if "latency" in w.histograms)
    assert whole.count == 600
    assert whole.count_above(0.5) >= 80, whole.count_above(0.5)  # ≈ 100 expected: latencies spread over (0, 1] s
    assert whole.count_above(0.9) >= 10
    assert s["latency_max_ms"] >= 950 and s["latency_p99_ms"] >= 900
    assert s["latency_p50_ms"] < 50  # the rest of the run was fast
    assert max(w.latency.max_ms for w in run.windows if w.latency) >= 950
    assert not s["generator_limited"], s["generator_message"]  # the server stalled, not the generator


def test_a_rate_beyond_the_generator_is_flagged_as_generator_limited(echo_server):
    """100k requests/s is several times what one generator process schedules and sends (≈ 20k/s here):
    it falls hundreds of ms behind its schedule, more than a tenth of the (timeout-bounded) latency."""
    run = LoadRun(target(echo_server, timeout_s=0.25), Constant(rate=100_000), duration_s=0.5).run()
    s = run.summary()
    assert s["generator_limited"] is True
    assert "limited by the load generator" in s["generator_message"]
    assert s["generator_lag_p99_ms"] > 10
    assert s["generator_ceiling_rps"] and s["generator_ceiling_rps"] < 100_000


def test_two_generator_processes_split_the_schedule_and_merge_exactly(echo_server):
    schedule = Poisson(rate=300, seed=7)
    run = LoadRun(target(echo_server), schedule, duration_s=1.5, processes=2).run()
    s = run.summary()
    expected = len(schedule.arrivals(1.5))
    assert s["processes"] == 2 and len(run.generator_info) == 2
    assert s["sent"] == s["ok"] == expected == sum(w.sent for w in run.windows)
    merged = LatencyHistogram.merged(w.histograms["latency"] for w in run.windows if "latency" in w.histograms)
    assert merged.count == expected == s["latency_count"]


def test_closed_loop_keeps_at_most_its_clients_in_flight(echo_server):
    run = LoadRun(target(echo_server), Closed(concurrency=3), duration_s=1).run()
    s = run.summary()
    assert s["concurrency"] == 3 and s["target_rps"] is None
    assert s["ok"] > 50 and s["errors"] == 0 and s["ok"] == s["sent"]
    assert all(w.in_flight <= 3 for w in run.windows)
    assert run.record is not None and run.record.context["max_connections"] == 3


def test_errors_are_counted_by_kind(echo_server):
    echo_server.fail_every = (4, 503)  # the probe is request 1, so it passes
    run = LoadRun(target(echo_server), Constant(rate=200), duration_s=1).run()
    s = run.summary()
    assert set(s["errors_by_kind"]) == {"overloaded"}
    assert s["errors_by_kind"]["overloaded"] == pytest.approx(50, abs=2)
    assert s["ok"] + s["errors"] == s["sent"] == 200
    assert sum(w.errors.get("overloaded", 0) for w in run.windows) == s["errors"]


def test_connection_errors_when_the_server_goes_away(echo_server):
    run = LoadRun(target(echo_server, timeout_s=2), Constant(rate=100), duration_s=2, save=False)
    with run:
        wait_for(lambda: len(run.windows) >= 1, timeout_s=10)
        echo_server.close()
        assert run.wait(30)
    s = run.summary()
    assert s["ok"] > 0 and s["errors_by_kind"].get("connection", 0) > 0
    assert run.record is None


def test_binary_tensor_extension(echo_server):
    run = LoadRun(target(echo_server, binary=True), Constant(rate=100), duration_s=0.5, save=False).run()
    assert run.summary()["ok"] == 50 and echo_server.binary_requests == 51  # and the probe


def test_stop_ends_a_long_run_early_and_reaps_the_generator(echo_server):
    run = LoadRun(target(echo_server), Constant(rate=100), duration_s=120)
    run.start()
    wait_for(lambda: len(run.windows) >= 1, timeout_s=10)
    began = time.monotonic()
    run.stop()
    assert time.monotonic() - began < 8
    assert run.done and not any(p.is_alive() for p in run._workers)
    s = run.summary()
    assert s["stopped_early"] and 0 < s["elapsed_s"] < 30
    assert s["ok"] == s["sent"]


def test_run_record_holds_context_windows_and_summary(echo_server, _runs_folder):
    run = LoadRun(target(echo_server), Constant(rate=50), duration_s=1, context={"note": "baseline"}).run()
    record = RunRecord.load(run.record.id)
    assert record.path.parent == _runs_folder
    assert record.windows == tuple(run.windows)
    assert record.summary == run.summary()
    ctx = record.context
    assert ctx["model"] == "echo" and ctx["note"] == "baseline" and ctx["variant"] == "echo-v1"
    assert ctx["serve_config"] == {"batching": {"max_batch_size": 4}}  # from the server's model metadata
    assert ctx["schedule"] == {"kind": "constant", "rate": 50.0}
    assert ctx["target"]["url"] == echo_server.url and ctx["target_info"]["metadata"]["platform"] == "echo"
    assert ctx["versions"]["python"] and ctx["machine"]["cpu_count"] >= 1
    frame = run.to_frame()
    assert list(frame["index"]) == [w.index for w in run.windows] and "latency_p99_ms" in frame


def test_a_shared_hub_receives_the_run_windows(echo_server):
    seen = []
    with TelemetryHub(window_ms=200) as hub:
        hub.subscribe(seen.append)
        run = LoadRun(target(echo_server), Constant(rate=100), duration_s=1, hub=hub, save=False).run()
    assert run.window_ms == 200 and run.first_index >= 1
    assert {w.index for w in run.windows} <= {w.index for w in seen}
    assert sum(w.sent for w in seen) == run.summary()["sent"] == 100


def test_setup_errors_are_clear_and_leave_no_process(echo_server):
    with pytest.raises(ModelNotFound, match="no model 'nope'"):
        LoadRun(HttpTarget(url=echo_server.url, model="nope"), Constant(rate=10), duration_s=1).start()
    with pytest.raises(ConfigError, match="does not fit input"):
        LoadRun(target(echo_server, example=__import__("numpy").zeros((1, 3), "float32")),
                Constant(rate=10), duration_s=1).start()
    port = echo_server.port
    echo_server.close()
    with pytest.raises(BackendUnavailable, match="cannot reach"):
        LoadRun(HttpTarget(url=f"http://127.0.0.1:{port}", model="echo"), Constant(rate=10), duration_s=1).start()
    assert not [p for p in psutil.Process().children() if "loadgen" in " ".join(p.cmdline())]


def test_bad_arguments_are_refused(echo_server):
    with pytest.raises(ConfigError, match="duration_s"):
        LoadRun(target(echo_server), Constant(rate=10), duration_s=0)
    with pytest.raises(ConfigError, match="processes"):
        LoadRun(target(echo_server), Constant(rate=10), duration_s=1, processes=0)
    with pytest.raises(ConfigError, match="base URL"):
        HttpTarget(url="127.0.0.1:8000", model="echo")
    with pytest.raises(ConfigError, match="without a path"):
        HttpTarget(url="http://127.0.0.1:8000/v2/models/echo", model="echo")
    with pytest.raises(ConfigError, match="spread 2 clients over 3"):
        LoadRun(target(echo_server), Closed(concurrency=2), duration_s=1, processes=3)


_ORPHAN_SCRIPT = """
import sys, time
from workbench.load import Constant, HttpTarget, LoadRun

if __name__ == "__main__":
    run = LoadRun(HttpTarget(url=sys.argv[1], model="echo"), Constant(rate=20), duration_s=120, save=False)
    run.start()
    print(run._workers[0].pid, flush=True)
    sys.stdin.read()
"""


def test_the_generator_process_dies_with_its_parent(echo_server, tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(_ORPHAN_SCRIPT)
    parent = subprocess.Popen([sys.executable, str(script), echo_server.url], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = parent.stdout.readline()  # blocks until the run started (the script has its own timeouts)
        pid = int(line)
        assert psutil.Process(pid).ppid() == parent.pid
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)

        def gone() -> bool:
            try:
                return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                return True
        wait_for(gone, timeout_s=10, message="the orphaned generator to exit")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
