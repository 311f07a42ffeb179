"""Who may open the dashboard: the same rule as the HTTP API. Loopback is open unless a token is set;
any other address needs a token (``--token`` or ``$WORKBENCH_TOKEN``).

With a token, every page request and every websocket must be authenticated, by one of:

- ``Authorization: Bearer <token>`` (scripts, tests);
- ``?token=<token>`` on the URL (what ``workbench dashboard`` prints), which sets a signed cookie;
- the signed cookie (``workbench_token``) set by the above or by the ``/login`` form.

The cookie is signed with a secret made when the server starts, so it cannot be forged and a restart
logs everyone out. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

from bokeh.server.auth_provider import AuthProvider
from tornado.web import RequestHandler

COOKIE = "workbench_token"
LOGIN_URL = "/login"

_LOGIN_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>workbench: sign in</title></head>
<body style="font-family: sans-serif; margin: 4em auto; max-width: 28em">
<h2>workbench dashboard</h2><p>{message}</p>
<form method="post" action="{action}"><input type="hidden" name="next" value="{next}">
<input type="password" name="token" placeholder="token" autofocus style="width: 100%; padding: .5em">
<p><button type="submit">Open the dashboard</button></p></form></body></html>"""


def _same(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8"))


def _safe_next(target: str | None) -> str:
    """Only a local path may follow a login (no open redirect)."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


class TokenAuth(AuthProvider):
    """A Bokeh auth provider checking one token (header, query argument, or signed cookie)."""

    def __init__(self, token: str):
        self._token = token
        self.cookie_secret = secrets.token_hex(32)
        super().__init__()

    @property
    def get_user(self) -> Any:
        return self._user

    @property
    def login_url(self) -> str:
        return LOGIN_URL

    @property
    def login_handler(self) -> type[RequestHandler]:
        token = self._token

        class LoginHandler(RequestHandler):
            def get(self) -> None:
                self._page("This dashboard needs its access token.")

            def post(self) -> None:
                if _same(self.get_body_argument("token", None), token):
                    _remember(self)
                    self.redirect(_safe_next(self.get_body_argument("next", None)))
                    return
                self.set_status(401)
                self._page("That token is wrong.")

            def _page(self, message: str) -> None:
                from html import escape

                target = _safe_next(self.get_argument("next", None))
                self.set_header("Content-Type", "text/html; charset=utf-8")
                self.write(_LOGIN_PAGE.format(message=escape(message), action=LOGIN_URL, next=escape(quote(target, safe="/?=&"))))

        return LoginHandler

    def _user(self, handler: RequestHandler) -> str | None:
        header = handler.request.headers.get("Authorization")
        if header is not None and _same(header.strip(), f"Bearer {self._token}"):
            return "token"
        if _same(handler.get_argument("token", None), self._token):
            if not _is_websocket(handler):
                _remember(handler)
            return "token"
        cookie = handler.get_signed_cookie(COOKIE, max_age_days=31)
        if cookie is not None and _same(cookie.decode("utf-8", "replace"), "ok"):
            return "token"
        return None


class RedactToken(logging.Filter):
    """Replaces the token in log records with ``***`` (tornado logs the URI, query string included, of
    every 4xx/5xx, and ``?token=`` is how the printed URL signs in)."""

    def __init__(self, token: str):
        super().__init__()
        self._token = token

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self._token in message:
            record.msg, record.args = message.replace(self._token, "***"), None
        return True


def redact_token_in_logs(token: str) -> Callable[[], None]:
    """Install :class:`RedactToken` on every handler of the root logger and on tornado's loggers;
    returns the function that removes it again."""
    redact = RedactToken(token)
    targets: list[logging.Filterer] = [*logging.getLogger().handlers]
    targets += [logging.getLogger(name) for name in ("tornado.access", "tornado.application", "tornado.general")]
    for target in targets:
        target.addFilter(redact)

    def remove() -> None:
        for target in targets:
            target.removeFilter(redact)

    return remove


def _is_websocket(handler: RequestHandler) -> bool:
    return handler.request.headers.get("Upgrade", "").lower() == "websocket"


def _remember(handler: RequestHandler) -> None:
    handler.set_signed_cookie(COOKIE, "ok", expires_days=31, httponly=True, samesite="Strict")


__all__ = ["COOKIE", "LOGIN_URL", "RedactToken", "TokenAuth", "redact_token_in_logs"]
