"""Who may call the API: loopback is open unless a token is set; anything wider needs a bearer token.

The token comes from ``--token`` or the ``WORKBENCH_TOKEN`` environment variable. When set, every
request (health and metrics included) must carry ``Authorization: Bearer <token>``; the comparison
takes constant time.
"""

from __future__ import annotations

import hmac
import ipaddress
import os

from workbench.errors import ConfigError
from workbench.http.errors import HTTPError

TOKEN_ENV = "WORKBENCH_TOKEN"


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; false for 0.0.0.0, ::, other addresses and names."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_token(host: str, token: str | None) -> str | None:
    """The token to require: ``token``, else ``$WORKBENCH_TOKEN``. Refuses a non-loopback address without one."""
    if token is None:
        token = os.environ.get(TOKEN_ENV) or None
    if token is not None and (not token.strip() or any(c.isspace() for c in token)):
        raise ConfigError("the API token must be a non-empty string without spaces")
    if token is None and not is_loopback(host):
        raise ConfigError(
            f"binding {host!r} exposes the API beyond this machine, so it needs a bearer token: pass --token "
            f"or set {TOKEN_ENV} (or bind 127.0.0.1)")
    return token


class BearerAuth:
    """Checks the ``Authorization`` header of ASGI requests against one token."""

    def __init__(self, token: str):
        self._expected = f"Bearer {token}".encode("latin-1")

    def check(self, headers: list[tuple[bytes, bytes]]) -> None:
        """Raise HTTPError 401 unless ``headers`` carry the right bearer token."""
        for key, value in headers:
            if key == b"authorization":
                if hmac.compare_digest(value.strip(), self._expected):
                    return
                raise HTTPError(401, "the bearer token is wrong", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        raise HTTPError(401, "this server needs 'Authorization: Bearer <token>'", headers={"WWW-Authenticate": "Bearer"})


__all__ = ["TOKEN_ENV", "BearerAuth", "is_loopback", "resolve_token"]
