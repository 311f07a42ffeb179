"""Non-blocking pipe ends for the controller's event loop.

Both speak the framing of ``multiprocessing.connection.Connection`` (a 4-byte big-endian length, or
-1 and an 8-byte length for huge messages, then a pickle), so the worker side uses plain
``Connection.recv()`` / ``send()``. On the controller side nothing ever blocks the loop:

- :class:`PipeWriter` writes what the pipe takes now and keeps the rest for ``loop.add_writer``;
- :class:`FrameReader` reads whatever is there (one ``os.read`` per readable event) and returns every
  whole message; end-of-file raises ``EOFError``.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import struct
from collections import deque
from collections.abc import Callable
from typing import Any

_SMALL = struct.Struct("!i")
_LARGE = struct.Struct("!Q")
_READ_CHUNK = 1 << 20


PIPE_SIZE = 1 << 20  # a whole batch fits, so one write and one wake-up per batch


def enlarge(fd: int, size: int = PIPE_SIZE) -> None:
    """Grow a pipe's kernel buffer (Linux ``F_SETPIPE_SZ``); elsewhere, or above the system limit, keep it."""
    import fcntl

    setpipe = getattr(fcntl, "F_SETPIPE_SZ", 1031)
    try:
        fcntl.fcntl(fd, setpipe, size)
    except OSError:
        pass


def _frame(obj: Any) -> tuple[bytes, bytes]:
    payload = pickle.dumps(obj, protocol=5)
    n = len(payload)
    header = _SMALL.pack(n) if n < 0x7FFFFFFF else _SMALL.pack(-1) + _LARGE.pack(n)
    return header, payload


class PipeWriter:
    """Sends pickled messages on a pipe's write end without blocking the loop.

    ``on_error`` is called once if the other end is gone (the process died); later sends are dropped.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, on_error: Callable[[], None]):
        self._loop = loop
        self._fd = fd
        self._on_error = on_error
        self._pending: deque[memoryview] = deque()
        self._watching = False
        self.closed = False
        os.set_blocking(fd, False)

    @property
    def buffered(self) -> int:
        return sum(len(m) for m in self._pending)

    def send(self, obj: Any) -> None:
        if self.closed:
            return
        header, payload = _frame(obj)
        if self._pending:
            self._pending.append(memoryview(header))
            self._pending.append(memoryview(payload))
            return
        try:
            written = os.writev(self._fd, [header, payload])
        except BlockingIOError:
            written = 0
        except OSError:
            self._fail()
            return
        if written < len(header):
            self._pending.append(memoryview(header)[written:])
            self._pending.append(memoryview(payload))
        elif written < len(header) + len(payload):
            self._pending.append(memoryview(payload)[written - len(header):])
        if self._pending and not self._watching:
            self._loop.add_writer(self._fd, self._flush)
            self._watching = True

    def _flush(self) -> None:
        while self._pending:
            chunk = self._pending[0]
            try:
                written = os.write(self._fd, chunk)
            except BlockingIOError:
                return
            except OSError:
                self._fail()
                return
            if written < len(chunk):
                self._pending[0] = chunk[written:]
                return
            self._pending.popleft()
        self._loop.remove_writer(self._fd)
        self._watching = False

    def _fail(self) -> None:
        if not self.closed:
            self.close()
            self._on_error()

    def close(self) -> None:
        """Stop writing; the caller closes the file descriptor."""
        if self._watching:
            self._loop.remove_writer(self._fd)
            self._watching = False
        self._pending.clear()
        self.closed = True


class FrameReader:
    """Reads whole messages from a pipe's read end (set to non-blocking)."""

    def __init__(self, fd: int):
        self._fd = fd
        self._buf = bytearray()
        os.set_blocking(fd, False)

    def read(self) -> list[Any]:
        """Every whole message available now. Raises ``EOFError`` once the writer is gone and the
        messages before that have been returned."""
        eof = False
        while True:
            try:
                chunk = os.read(self._fd, _READ_CHUNK)
            except BlockingIOError:
                break
            if not chunk:
                eof = True
                break
            self._buf += chunk
            if len(chunk) < _READ_CHUNK:
                break
        messages = self._parse()
        if eof and not messages:
            raise EOFError("the worker closed its pipe")
        return messages

    def _parse(self) -> list[Any]:
        buf, pos, out = self._buf, 0, []
        size = len(buf)
        while size - pos >= 4:
            (n,) = _SMALL.unpack_from(buf, pos)
            head = 4
            if n == -1:
                if size - pos < 12:
                    break
                (n,) = _LARGE.unpack_from(buf, pos + 4)
                head = 12
            if size - pos - head < n:
                break
            out.append(pickle.loads(buf[pos + head:pos + head + n]))
            pos += head + n
        if pos:
            del buf[:pos]
        return out


__all__ = ["PIPE_SIZE", "FrameReader", "PipeWriter", "enlarge"]
