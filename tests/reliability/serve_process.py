"""``workbench serve`` as a real process on a free loopback port, and raw HTTP helpers that send exactly
the bytes a test asks for (lying headers included). Shared by the bad-input and security tests and by
``benchmarks/reliability/fuzz.py``."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

#: the request body limit the fuzzed server runs with (small, so 413 cases are cheap to send)
MAX_BODY_BYTES = 1 << 20
ECHO_FEATURES = 4
MLP_FEATURES = 784


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(url: str, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
         timeout_s: float = 30.0) -> Answer:
    """One request on a fresh connection (``http.client`` sets Content-Length itself)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


def raw_call(url: str, request: bytes, *, half_close: bool = False, timeout_s: float = 30.0) -> Answer | None:
    """Send ``request`` as is on a fresh socket and parse the first response; None when the server
    closed the connection without answering. ``half_close`` shuts our sending side after the bytes
    (a client that promised more body than it sent)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout_s) as sock:
        try:
            sock.sendall(request)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered (e.g. 413) and closed before it read everything; read its answer
        response = http.client.HTTPResponse(sock)
        try:
            response.begin()
        except (http.client.RemoteDisconnected, ConnectionResetError):
            return None
        try:
            body = response.read()
        except (http.client.IncompleteRead, ConnectionResetError) as exc:
            body = getattr(exc, "partial", b"")
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, body)


def infer_doc(rows: list[list[float]], name: str = "input") -> dict[str, Any]:
    return {"inputs": [{"name": name, "shape": [len(rows), len(rows[0])], "datatype": "FP32",
                        "data": [v for row in rows for v in row]}]}


class ServeProcess:
    """``workbench serve`` of the test doubles ``echo`` (4 features, identity) and ``mlp`` (the seeded
    784-1024-1024-10 reference MLP) in a child process; all its output goes to ``log``."""

    def __init__(self, folder: Path, *, token: str | None = None, extra_args: tuple[str, ...] = ()):
        from workbench.testing import make_artifact

        models = folder / "models"
        if not (models / "echo" / "manifest.json").is_file():
            make_artifact("echo", models / "echo", shape=(ECHO_FEATURES,))
            make_artifact("reference_mlp", models / "mlp", name="mlp")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / f"serve-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if k != "WORKBENCH_TOKEN"}
        if token is not None:
            env["WORKBENCH_TOKEN"] = token
        env.setdefault("PYTHONUNBUFFERED", "1")
        args = [str(models / "echo"), str(models / "mlp"), "--port", str(self.port),
                "--max-body-bytes", str(MAX_BODY_BYTES), *extra_args]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", *args],
                                         stdout=out, stderr=subprocess.STDOUT, env=env)
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"workbench serve exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if call(self.url, "GET", "/v2/health/ready", headers=self.headers, timeout_s=5).status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"workbench serve not ready within {timeout_s} s:\n{self.output()}")
            time.sleep(0.1)

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM, wait (kill after ``timeout_s``); returns the exit code."""
        from benchmarks.reliability.served import stop_tree

        stop_tree(self.proc, timeout_s)
        return self.proc.returncode

    def healthy(self) -> bool:
        """Ready, and a real inference on each model is still correct."""
        if call(self.url, "GET", "/v2/health/ready", headers=self.headers).status != 200:
            return False
        rows = [[1.5, -2.0, 0.25, 8.0], [0.0, 3.0, -1.0, 2.5]]
        echo = call(self.url, "POST", "/v2/models/echo/infer", orjson.dumps(infer_doc(rows)), self.headers)
        if echo.status != 200 or echo.json()["outputs"][0]["data"] != [v for r in rows for v in r]:
            return False
        mlp = call(self.url, "POST", "/v2/models/mlp/infer",
                   orjson.dumps(infer_doc([[0.5] * MLP_FEATURES])), self.headers)
        return mlp.status == 200 and mlp.json()["outputs"][0]["shape"] == [1, 10]

    def five_hundreds(self) -> int:
        """5xx responses the server has counted (its Prometheus metrics)."""
        text = call(self.url, "GET", "/metrics", headers=self.headers).body.decode()
        return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
                   if line.startswith("workbench_http_responses_total") and 'code="5' in line)


@contextmanager
def serve_process(folder: Path, **kwargs: Any) -> Iterator[ServeProcess]:
    served = ServeProcess(folder, **kwargs)
    try:
        served.wait_ready()
        yield served
    finally:
        served.stop()


# ------------------------------------------------------------------ tally (for the long benchmark run)
TALLY_ENV = "WORKBENCH_FUZZ_TALLY"


def endpoint_of(method: str, path: str) -> str:
    """The route a request was aimed at, as the OpenAPI document names it (``other`` for none)."""
    parts = path.split("?", 1)[0].split("/")
    if parts[:3] == ["", "v2", "models"] and len(parts) >= 4:
        rest = parts[4:]
        if rest[:1] == ["versions"] and len(rest) >= 2:
            base, rest = "/v2/models/{name}/versions/{version}", rest[2:]
        else:
            base = "/v2/models/{name}"
        suffix = "" if not rest else f"/{rest[0]}" if rest[0] in ("infer", "ready") and len(rest) == 1 else "/…"
        return f"{method} {base}{suffix}"
    known = ("/v2", "/v2/health/live", "/v2/health/ready", "/metrics", "/openapi.json")
    return f"{method} {path if path in known else 'other'}"


def tally(family: str, endpoint: str, status: int | None) -> None:
    """Append one case to the tally file named by ``$WORKBENCH_FUZZ_TALLY`` (no-op when unset)."""
    target = os.environ.get(TALLY_ENV)
    if target:
        with open(target, "ab") as f:
            f.write(orjson.dumps({"family": family, "endpoint": endpoint, "status": status}) + b"\n")


def examples(default: int) -> int:
    """How many examples a property runs: ``default`` in ``make test``, more from the benchmark."""
    return int(os.environ.get("WORKBENCH_FUZZ_EXAMPLES", default))
