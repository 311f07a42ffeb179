"""Where load goes: any Open Inference Protocol v2 HTTP endpoint, or a ``Server`` in this process.

A target is a small config; ``sender(...)`` makes the object that sends one request at a time
(``open()`` once, then ``send()`` many times, ``close()``), and returns the error *kind* of a failed
request instead of raising, so the generator counts errors by kind without stopping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import numpy as np

from workbench.errors import ConfigError


class Sender(Protocol):
    async def open(self) -> dict[str, Any]:
        """Prepare (fetch metadata, build the request, send one probe); return facts for the run record."""

    async def send(self) -> str | None:
        """Send one request; ``None`` when it succeeded, else the error kind (e.g. ``"overloaded"``)."""

    async def close(self) -> None: ...


def _check_example(example: Any) -> np.ndarray | None:
    if example is None:
        return None
    array = np.asarray(example)
    if array.ndim < 1 or array.size == 0:
        raise ConfigError(f"example must be a batch (at least one dimension, one row), got shape {array.shape}")
    return array


@dataclass(frozen=True, kw_only=True)
class HttpTarget:
    """An OIP v2 HTTP endpoint: ``POST {url}/v2/models/{model}/infer`` (ours, Triton, KServe...).

    The request body is built once, from ``example`` (a batch) or from random data shaped as the
    model's metadata says (``-1`` = ``batch_size``), as JSON or, with ``binary=True``, with the binary
    tensor extension; then the same body is sent repeatedly.
    """

    url: str
    model: str
    binary: bool = False
    batch_size: int = 1
    timeout_s: float = 10.0
    headers: dict[str, str] = field(default_factory=dict)
    example: np.ndarray | None = field(default=None, compare=False, repr=False)

    in_process_only = False

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"target must be a base URL such as http://127.0.0.1:8000, got {self.url!r}")
        if parts.path not in ("", "/") or parts.query:
            raise ConfigError(f"target must be the server's base URL without a path (the /v2/... part is "
                              f"added), got {self.url!r}")
        object.__setattr__(self, "url", f"{parts.scheme}://{parts.netloc}")
        if not self.model or not isinstance(self.model, str) or "/" in self.model:
            raise ConfigError(f"model must be a model name such as 'mlp', got {self.model!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        if not isinstance(self.timeout_s, (int, float)) or not 0 < self.timeout_s <= 3600:
            raise ConfigError(f"timeout_s must be > 0 and <= 3600, got {self.timeout_s!r}")
        object.__setattr__(self, "example", _check_example(self.example))

    def sender(self, *, max_connections: int) -> Sender:
        from workbench.load.http_client import HttpSender

        return HttpSender(self, max_connections=max_connections)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "http", "url": self.url, "model": self.model, "binary": self.binary,
                "batch_size": self.batch_size, "timeout_s": self.timeout_s,
                "headers": sorted(self.headers),  # names only: values may be credentials
                "example_shape": None if self.example is None else list(self.example.shape)}


@dataclass(frozen=True, kw_only=True)
class InProcessTarget:
    """A ``workbench.serving.Server`` in this process, driven through ``infer_async``.

    The generator runs on its own thread and event loop (it cannot leave the process the server is
    in). Each request sends ``example`` (a batch), or, without one, random data of ``batch_size`` rows
    shaped as ``server.model_info(model)`` says.
    """

    server: Any = field(compare=False)
    model: str
    example: np.ndarray | None = field(default=None, compare=False, repr=False)
    batch_size: int = 1
    timeout_ms: float | None = None  # the server-side deadline passed to infer_async
    timeout_s: float = 10.0  # the client gives up after this long

    in_process_only = True

    def __post_init__(self) -> None:
        if not hasattr(self.server, "infer_async"):
            raise ConfigError(f"server must have infer_async(model, array, timeout_ms=...), got {type(self.server).__name__}")
        if not self.model or not isinstance(self.model, str):
            raise ConfigError(f"model must be a model name, got {self.model!r}")
        example = _check_example(self.example)
        if example is None and not hasattr(self.server, "model_info"):
            raise ConfigError("InProcessTarget needs example= (the input batch to send): this server cannot "
                              "describe its models")
        object.__setattr__(self, "example", example)
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        if self.timeout_ms is not None and not self.timeout_ms > 0:
            raise ConfigError(f"timeout_ms must be > 0 or None, got {self.timeout_ms!r}")
        if not isinstance(self.timeout_s, (int, float)) or not 0 < self.timeout_s <= 3600:
            raise ConfigError(f"timeout_s must be > 0 and <= 3600, got {self.timeout_s!r}")

    def sender(self, *, max_connections: int) -> Sender:
        from workbench.load.inprocess import InProcessSender

        return InProcessSender(self)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "in_process", "model": self.model, "timeout_ms": self.timeout_ms,
                "timeout_s": self.timeout_s, "server": type(self.server).__name__, "batch_size": self.batch_size,
                "example_shape": None if self.example is None else list(self.example.shape)}


Target = HttpTarget | InProcessTarget

__all__ = ["HttpTarget", "InProcessTarget", "Sender", "Target"]
