"""Serving the dashboard: the token rule (pages and websockets), origins, and a clean Ctrl+C."""

from __future__ import annotations

import http.client
import socket

import pytest

from workbench.errors import ConfigError
from workbench.ui.server import dashboard_url, run_dashboard, websocket_origins

from .dashboard_process import running_dashboard


def test_websocket_origins_follow_the_bound_address():
    assert websocket_origins("127.0.0.1", 5006) == ["localhost:5006", "127.0.0.1:5006"]
    assert websocket_origins("10.1.2.3", 80, ["proxy.example.com", "lab:8443"]) == [
        "10.1.2.3:80", "proxy.example.com:80", "lab:8443"]
    wide = websocket_origins("0.0.0.0", 5006)
    assert f"{socket.gethostname()}:5006" in wide and "127.0.0.1:5006" in wide
    with pytest.raises(ConfigError, match="HOST or HOST:PORT"):
        websocket_origins("127.0.0.1", 5006, ["http://evil.example.com/"])


def test_the_printed_url_carries_the_token():
    assert dashboard_url("127.0.0.1", 5006, None) == "http://127.0.0.1:5006/"
    assert dashboard_url("127.0.0.1", 5006, "abc") == "http://127.0.0.1:5006/?token=abc"


def test_binding_beyond_loopback_needs_a_token(monkeypatch):
    monkeypatch.delenv("WORKBENCH_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="needs a bearer token"):
        run_dashboard(address="0.0.0.0", port=0)
    with pytest.raises(ConfigError, match="port must be"):
        run_dashboard(port=70000)


def _request(port: int, method: str, path: str, *, headers: dict[str, str] | None = None, body: str | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode("utf-8", "replace")
    finally:
        conn.close()


@pytest.mark.slow
def test_websockets_are_refused_from_other_origins(tmp_path):
    with running_dashboard(tmp_path) as dash:
        upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                   "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Origin": "http://evil.example.com"}
        assert _request(dash.port, "GET", "/ws", headers=upgrade)[0] == 403
