"""The dashboard's token: header, URL or signed cookie on every page and websocket; a login form."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from workbench.ui.auth import COOKIE, _safe_next

from .dashboard_process import running_dashboard
from .test_server import _request

TOKEN = "s3cret-token"


def test_only_local_paths_follow_a_login():
    assert _safe_next("/?x=1") == "/?x=1"
    for target in (None, "", "http://evil.example.com/", "//evil.example.com/", "javascript:alert(1)", "relative"):
        assert _safe_next(target) == "/"


@pytest.mark.slow
def test_with_a_token_every_page_and_websocket_needs_it(tmp_path):
    with running_dashboard(tmp_path, "--token", TOKEN) as dash:
        port = dash.port
        status, headers, _ = _request(port, "GET", "/")
        assert status == 302 and headers["Location"].lstrip(".").startswith("/login")
        status, _, body = _request(port, "GET", "/login?next=/")
        assert status == 200 and "needs its access token" in body
        assert _request(port, "GET", "/?token=wrong")[0] == 302
        assert _request(port, "GET", "/", headers={"Authorization": "Bearer wrong"})[0] == 302

        status, headers, body = _request(port, "GET", f"/?token={TOKEN}")
        assert status == 200 and "bokeh" in body.lower()
        cookie = headers["Set-Cookie"].split(";")[0]
        assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in headers["Set-Cookie"]
        assert _request(port, "GET", "/", headers={"Cookie": cookie})[0] == 200
        assert _request(port, "GET", "/", headers={"Cookie": f"{COOKIE}=forged"})[0] == 302
        assert _request(port, "GET", "/", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200

        form = {"Content-Type": "application/x-www-form-urlencoded"}
        status, _, body = _request(port, "POST", "/login", headers=form, body=urlencode({"token": "nope", "next": "/"}))
        assert status == 401 and "wrong" in body
        status, headers, _ = _request(port, "POST", "/login", headers=form,
                                      body=urlencode({"token": TOKEN, "next": "http://evil.example.com/"}))
        assert status == 302 and headers["Location"] == "/" and COOKIE in headers["Set-Cookie"]

        upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                   "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Origin": f"http://127.0.0.1:{port}"}
        assert _request(port, "GET", "/ws", headers=upgrade)[0] == 403
        assert _request(port, "GET", "/ws", headers={**upgrade, "Authorization": f"Bearer {TOKEN}"})[0] == 101
    assert dash.proc.returncode == 0, dash.output()


