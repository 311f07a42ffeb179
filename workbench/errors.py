"""The exception tree of workbench, in one place.

::

    WorkbenchError
    ├── ConfigError (ValueError)          a setting or argument is not allowed
    ├── ModelLoadError                    a model, file or artifact cannot be loaded
    ├── CompressionError                  a compression step cannot be applied
    └── ServingError                      a request or the service failed
        ├── Overloaded                    refused at admission: queue full (HTTP 503 + Retry-After)
        ├── RequestTimeout                the request's deadline passed (HTTP 504)
        ├── WorkerCrashed                 its worker died and the retry failed too
        ├── ModelNotFound                 no model is served under that name (HTTP 404)
        └── BackendUnavailable            the backend is not running or not ready (HTTP 503)

Every error says what was wrong, what is allowed, and, where it helps, how to fix it.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base class of every error workbench raises on purpose."""


class ConfigError(WorkbenchError, ValueError):
    """A configuration value or argument is invalid."""


class ModelLoadError(WorkbenchError):
    """A model, model file or model artifact cannot be loaded."""


class CompressionError(WorkbenchError):
    """A compression method cannot be applied to this model."""


class ServingError(WorkbenchError):
    """A request could not be served. Carries the model name and request id where known."""

    def __init__(self, message: str, *, model: str | None = None, request_id: int | None = None):
        super().__init__(message)
        self.model = model
        self.request_id = request_id


class Overloaded(ServingError):
    """The request was refused at admission because the queue is full."""

    def __init__(self, message: str, *, retry_after_s: float = 1.0, **context: object):
        super().__init__(message, **context)  # type: ignore[arg-type]
        self.retry_after_s = retry_after_s


class RequestTimeout(ServingError):
    """The request's deadline passed before it completed."""


class WorkerCrashed(ServingError):
    """The worker serving the request died, and so did the retry."""


class ModelNotFound(ServingError):
    """No model is served under the requested name or version."""


class BackendUnavailable(ServingError):
    """The serving backend is not running or not ready."""


__all__ = [
    "BackendUnavailable",
    "CompressionError",
    "ConfigError",
    "ModelLoadError",
    "ModelNotFound",
    "Overloaded",
    "RequestTimeout",
    "ServingError",
    "WorkbenchError",
    "WorkerCrashed",
]
