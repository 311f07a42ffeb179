"""Serving the dashboard: address, port, token and websocket origins, and a clean stop.

A non-loopback address needs a token (same rule and same ``$WORKBENCH_TOKEN`` as the HTTP API);
websocket connections are accepted only from the origins the page is served on. Ctrl+C or SIGTERM
stops the page and closes every session: load, HTTP API, workers and threads.
"""

from __future__ import annotations

import logging
import signal
import socket
from collections.abc import Callable, Sequence
from typing import Any

from workbench.errors import ConfigError

log = logging.getLogger("workbench.ui")
DEFAULT_PORT = 5006
#: a page's session (its server, load and threads) closes this long after its tab went away
UNUSED_SESSION_LIFETIME_MS = 10_000
CHECK_UNUSED_SESSIONS_MS = 2_000


def free_port(address: str) -> int:
    """A port free on ``address`` right now (what ``--port 0`` means)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((address.strip("[]"), 0))
        return int(sock.getsockname()[1])


def websocket_origins(address: str, port: int, extra: Sequence[str] = ()) -> list[str]:
    """``host:port`` origins a browser may open the dashboard's websocket from."""
    from workbench.http.auth import is_loopback

    hosts: list[str] = []
    if is_loopback(address):
        hosts += ["localhost", "127.0.0.1"]
    elif address in ("0.0.0.0", "::", ""):
        hosts += [socket.gethostname(), socket.getfqdn(), "localhost", "127.0.0.1"]
    else:
        hosts.append(address)
    origins = [f"{h}:{port}" for h in dict.fromkeys(hosts)]
    for item in extra:
        item = item.strip()
        if not item or "/" in item:
            raise ConfigError(f"--allow-origin takes HOST or HOST:PORT (no scheme or path), got {item!r}")
        origins.append(item if item.rsplit(":", 1)[-1].isdigit() else f"{item}:{port}")
    return origins


def dashboard_url(address: str, port: int, token: str | None) -> str:
    host = {"0.0.0.0": socket.gethostname(), "::": socket.gethostname(), "": "127.0.0.1"}.get(address, address)
    return f"http://{host}:{port}/" + (f"?token={token}" if token else "")


def run_dashboard(*, address: str = "127.0.0.1", port: int = DEFAULT_PORT, token: str | None = None,
                  demo: bool = False, allow_origin: Sequence[str] = (), runs_dir: str | None = None,
                  show: bool = False, ready: Callable[[str], None] | None = None) -> None:
    """Serve the dashboard until Ctrl+C or SIGTERM, then close every session. Blocks.

    ``demo``: each new page starts with the default model served and a light load running.
    ``ready(url)`` is called once the page answers."""
    import panel as pn

    from workbench.http.auth import resolve_token
    from workbench.ui.app import close_all_sessions, create_app

    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"port must be in 0..65535 (0 picks a free one), got {port!r}")
    token = resolve_token(address, token)
    try:
        port = port or free_port(address)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {address}: {exc.strerror or exc}") from None
    origins = websocket_origins(address, port, allow_origin)
    extra: dict[str, Any] = {}
    unredact: Callable[[], None] = lambda: None  # noqa: E731
    if token is not None:
        from workbench.ui.auth import TokenAuth, redact_token_in_logs

        auth = TokenAuth(token)
        extra.update(auth_provider=auth, cookie_secret=auth.cookie_secret)
        unredact = redact_token_in_logs(token)

    def page() -> Any:
        return create_app(demo=demo, runs_dir=runs_dir)

    try:
        server = pn.serve({"/": page}, address=address, port=port, websocket_origin=origins, show=False, start=False,
                          title="workbench", verbose=False,
                          unused_session_lifetime_milliseconds=UNUSED_SESSION_LIFETIME_MS,
                          check_unused_sessions_milliseconds=CHECK_UNUSED_SESSIONS_MS, **extra)
    except OSError as exc:
        unredact()
        raise ConfigError(f"cannot listen on {address}:{port}: {exc.strerror or exc}") from None
    loop = server.io_loop

    def stop(*_: Any) -> None:
        loop.asyncio_loop.call_soon_threadsafe(loop.stop)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    url = dashboard_url(address, port, token)
    try:
        server.start()
        if ready is not None:
            loop.add_callback(ready, url)
        if show:
            loop.add_callback(server.show, "/")
        loop.start()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("dashboard stopping: closing its sessions")
        close_all_sessions()
        server.stop()
        unredact()


__all__ = ["DEFAULT_PORT", "dashboard_url", "free_port", "run_dashboard", "websocket_origins"]
