"""HTTP errors: every failure leaves as ``{"error": "..."}`` with the status that names whose fault it was.

===========================================  ======  =============================
cause                                        status  extra header
===========================================  ======  =============================
malformed body, wrong name/shape/datatype    400
missing or wrong bearer token                401     ``WWW-Authenticate: Bearer``
unknown model or version, unknown path       404
body larger than the limit                   413
unsupported ``Content-Encoding``             415
overloaded (queue full), model not ready     503     ``Retry-After: <seconds>``
the request's deadline passed                504
a fault of the server itself                 500     (never for a client's mistake)
===========================================  ======  =============================
"""

from __future__ import annotations

import logging
import math

import orjson

from workbench.errors import (
    BackendUnavailable,
    ConfigError,
    ModelNotFound,
    Overloaded,
    RequestTimeout,
    WorkbenchError,
    WorkerCrashed,
)

log = logging.getLogger("workbench.http")

#: Seconds a client is told to wait before retrying when the service is not ready or a worker died.
DEFAULT_RETRY_AFTER_S = 1.0

class HTTPError(Exception):
    """A response to send instead of a result: status, message, and extra headers."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}

    def body(self) -> bytes:
        return orjson.dumps({"error": self.message})

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """ASGI headers, content type and length included."""
        body_len = len(self.body())
        out = [(b"content-type", b"application/json"), (b"content-length", str(body_len).encode())]
        out += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()]
        return out

    def __repr__(self) -> str:
        return f"HTTPError({self.status}, {self.message!r})"


def bad_request(message: str) -> HTTPError:
    return HTTPError(400, message)


def retry_after(seconds: float) -> dict[str, str]:
    """The ``Retry-After`` header: whole seconds, at least 1 (HTTP allows no fractions)."""
    value = seconds if isinstance(seconds, (int, float)) and math.isfinite(seconds) else DEFAULT_RETRY_AFTER_S
    return {"Retry-After": str(max(1, math.ceil(value)))}


def from_exception(exc: BaseException) -> HTTPError:
    """Map an exception from the serving runtime to the HTTP error a client should see.

    A user's mistake (``ConfigError``) is a 400 with the runtime's own message; an unexpected exception
    is logged here with its traceback and the client gets a 500 that gives nothing away."""
    if isinstance(exc, HTTPError):
        return exc
    if isinstance(exc, ConfigError):
        return HTTPError(400, str(exc))
    if isinstance(exc, ModelNotFound):
        return HTTPError(404, str(exc))
    if isinstance(exc, Overloaded):
        return HTTPError(503, str(exc), headers=retry_after(exc.retry_after_s))
    if isinstance(exc, (BackendUnavailable, WorkerCrashed)):
        return HTTPError(503, str(exc), headers=retry_after(getattr(exc, "retry_after_s", DEFAULT_RETRY_AFTER_S)))
    if isinstance(exc, RequestTimeout):
        return HTTPError(504, str(exc))
    if isinstance(exc, WorkbenchError):
        log.error("request failed: %s", exc)
        return HTTPError(500, f"the server failed to serve the request: {exc}")
    log.error("unexpected error while serving a request", exc_info=exc)
    return HTTPError(500, "internal server error; the server log has the details")


__all__ = ["DEFAULT_RETRY_AFTER_S", "HTTPError", "bad_request", "from_exception", "retry_after"]
