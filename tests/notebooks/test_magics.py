"""``%load_ext workbench`` and the ``%workbench`` magics in a real IPython kernel: cells return at once,
the server answers over HTTP at the URL the magics print, load runs in the background, user mistakes
are one-line UsageErrors, and stopping (or shutting the kernel down) leaves no worker process."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest

from .conftest import process_group, wait_gone

pytestmark = [pytest.mark.notebook, pytest.mark.slow]

URL = re.compile(r"at (http://127\.0\.0\.1:\d+)")


def infer(url: str, rows: int = 1) -> dict:
    body = {"inputs": [{"name": "input", "shape": [rows, 784], "datatype": "FP32", "data": [0.0] * (784 * rows)}]}
    request = urllib.request.Request(f"{url}/v2/models/mlp/infer", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        return json.load(response)


def test_serve_call_load_watch_then_kernel_shutdown_leaves_no_workers(kernel, tmp_path):
    kernel.ok("%load_ext workbench")
    started = kernel.ok("%workbench serve mlp --replicas 2 --max-delay-ms 2\n"
                        "bench = %workbench\n"
                        "print('still starting:', not bench.starting.done())")
    assert "still starting: True" in started.stdout  # the cell returned before the workers were up

    ready = kernel.ok("%workbench wait", timeout_s=240)
    assert "serving mlp (fp32) on local, 2 replicas" in ready.stdout
    url = URL.search(ready.stdout).group(1)
    reply = infer(url, rows=3)
    assert reply["model_name"] == "mlp" and reply["outputs"][0]["shape"] == [3, 10]

    status = kernel.ok("%workbench status")
    table = "\n".join(status.displays)
    assert "serving (local)" in table and url in table and "of 2" in table, table

    kernel.ok("%workbench load --rate 100 --until-stopped")
    kernel.ok("%workbench plot")
    watched = kernel.ok("plot = bench.views[-1]\n"
                        "await bench.until(lambda: plot.latency_points >= 3, timeout_s=90)\n"
                        "print('p99 shown:', bench.state.live.p99_ms is not None, bench.state.load.running)",
                        timeout_s=120)
    assert "p99 shown: True True" in watched.stdout
    processes = kernel.descendants() | process_group(kernel.pid)
    assert len(processes) >= 4  # the kernel, two workers and the load generator at least

    kernel.client.stop_channels()
    kernel.manager.shutdown_kernel(now=False)  # what JupyterLab does: interrupt, shutdown request, then signals
    assert not kernel.manager.is_alive()
    assert wait_gone(processes | process_group(kernel.pid)) == set()


@pytest.mark.ray
@pytest.mark.timeout(600)
def test_kernel_shutdown_while_serving_on_ray_leaves_no_ray_process(kernel):
    pytest.importorskip("ray.serve", reason="the Ray backend needs Ray Serve: pip install 'workbench[ray]'")
    import psutil

    kernel.ok("%load_ext workbench\n%workbench serve mlp --backend ray")
    ready = kernel.ok("%workbench wait", timeout_s=300)
    assert "serving mlp (fp32) on ray" in ready.stdout
    assert infer(URL.search(ready.stdout).group(1))["outputs"][0]["shape"] == [1, 10]
    processes = kernel.descendants() | process_group(kernel.pid)
    names = ""
    for pid in processes:
        try:
            names += " ".join(psutil.Process(pid).cmdline()) + " "
        except psutil.Error:
            pass
    assert "raylet" in names and "gcs_server" in names  # the kernel started a local Ray node

    kernel.client.stop_channels()
    kernel.manager.shutdown_kernel(now=False)  # Ray takes longer to stop than Jupyter waits: what is left is killed
    assert wait_gone(processes | process_group(kernel.pid)) == set()


def test_interrupting_the_kernel_leaves_background_load_running_and_shutdown_saves_its_record(kernel, tmp_path):
    kernel.ok("%load_ext workbench\n%workbench serve mlp\n%workbench load --rate 50 --until-stopped\n"
              "%workbench wait\nbench = %workbench")
    kernel.manager.interrupt_kernel()  # JupyterLab's stop button
    running = kernel.ok("seen = bench.state.live.windows\n"
                        "await bench.until(lambda: bench.state.live.windows >= seen + 4, timeout_s=60)\n"
                        "print('load:', bench.state.load.running, bench.state.live.rps > 0)", timeout_s=90)
    assert "load: True True" in running.stdout
    kernel.client.stop_channels()
    kernel.manager.shutdown_kernel(now=False)
    records = list((tmp_path / "runs").glob("*/summary.json"))
    assert records, "the load was not stopped cleanly at shutdown (no run record saved)"


def test_mistakes_are_one_line_and_stop_ends_every_worker(kernel):
    kernel.ok("%load_ext workbench")

    def refused(line: str, words: str) -> None:
        result = kernel.run(line)
        assert result.error is None, result.error  # a UsageError, not an exception with a traceback
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("UsageError: "), result.stderr
        assert words in lines[0], lines[0]

    refused("%workbench frobnicate", "invalid choice: 'frobnicate'")
    refused("%workbench serve", "required: name")
    refused("%workbench serve mlp --replicas 0", "replicas")
    refused("%workbench serve mlp --routing random", "invalid choice: 'random'")
    refused("%workbench load --rate 10", "nothing is served yet")
    refused("%workbench load --rate 10 --concurrency 4", "not allowed with")
    refused("%workbench stop load", "no load is running")
    refused("%workbench apply --max-batch-size 8", "nothing is being served")

    kernel.ok("%workbench serve /nonexistent/model.pt2")  # fails in the background...
    refused("%workbench wait", "/nonexistent/model.pt2")   # ...and says so when waited for

    kernel.ok("%workbench serve mlp --max-batch-size 8")
    kernel.ok("%workbench wait", timeout_s=240)
    refused("%workbench serve cnn", "already serving mlp")
    workers = kernel.descendants()
    assert workers

    kernel.ok("%workbench stop\n%workbench wait")
    stopped = kernel.ok("bench = %workbench\nprint(bench.state.serve.status)")
    assert stopped.stdout.strip() == "stopped"
    assert wait_gone(workers - _trackers(workers)) == set()  # the kernel lives on; its workers do not
    assert kernel.manager.is_alive()


def _trackers(pids: set[int]) -> set[int]:
    """multiprocessing's resource tracker: one per process that spawned, it lives as long as its parent."""
    import psutil

    out = set()
    for pid in pids:
        try:
            if "resource_tracker" in " ".join(psutil.Process(pid).cmdline()):
                out.add(pid)
        except psutil.NoSuchProcess:
            pass
    return out
