"""``workbench tune``: end to end (the YAML it writes served by ``workbench serve --config``), the
unreachable exit code, and bad input as one clear line."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest

from workbench.cli import main
from workbench.testing import wait_for

SMALL = ["--replicas", "1", "--max-batch-size", "1,8", "--max-delay-ms", "0", "--routing", "round_robin"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_tune_writes_a_yaml_that_workbench_serve_accepts(zoo_mlp, tmp_path):
    out = tmp_path / "best.yaml"
    done = subprocess.run([sys.executable, "-m", "workbench.cli", "tune", "mlp", "--p99-ms", "1000", "--rate", "50",
                           "--budget-s", "4", "--out", str(out), "--runs-dir", str(tmp_path / "runs"), *SMALL],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "Met p99 <= 1000 ms at 50 req/s" in done.stdout and f"wrote {out}" in done.stdout
    assert "trial  0 [screen] replicas=1" in done.stdout  # a line per finished trial
    port = _free_port()
    log = (tmp_path / "serve.log").open("wb")
    serve = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", "mlp", "--config", str(out),
                              "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/v2/models/mlp/infer"
        body = json.dumps({"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32",
                                       "data": zoo_mlp.example[0].tolist()}]}).encode()

        def answer():
            if serve.poll() is not None:
                pytest.fail((tmp_path / "serve.log").read_text())
            try:
                with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=5) as resp:
                    return json.loads(resp.read())
            except OSError:
                return None

        reply = wait_for(answer, timeout_s=120, interval_s=0.2, message="workbench serve --config best.yaml")
        assert reply["outputs"][0]["shape"] == [1, 10]
    finally:
        serve.terminate()
        serve.wait(timeout=30)
        log.close()


def test_unreachable_objective_exits_1_with_the_reason(zoo_mlp, tmp_path, capsys):
    out = tmp_path / "best.yaml"
    code = main(["tune", "mlp", "--p99-ms", "0.01", "--rate", "100", "--budget-s", "2", "--out", str(out),
                 "--runs-dir", str(tmp_path), *SMALL])
    captured = capsys.readouterr()
    assert code == 1 and not out.exists()
    assert "Unreachable: no config met p99 <= 0.01 ms at 100 req/s" in captured.out
    assert "Traceback" not in captured.out + captured.err


@pytest.mark.parametrize(("args", "words"), [
    (["--p99-ms", "0", "--rate", "100"], "error: p99_ms must be a number > 0, got 0.0"),
    (["--p99-ms", "20"], "give either --rate R"),
    (["--p99-ms", "20", "--rate", "100", "--max-rate"], "give either --rate R"),
    (["--p99-ms", "20", "--rate", "100", "--max-batch-size", "0"], "max_batch_size must be in 1..65536"),
    (["--p99-ms", "20", "--rate", "100", "--replicas", "one"], "--replicas takes comma-separated integers"),
    (["--p99-ms", "20", "--rate", "100", "--variant", "int8"], "--variant takes NAME=PATH"),
])
def test_bad_input_is_one_clear_line(args, words, tmp_path, capsys):
    code = main(["tune", "mlp", "--budget-s", "1", "--out", str(tmp_path / "x.yaml"), *args])
    captured = capsys.readouterr()
    assert code == 2 and words in captured.err and "Traceback" not in captured.err
