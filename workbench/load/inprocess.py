"""The in-process sender: drives ``Server.infer_async`` from the generator's own event loop."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import numpy as np

from workbench.errors import (
    BackendUnavailable,
    ConfigError,
    ModelNotFound,
    Overloaded,
    RequestTimeout,
    ServingError,
    WorkerCrashed,
)
from workbench.load.targets import InProcessTarget

log = logging.getLogger(__name__)

#: error kinds by exception type, most specific first
ERROR_KINDS: tuple[tuple[type[BaseException], str], ...] = (
    (Overloaded, "overloaded"),
    (RequestTimeout, "timeout"),
    (WorkerCrashed, "crashed"),
    (ModelNotFound, "not_found"),
    (BackendUnavailable, "unavailable"),
    (ConfigError, "bad_request"),
    (ServingError, "error"),
)


def error_kind(exc: BaseException) -> str:
    for cls, kind in ERROR_KINDS:
        if isinstance(exc, cls):
            return kind
    return "error"


class InProcessSender:
    def __init__(self, target: InProcessTarget):
        self.target = target
        self._logged: set[str] = set()
        self._example: np.ndarray | None = target.example

    def _make_example(self) -> np.ndarray:
        """Random rows shaped as the server's signature for the model says."""
        t = self.target
        signature = t.server.model_info(t.model)["signature"]["input"]
        rng = np.random.default_rng(0)
        shape = (t.batch_size, *signature["shape"])
        dtype = np.dtype(signature.get("dtype", "float32"))
        if dtype.kind == "f":
            return rng.standard_normal(shape).astype(dtype)
        return rng.integers(0, 10, shape).astype(dtype)

    async def open(self) -> dict[str, Any]:
        t = self.target
        if self._example is None:
            self._example = self._make_example()
        try:
            await asyncio.wait_for(t.server.infer_async(t.model, self._example, timeout_ms=t.timeout_ms), t.timeout_s)
        except asyncio.TimeoutError:
            raise BackendUnavailable(f"the first request to {t.model!r} did not answer within {t.timeout_s} s",
                                     model=t.model) from None
        except ServingError:
            raise
        except Exception as exc:  # surface the server's complaint as is
            raise BackendUnavailable(f"the first request to {t.model!r} failed: {exc}", model=t.model) from exc
        info: dict[str, Any] = {"inputs": {"input": list(self._example.shape)}, "dtype": str(self._example.dtype)}
        if hasattr(t.server, "model_info"):
            try:
                model_info = t.server.model_info(t.model)
                info.update(variant=model_info.get("variant"), serve_config=model_info.get("config"))
            except Exception:  # descriptive only
                log.debug("model_info failed", exc_info=True)
        return info

    async def send(self) -> str | None:
        t = self.target
        try:
            await asyncio.wait_for(t.server.infer_async(t.model, self._example, timeout_ms=t.timeout_ms), t.timeout_s)
            return None
        except asyncio.TimeoutError:
            return "client_timeout"
        except Exception as exc:
            kind = error_kind(exc)
            if kind == "error" and type(exc).__name__ not in self._logged:
                self._logged.add(type(exc).__name__)
                log.warning("in-process request failed: %r", exc)
            return kind

    async def close(self) -> None:
        return None


__all__ = ["InProcessSender", "error_kind"]
