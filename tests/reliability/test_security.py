"""Security: loopback by default; a token beyond loopback, compared in constant time; the dashboard's
websocket refuses other origins; the token never reaches a log (server and dashboard, failed auth
included)."""

from __future__ import annotations

import hmac
import http.client
import inspect
import os
import subprocess
import sys

import pytest

from workbench.errors import ConfigError
from workbench.http.auth import BearerAuth, resolve_token
from workbench.http.errors import HTTPError

from .serve_process import call, serve_process

TOKEN = "tok-7Qf2-not-in-any-log"


# ----------------------------------------------------------------------------------- default binds
def test_every_server_binds_loopback_by_default():
    from workbench.http.commands import serve
    from workbench.http.serve import serve_http
    from workbench.ui.commands import dashboard, demo
    from workbench.ui.server import run_dashboard

    assert inspect.signature(serve_http).parameters["host"].default == "127.0.0.1"
    assert inspect.signature(run_dashboard).parameters["address"].default == "127.0.0.1"
    defaults = {cmd.name: {p.name: p.default for p in cmd.params} for cmd in (serve, dashboard, demo)}
    assert defaults["serve"]["host"] == "127.0.0.1"
    assert defaults["dashboard"]["address"] == defaults["demo"]["address"] == "127.0.0.1"


def test_a_served_api_listens_on_loopback_only(tmp_path):
    import psutil

    with serve_process(tmp_path) as served:
        listening = [c.laddr for c in psutil.Process(served.proc.pid).net_connections("inet")
                     if c.status == psutil.CONN_LISTEN]
        assert listening and all(addr.ip == "127.0.0.1" for addr in listening), listening


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "example.com"])
def test_beyond_loopback_a_token_is_required(monkeypatch, host):
    monkeypatch.delenv("WORKBENCH_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="needs a bearer token"):
        resolve_token(host, None)
    assert resolve_token(host, TOKEN) == TOKEN


@pytest.mark.parametrize("command", [["serve", "mlp", "--host", "0.0.0.0", "--port", "0"],
                                     ["dashboard", "--address", "0.0.0.0", "--port", "0"]])
def test_the_cli_refuses_to_listen_beyond_loopback_without_a_token(tmp_path, command):
    env = {k: v for k, v in os.environ.items() if k != "WORKBENCH_TOKEN"}
    result = subprocess.run([sys.executable, "-m", "workbench.cli", *command], capture_output=True, text=True,
                            timeout=120, env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error:") and "token" in result.stderr


# ------------------------------------------------------------------------------------- the token
def test_the_token_is_compared_in_constant_time(monkeypatch):
    """By behaviour (right, wrong, prefix, longer, missing) and by the code path: every check goes
    through ``hmac.compare_digest``."""
    seen = []
    real = hmac.compare_digest

    def spy(a, b):
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    auth = BearerAuth(TOKEN)
    auth.check([(b"authorization", f"Bearer {TOKEN}".encode())])
    for value in (f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x", "Bearer", TOKEN, f"Basic {TOKEN}", ""):
        with pytest.raises(HTTPError) as info:
            auth.check([(b"authorization", value.encode())])
        assert info.value.status == 401 and TOKEN not in info.value.message
    with pytest.raises(HTTPError):
        auth.check([])
    assert len(seen) == 7

    from workbench.ui import auth as ui_auth

    seen.clear()
    assert ui_auth._same(TOKEN, TOKEN) and not ui_auth._same(TOKEN[:-1], TOKEN) and not ui_auth._same(None, TOKEN)
    assert len(seen) == 2


# ------------------------------------------------------------------------------------------ logs
def _session_of_requests(url: str) -> None:
    wrong = {"Authorization": f"Bearer {TOKEN[:-3]}xyz"}
    good = {"Authorization": f"Bearer {TOKEN}"}
    for path in ("/v2/health/ready", "/v2/models/nope/infer", f"/v2/models/{TOKEN}", f"/nope?token={TOKEN}"):
        call(url, "GET", path)
        call(url, "GET", path, headers=wrong)
        call(url, "GET", path, headers=good)
    call(url, "POST", "/v2/models/echo/infer", b"{bad json", headers=good)
    call(url, "POST", "/v2/models/echo/infer", b'{"inputs": 1}', headers={**good, "Content-Encoding": "br"})


def test_the_api_server_never_logs_its_token(tmp_path):
    with serve_process(tmp_path, token=TOKEN, extra_args=("--host", "127.0.0.1")) as served:
        _session_of_requests(served.url)
        assert call(served.url, "GET", "/v2/health/ready").status == 401
        assert served.healthy()
    log = served.output()
    assert "serving echo, mlp on" in log  # the log was captured
    assert TOKEN not in log


def _raw(port: int, method: str, path: str, headers: dict[str, str] | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _upgrade(origin: str) -> dict[str, str]:
    return {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Origin": origin}


@pytest.mark.slow
def test_the_dashboard_refuses_other_origins_and_never_logs_its_token(tmp_path):
    from tests.ui.dashboard_process import running_dashboard  # noqa: PLC0415  (the dashboard fixture of tests/ui)

    with running_dashboard(tmp_path, "--token", TOKEN) as dash:
        port, bearer = dash.port, {"Authorization": f"Bearer {TOKEN}"}
        for origin in (f"http://127.0.0.1:{port}", f"http://localhost:{port}"):
            assert _raw(port, "GET", "/ws", {**_upgrade(origin), **bearer}) == 101, origin
        for origin in ("http://evil.example", f"http://127.0.0.1.evil.example:{port}", f"http://evil.example:{port}",
                       "null", f"http://localhost:{port}@evil.example", f"http://127.0.0.1:{port + 1}"):
            assert _raw(port, "GET", "/ws", {**_upgrade(origin), **bearer}) == 403, origin
        # failed and successful sign-ins, the token in query strings of pages that do not exist
        for path in ("/", f"/?token={TOKEN}", f"/nope?token={TOKEN}", f"/ws?token={TOKEN}", "/?token=wrong",
                     f"/static/x.js?token={TOKEN}"):
            _raw(port, "GET", path)
            _raw(port, "GET", path, {"Authorization": f"Bearer {TOKEN}x"})
        _raw(port, "GET", f"/ws?token={TOKEN}", _upgrade("http://evil.example"))
    lines = dash.output().splitlines()
    announced = [line for line in lines if line.startswith("dashboard on ")]
    assert len(announced) == 1  # the one URL printed for the user to open carries it, by design
    leaked = [line for line in lines if TOKEN in line and line not in announced]
    assert not leaked, leaked
