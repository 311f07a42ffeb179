"""A lean HTTP/1.1 client for the load generator: keep-alive connections on raw asyncio, parsed by httptools.

The generator sends the same request over and over, so the request's bytes (request line, headers,
body) are encoded once (:func:`encode_request`) and written with one ``transport.write`` per request;
answers are parsed by ``httptools`` (llhttp, the parser uvicorn uses: Content-Length, chunked,
keep-alive rules). That costs a fraction of a general-purpose client's CPU per request, which matters
when the generator shares a 2-core machine with the server it measures.

:class:`ConnectionPool` holds at most ``max_connections`` connections to one ``host:port``, one
request at a time on each (no pipelining). A request that finds every connection busy waits for one
in FIFO order. A connection the server closes, one whose answer could not be parsed, and one a
timeout or cancellation interrupted mid-answer are discarded; the next request opens a new one.
Failures raise ``ConnectionError`` (refused, reset, closed before the answer was complete) or
:class:`BadResponse` (not valid HTTP/1.1); the caller applies its own timeout (e.g. ``asyncio.timeout``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any

import httptools

from workbench.errors import ConfigError


class BadResponse(Exception):
    """The server's answer was not valid HTTP/1.1 (or arrived when no request was waiting)."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes  # empty unless the request asked for it (keep_body=True)
    headers: dict[str, str]  # lower-case names; empty unless keep_body=True


def _check_header(name: str, value: str) -> None:
    if (not isinstance(name, str) or not isinstance(value, str) or not name or any(c in name for c in "\r\n: ")
            or any(c in value for c in "\r\n") or not (name + value).isascii()):
        raise ConfigError(f"HTTP header {name!r}: {value!r} is not allowed: names and values are ASCII strings, "
                          f"names are not empty and hold no ':', spaces or line breaks, values hold no line breaks")


def encode_request(method: str, path: str, *, host: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    """The whole request as bytes: request line, ``Host``, ``Content-Length`` (when there is a body or the
    method is POST), ``headers``, blank line, body. Header names and values are checked for line breaks."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    for name, value in headers.items():
        _check_header(name, value)
        lines.append(f"{name}: {value}")
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time; the answer completes ``self.waiter``."""

    def __init__(self, pool: ConnectionPool):
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Response] | None = None
        self.closed = False
        self.reusable = False
        self._keep = False
        self._body: list[bytes] = []
        self._headers: dict[str, str] = {}

    # -- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:  # bytes nobody asked for: the connection is out of step
            self._fail(BadResponse(f"{len(data)} bytes arrived with no request waiting"))
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(BadResponse("the server asked to switch protocols"))
        except httptools.HttpParserError as exc:
            self._fail(BadResponse(f"invalid HTTP response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool._forget(self)
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            reason = f": {exc}" if exc else ""
            waiter.set_exception(ConnectionResetError(f"the server closed the connection before the answer "
                                                      f"was complete{reason}"))

    # -- httptools callbacks -----------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        if self._keep:
            self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        if self._keep:
            self._body.append(body)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is None:
            raise httptools.HttpParserError("an answer arrived with no request waiting")
        self.reusable = self.parser.should_keep_alive()
        if not waiter.done():  # else it was cancelled (a timeout): the connection is discarded by then
            waiter.set_result(Response(self.parser.get_status_code(), b"".join(self._body), self._headers))

    # -- use ---------------------------------------------------------------------------------
    def request(self, payload: bytes, keep_body: bool) -> asyncio.Future[Response]:
        """Write ``payload``; the future completes with the answer (or fails with ConnectionError/BadResponse)."""
        waiter = self.waiter = self.pool.loop.create_future()
        self.reusable = False
        self._keep = keep_body
        if keep_body:
            self._body, self._headers = [], {}
        if self.transport is None:  # cannot happen: connection_made runs before the pool hands it out
            raise ConnectionError("the connection is not open")
        self.transport.write(payload)
        return waiter

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.pool._forget(self)
            if self.transport is not None:
                self.transport.close()


class ConnectionPool:
    """Up to ``max_connections`` keep-alive connections to ``host:port`` (plain HTTP/1.1, no TLS)."""

    def __init__(self, host: str, port: int, *, max_connections: int):
        if max_connections < 1:
            raise ConfigError(f"max_connections must be >= 1, got {max_connections}")
        self.host, self.port, self.max_connections = host, port, max_connections
        self.loop = asyncio.get_running_loop()
        self._idle: list[_Connection] = []  # most recently used last (reused first)
        self._open: set[_Connection] = set()  # connected or connecting, idle or busy
        self._connecting = 0
        self._waiters: deque[asyncio.Future[_Connection | None]] = deque()
        self.connections_opened = 0
        self._closed = False

    @property
    def open_connections(self) -> int:
        return len(self._open) + self._connecting

    async def request(self, payload: bytes, *, keep_body: bool = False) -> Response:
        """Send ``payload`` (a whole encoded request) on a free connection and return the answer."""
        conn = await self._acquire()
        try:
            response = await conn.request(payload, keep_body)
        except BaseException:  # an error, a timeout or a cancellation mid-answer: the connection is out of step
            conn.close()
            raise
        self._release(conn)
        return response

    async def _acquire(self) -> _Connection:
        while True:
            if self._closed:
                raise ConnectionError("the connection pool is closed")
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed:
                    return conn
            if self.open_connections < self.max_connections:
                return await self._connect()
            waiter: asyncio.Future[_Connection | None] = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                conn_or_none = await waiter
            except BaseException:
                handed = waiter.result() if waiter.done() and not waiter.cancelled() else None
                if handed is not None:
                    self._release(handed)  # handed over just as we gave up: pass it on
                elif waiter.done() and not waiter.cancelled():
                    self._wake_one(None)  # woken for a free slot just as we gave up: pass that on
                else:
                    try:
                        self._waiters.remove(waiter)
                    except ValueError:
                        pass
                raise
            if conn_or_none is not None and not conn_or_none.closed:
                return conn_or_none
            # None: a connection closed, so there is room to open one; loop round

    async def _connect(self) -> _Connection:
        self._connecting += 1
        try:
            _, conn = await self.loop.create_connection(lambda: _Connection(self), self.host, self.port)
        except BaseException:
            self._connecting -= 1
            self._wake_one(None)  # the slot is free again
            raise
        self._connecting -= 1
        self._open.add(conn)
        self.connections_opened += 1
        return conn

    def _release(self, conn: _Connection) -> None:
        if conn.closed or not conn.reusable or self._closed:
            conn.close()
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    def _forget(self, conn: _Connection) -> None:
        """A connection closed: drop it and let one waiting request open a new one."""
        if conn in self._open:
            self._open.discard(conn)
            self._wake_one(None)

    def _wake_one(self, value: Any) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(value)
                return

    async def close(self) -> None:
        """Close every connection; waiting requests fail with ConnectionError."""
        self._closed = True
        for conn in list(self._open):
            conn.close()
        self._idle.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
        await asyncio.sleep(0)  # let the transports' close callbacks run


__all__ = ["BadResponse", "ConnectionPool", "Response", "encode_request"]
