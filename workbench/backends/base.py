"""The ``Backend`` protocol: what the HTTP API, the load generator and the UI need from a serving
backend. The local backend (:class:`workbench.backends.local.LocalBackend`) implements it; a Ray Serve
backend implements the same methods, so a config that runs locally runs on Ray unchanged."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from workbench.serving.config import ServeConfig
from workbench.serving.records import ConfigChange, RequestRecord


@runtime_checkable
class Backend(Protocol):
    """A serving backend. Errors are those of :mod:`workbench.errors`: ``ModelNotFound``, ``ConfigError``
    (bad input or setting), ``Overloaded`` (with ``retry_after_s``), ``RequestTimeout``,
    ``WorkerCrashed``, ``BackendUnavailable``."""

    def start(self) -> Any:
        """Start serving every configured model; returns when they are ready."""

    def infer(self, model: str, inputs: np.ndarray, *, timeout_ms: float | None = None) -> np.ndarray:
        """One request (a batch of rows) from any thread; blocks until its result or error."""

    async def infer_async(self, model: str, inputs: np.ndarray, *, timeout_ms: float | None = None) -> np.ndarray:
        """The same from an event loop."""

    def reconfigure(self, model: str, config: ServeConfig | Mapping[str, Any] | None = None, *,
                    wait: bool = True, **changes: Any) -> ServeConfig:
        """Change a model's serving config live; returns the new config."""

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per model: queue, in flight, replicas, outcomes, restarts, config."""

    def models(self) -> list[str]:
        """Names of the served models."""

    def model_info(self, name: str) -> dict[str, Any]:
        """name, signature, variant, config, ready."""

    def subscribe(self, callback: Callable[[list[RequestRecord]], None]) -> Callable[[], None]:
        """Receive request records in lists; returns an unsubscribe function."""

    def subscribe_changes(self, callback: Callable[[ConfigChange], None]) -> Callable[[], None]:
        """Receive each configuration change; returns an unsubscribe function."""

    def close(self) -> None:
        """Stop serving and release every process, within a bounded time."""


__all__ = ["Backend"]
