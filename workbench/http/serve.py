"""Starting and stopping the HTTP API in front of a running ``Server``.

uvicorn (httptools parser, no access log, no lifespan) runs *inside the server's own event loop*
(``server.run_coroutine``), so a request goes from the socket to the batcher without a thread hop.
Closing stops accepting, lets in-flight requests finish (up to ``drain_timeout_s``), then returns.
"""

from __future__ import annotations

import logging
import math
import signal
import socket
import threading
import time
from typing import Any

from workbench.errors import ConfigError
from workbench.http import DEFAULT_MAX_BODY_BYTES
from workbench.http.app import InferenceApp
from workbench.http.auth import is_loopback, resolve_token

log = logging.getLogger("workbench.http")


class HttpHandle:
    """A running HTTP API: ``url``, ``app``; ``close()`` drains and stops it (the Server stays up)."""

    def __init__(self, *, server: Any, app: InferenceApp, uvicorn_server: Any, future: Any, sock: socket.socket,
                 host: str, unsubscribe: Any, drain_timeout_s: float):
        self.server = server
        self.app = app
        self.host = host
        self.port: int = sock.getsockname()[1]
        self._sock = sock
        self._uvicorn = uvicorn_server
        self._future = future
        self._unsubscribe = unsubscribe
        self._drain_timeout_s = drain_timeout_s
        self._closed = False

    @property
    def url(self) -> str:
        """The base URL clients use (a wildcard bind is reached through loopback)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return not self._future.done()

    def close(self) -> None:
        """Stop accepting connections, wait for in-flight requests (at most ``drain_timeout_s``), stop."""
        if self._closed:
            return
        self._closed = True
        self._uvicorn.should_exit = True
        loop = getattr(self.server, "loop", None)
        try:
            if loop is not None and loop.is_running():  # else the Server closed first and took uvicorn with it
                self._future.result(timeout=self._drain_timeout_s + 5.0)
        except Exception as exc:  # the loop may be gone already if the Server closed first
            log.warning("HTTP server did not stop cleanly: %s", exc)
        finally:
            self._sock.close()  # uvicorn closed it already, unless the Server's loop went first
            if self._unsubscribe is not None:
                self._unsubscribe()
            self.app.close()

    def __enter__(self) -> HttpHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HttpHandle(url={self.url!r}, running={self.running})"


def _bind(host: str, port: int) -> socket.socket:
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ConfigError(f"port must be in 0..65535 (0 picks a free port), got {port!r}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def serve_http(server: Any, *, host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, drain_timeout_s: float = 30.0,
               start_timeout_s: float = 10.0) -> HttpHandle:
    """Serve the OIP v2 API of a started ``Server`` on ``host:port`` (port 0: a free one); returns at once.

    A non-loopback ``host`` needs ``token`` (or ``$WORKBENCH_TOKEN``): every request must then carry
    ``Authorization: Bearer <token>``. Must not be called from the server's own event loop."""
    import uvicorn

    if not isinstance(max_body_bytes, int) or max_body_bytes < 1:
        raise ConfigError(f"max_body_bytes must be a positive integer, got {max_body_bytes!r}")
    token = resolve_token(host, token)
    sock = _bind(host, port)
    app = InferenceApp(server, token=token, max_body_bytes=max_body_bytes)
    unsubscribe = server.subscribe(app.metrics.observe)
    config = uvicorn.Config(
        app, http="httptools", ws="none", lifespan="off", loop="none", access_log=False, log_level="warning",
        proxy_headers=False, server_header=False, timeout_graceful_shutdown=max(1, math.ceil(drain_timeout_s)),
    )
    uv = uvicorn.Server(config)
    future = server.run_coroutine(uv.serve(sockets=[sock]))
    handle = HttpHandle(server=server, app=app, uvicorn_server=uv, future=future, sock=sock, host=host,
                        unsubscribe=unsubscribe, drain_timeout_s=drain_timeout_s)
    deadline = time.monotonic() + start_timeout_s
    while not uv.started:
        if future.done():
            sock.close()
            exc = future.exception()
            raise ConfigError(f"the HTTP server on {host}:{handle.port} failed to start: {exc}")
        if time.monotonic() > deadline:
            handle.close()
            raise ConfigError(f"the HTTP server on {host}:{handle.port} did not start within {start_timeout_s} s")
        time.sleep(0.005)
    if not is_loopback(host):
        log.warning("serving on %s: reachable from other machines; bearer token required", handle.url)
    return handle


def run_http(server: Any, *, ready: Any = None, **kwargs: Any) -> None:
    """Serve until SIGINT or SIGTERM, then drain and return (the blocking form, for the CLI).

    ``ready(handle)`` is called once the API is up. Call from the main thread."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with serve_http(server, **kwargs) as handle:
            if ready is not None:
                ready(handle)
            while not stop.wait(0.5):
                if not handle.running:
                    raise ConfigError("the HTTP server stopped unexpectedly")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


__all__ = ["HttpHandle", "run_http", "serve_http"]
