"""Starting and stopping the API: safe binding, bearer tokens, the port in use, draining on close."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from oip_helpers import call, infer_body

from workbench.errors import ConfigError
from workbench.http.auth import TOKEN_ENV
from workbench.http.serve import serve_http
from workbench.testing import wait_for


def test_binds_loopback_by_default(served):
    assert served.host == "127.0.0.1" and served.url.startswith("http://127.0.0.1:")


def test_a_non_loopback_address_needs_a_token(served, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(ConfigError, match="needs a bearer token"):
        serve_http(served.server, host="0.0.0.0", port=0)


def test_with_a_token_every_request_must_carry_it(served):
    x = np.ones((1, 4), np.float32)
    with serve_http(served.server, host="0.0.0.0", port=0, token="s3cret") as api:
        assert api.url.startswith("http://127.0.0.1:")
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            for method, path, body in (("GET", "/v2/health/ready", None), ("GET", "/metrics", None),
                                       ("POST", "/v2/models/echo/infer", infer_body(x))):
                answer = call(api.url, method, path, body, headers)
                assert answer.status == 401, (headers, path)
                assert "www-authenticate" in answer.headers and "error" in answer.json()
        good = {"Authorization": "Bearer s3cret"}
        assert call(api.url, "GET", "/v2/health/ready", headers=good).status == 200
        assert call(api.url, "POST", "/v2/models/echo/infer", infer_body(x), good).status == 200


def test_a_token_on_loopback_is_enforced_too(served):
    with serve_http(served.server, port=0, token="t0k") as api:
        assert call(api.url, "GET", "/v2").status == 401
        assert call(api.url, "GET", "/v2", headers={"Authorization": "Bearer t0k"}).status == 200


def test_a_port_in_use_is_a_clear_error(served):
    with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{served.port}"):
        serve_http(served.server, port=served.port)


def test_close_drains_requests_in_flight(served):
    """A request computing when close() is called still gets its answer; then the port is closed."""
    server = served.server
    api = serve_http(server, port=0)
    answers = []
    ok_before = server.stats()["sleepy"]["outcomes"].get("ok", 0)
    thread = threading.Thread(target=lambda: answers.append(
        call(api.url, "POST", "/v2/models/sleepy/infer", infer_body(np.full((1, 4), 3, np.float32)))))
    thread.start()
    wait_for(lambda: server.stats()["sleepy"]["in_flight"] == 1, message="request on the worker")
    api.close()
    thread.join(timeout=30)
    assert server.stats()["sleepy"]["outcomes"].get("ok", 0) == ok_before + 1
    assert len(answers) == 1 and answers[0].status == 200
    assert answers[0].json()["outputs"][0]["data"] == [3, 3, 3, 3]
    assert not api.running
    with pytest.raises(ConnectionRefusedError):
        call(api.url, "GET", "/v2/health/live", timeout_s=5)
    assert call(served.url, "GET", "/v2/health/live").status == 200  # the Server and other APIs live on


def test_closing_the_server_first_leaves_nothing_hanging(tmp_path):
    from workbench.serving.server import Server
    from workbench.testing import make_artifact

    with Server(models={"echo": make_artifact("echo", tmp_path / "echo", shape=(4,))}) as server:
        api = serve_http(server, port=0)
        assert call(api.url, "GET", "/v2/health/ready").status == 200
    started = time.monotonic()
    api.close()
    assert time.monotonic() - started < 5
    with pytest.raises(ConnectionRefusedError):
        call(api.url, "GET", "/v2/health/live", timeout_s=5)
