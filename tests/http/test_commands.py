"""``workbench serve`` as a real process, driven by Triton's own client (``tritonclient.http``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import psutil
import pytest
from oip_helpers import call, free_port

from workbench.http.auth import TOKEN_ENV
from workbench.testing import wait_for


class ServeProcess:
    """``workbench serve ...`` in a subprocess; stopped (and checked for leftovers) by ``stop()``."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None):
        self.log = log
        self._log_file = log.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", *args],
                                     stdout=self._log_file, stderr=subprocess.STDOUT, env=env)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, url: str, timeout_s: float = 120.0) -> None:
        def ready():
            if self.proc.poll() is not None:
                pytest.fail(f"workbench serve exited with {self.proc.returncode}:\n{self.output()}")
            try:
                return call(url, "GET", "/v2/health/ready", timeout_s=5).status == 200
            except OSError:
                return False

        wait_for(ready, timeout_s=timeout_s, interval_s=0.1, message="workbench serve ready")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        """Signal the server, wait for it, and check that none of its worker processes outlive it."""
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout_s)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self._log_file.close()
        _, alive = psutil.wait_procs(children, timeout=10)
        for proc in alive:
            proc.kill()
        assert not alive, f"worker processes outlived workbench serve: {[p.pid for p in alive]}"
        return code


@pytest.fixture(scope="module")
def serve_mlp(zoo_mlp, tmp_path_factory):
    """``workbench serve mlp --config serve.yaml --max-delay-ms 1`` on a free port."""
    folder = tmp_path_factory.mktemp("serve")
    config = folder / "serve.yaml"
    config.write_text("batching:\n  max_batch_size: 16\nadmission:\n  max_queue: 256\n")
    port = free_port()
    server = ServeProcess(["mlp", "--config", str(config), "--max-delay-ms", "1", "--port", str(port)],
                          folder / "serve.log")
    url = f"http://127.0.0.1:{port}"
    try:
        server.wait_ready(url)
        yield url, server
    finally:
        server.stop()


@pytest.fixture
def triton(serve_mlp):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url=serve_mlp[0].removeprefix("http://"), network_timeout=30.0)
    yield client
    client.close()


def test_tritonclient_health_and_metadata(triton, serve_mlp):
    assert triton.is_server_live() and triton.is_server_ready() and triton.is_model_ready("mlp")
    assert triton.get_server_metadata()["name"] == "workbench"
    meta = triton.get_model_metadata("mlp")
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 784]}]
    assert meta["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}]
    batching = meta["parameters"]["config"]["batching"]
    assert batching["max_batch_size"] == 16 and batching["max_delay_ms"] == 1  # YAML, then the flag
    assert "serving mlp on http://127.0.0.1:" in serve_mlp[1].output()


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("outputs", ["default", "requested"])
def test_tritonclient_infer_matches_the_model(triton, zoo_mlp, binary, outputs):
    import tritonclient.http as httpclient

    x = zoo_mlp.eval_data[0][:5]
    inp = httpclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    requested = None if outputs == "default" else [httpclient.InferRequestedOutput("logits", binary_data=binary)]
    result = triton.infer("mlp", [inp], outputs=requested, request_id="r-9")
    assert result.get_response()["id"] == "r-9"
    np.testing.assert_allclose(result.as_numpy("logits"), zoo_mlp.predict(x), rtol=1e-4, atol=1e-5)


def test_tritonclient_compressed_requests(triton, zoo_mlp):
    import tritonclient.http as httpclient

    x = zoo_mlp.eval_data[0][:2]
    for algorithm in ("gzip", "deflate"):
        inp = httpclient.InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        result = triton.infer("mlp", [inp], request_compression_algorithm=algorithm)
        np.testing.assert_allclose(result.as_numpy("logits"), zoo_mlp.predict(x), rtol=1e-4, atol=1e-5)


def test_tritonclient_sees_our_error_messages(triton):
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    inp = httpclient.InferInput("input", [1, 3], "FP32")
    inp.set_data_from_numpy(np.zeros((1, 3), np.float32))
    with pytest.raises(InferenceServerException, match=r"the model takes \[-1, 784\]"):
        triton.infer("mlp", [inp])
    with pytest.raises(InferenceServerException, match="unknown model 'nope'"):
        triton.get_model_metadata("nope")


def test_a_non_loopback_address_without_a_token_is_refused(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    proc = ServeProcess(["mlp", "--host", "0.0.0.0", "--port", "0"], tmp_path / "log", env=env)
    assert proc.proc.wait(timeout=60) == 2
    proc.stop()
    assert "needs a bearer token" in proc.output() and "Traceback" not in proc.output()


def test_sigterm_stops_cleanly_after_serving(zoo_mlp, tmp_path):
    port = free_port()
    env = {**os.environ, TOKEN_ENV: "from-env"}
    server = ServeProcess(["mlp", "--name", "digits", "--port", str(port), "--replicas", "2"], tmp_path / "log", env)
    url = f"http://127.0.0.1:{port}"
    try:
        def ready():
            if server.proc.poll() is not None:
                pytest.fail(server.output())
            try:
                return call(url, "GET", "/v2/models/digits/ready", headers={"Authorization": "Bearer from-env"},
                            timeout_s=5).status == 200
            except OSError:
                return False

        wait_for(ready, timeout_s=120, interval_s=0.1, message="workbench serve ready")
        assert call(url, "GET", "/v2/models/digits").status == 401  # the token came from the environment
        meta = call(url, "GET", "/v2/models/digits", headers={"Authorization": "Bearer from-env"}).json()
        assert meta["parameters"]["config"]["placement"]["replicas"] == 2
    finally:
        code = server.stop(signal.SIGTERM)
    assert code == 0, server.output()
    assert "Traceback" not in server.output()
