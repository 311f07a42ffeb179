"""The OIP v2 HTTP sender: metadata first, one request built once, then the same request many times.

Works with any Open Inference Protocol v2 server (workbench, Triton, KServe, Ray Serve behind an OIP
route). Keep-alive connections in a pool of ``max_connections``; a request that waits for a free
connection waits inside the generator, and its latency (from its intended send time) includes that
wait. Plain ``http://`` goes through the lean pool of :mod:`workbench.load.http_pool`; ``https://``
through aiohttp.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import orjson

from workbench.errors import BackendUnavailable, ConfigError, ModelNotFound
from workbench.load.http_pool import BadResponse, ConnectionPool, Response, encode_request
from workbench.load.targets import HttpTarget
from workbench.models.signature import NUMPY_TO_OIP, OIP_DATATYPES

#: error kinds by HTTP status; other statuses count as ``http_<status>``
STATUS_KINDS = {503: "overloaded", 504: "timeout", 429: "overloaded"}


def error_kind(status: int) -> str:
    return STATUS_KINDS.get(status, f"http_{status}")


def input_arrays(metadata: dict[str, Any], *, batch_size: int, example: np.ndarray | None,
                 seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """One array per model input: ``example`` for a single-input model, else random data of the right shape."""
    inputs = metadata.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ConfigError(f"the model's metadata lists no inputs: {metadata!r}")
    if example is not None and len(inputs) != 1:
        raise ConfigError(f"example= works for single-input models; this one has {len(inputs)} inputs")
    rng = np.random.default_rng(seed)
    out = []
    for spec in inputs:
        name, datatype, shape = spec.get("name"), spec.get("datatype"), spec.get("shape")
        if datatype not in OIP_DATATYPES or not isinstance(shape, list):
            raise ConfigError(f"input {name!r}: unsupported metadata {spec!r}; datatypes: {sorted(OIP_DATATYPES)}")
        dtype = np.dtype(OIP_DATATYPES[datatype])
        if example is not None:
            array = np.ascontiguousarray(example, dtype=dtype)
            if array.ndim != len(shape) or any(d not in (-1, g) for d, g in zip(shape, array.shape, strict=True)):
                raise ConfigError(f"example shape {list(array.shape)} does not fit input {name!r} of shape {shape} "
                                  f"(-1: any size)")
        else:
            dims = [batch_size if i == 0 and d == -1 else (1 if d == -1 else int(d)) for i, d in enumerate(shape)]
            if dtype.kind == "f":
                array = rng.standard_normal(dims).astype(dtype)
            elif dtype.kind == "b":
                array = rng.integers(0, 2, dims).astype(dtype)
            else:
                array = rng.integers(0, 10, dims).astype(dtype)
        out.append((str(name), array))
    return out


def build_body(arrays: list[tuple[str, np.ndarray]], *, binary: bool) -> tuple[bytes, dict[str, str]]:
    """The request body and headers: plain JSON, or the binary tensor extension."""
    specs: list[dict[str, Any]] = []
    raw = []
    for name, array in arrays:
        spec: dict[str, Any] = {"name": name, "shape": list(array.shape),
                                "datatype": NUMPY_TO_OIP[str(array.dtype)]}
        if binary:
            data = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
            spec["parameters"] = {"binary_data_size": len(data)}
            raw.append(data)
        else:
            spec["data"] = array.ravel().tolist()
        specs.append(spec)
    header = orjson.dumps({"inputs": specs})
    if not binary:
        return header, {"Content-Type": "application/json"}
    return header + b"".join(raw), {"Content-Type": "application/octet-stream",
                                    "Inference-Header-Content-Length": str(len(header))}


class _LeanTransport:
    """Plain ``http://``: the raw-asyncio keep-alive pool (:mod:`workbench.load.http_pool`), requests
    encoded to bytes once."""

    def __init__(self, target: HttpTarget, max_connections: int):
        parts = urlsplit(target.url)
        self._host_header = parts.netloc
        self._address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._headers = dict(target.headers)
        self._max_connections = max_connections
        self._pool: ConnectionPool | None = None

    def prepare(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Any:
        return encode_request(method, path, host=self._host_header, headers={**self._headers, **(headers or {})},
                              body=body)

    async def request(self, prepared: Any, keep_body: bool = False) -> Response:
        if self._pool is None:
            self._pool = ConnectionPool(*self._address, max_connections=self._max_connections)
        return await self._pool.request(prepared, keep_body=keep_body)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


class _AiohttpTransport:
    """``https://`` targets: aiohttp (TLS), with its errors mapped to ConnectionError and BadResponse."""

    def __init__(self, target: HttpTarget, max_connections: int):
        self._target = target
        self._max_connections = max_connections
        self._session: Any = None

    def prepare(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Any:
        return method, f"{self._target.url}{path}", body, headers or {}

    async def request(self, prepared: Any, keep_body: bool = False) -> Response:
        import aiohttp

        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=self._max_connections,
                                             ttl_dns_cache=None)
            self._session = aiohttp.ClientSession(connector=connector, headers=self._target.headers,
                                                  timeout=aiohttp.ClientTimeout(total=None))
        method, url, body, headers = prepared
        try:
            async with self._session.request(method, url, data=body or None, headers=headers) as resp:
                data = await resp.read()
                return Response(resp.status, data if keep_body else b"",
                                {k.lower(): v for k, v in resp.headers.items()} if keep_body else {})
        except aiohttp.ClientConnectionError as exc:
            raise ConnectionError(str(exc) or type(exc).__name__) from None
        except aiohttp.ClientError as exc:
            raise BadResponse(str(exc) or type(exc).__name__) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class HttpSender:
    """Sends the prepared OIP v2 request and counts failures by kind.

    ``http://`` targets use the lean keep-alive pool of :mod:`workbench.load.http_pool` (raw asyncio +
    httptools: a fraction of aiohttp's CPU per request); ``https://`` targets use aiohttp. Every
    request (the wait for a free connection included) must end within ``target.timeout_s``. Error
    kinds: ``overloaded`` (503 or 429, refused by admission control), ``timeout`` (504),
    ``http_<status>`` (other statuses), ``client_timeout`` (no answer within ``timeout_s``),
    ``connection`` (refused, reset, or closed before the answer was complete), ``bad_response`` (not
    valid HTTP).
    """

    def __init__(self, target: HttpTarget, *, max_connections: int):
        self.target = target
        self.max_connections = max_connections
        self._timeout_s = float(target.timeout_s)
        self._path = f"/v2/models/{target.model}/infer"
        self._url = f"{target.url}{self._path}"
        self._transport: _LeanTransport | _AiohttpTransport = (
            _AiohttpTransport(target, max_connections) if target.url.startswith("https:")
            else _LeanTransport(target, max_connections))
        self._body = b""
        self._infer: Any = None

    async def _request(self, prepared: Any, keep_body: bool) -> Response:
        async with asyncio.timeout(self._timeout_s):
            return await self._transport.request(prepared, keep_body)

    async def open(self) -> dict[str, Any]:
        t = self.target
        metadata_url = f"{t.url}/v2/models/{t.model}"
        try:
            resp = await self._request(self._transport.prepare("GET", f"/v2/models/{t.model}"), True)
        except (TimeoutError, OSError, BadResponse) as exc:
            raise BackendUnavailable(f"cannot reach {t.url}: {exc or type(exc).__name__}", model=t.model) from None
        text = resp.body.decode(errors="replace")
        if resp.status == 404:
            raise ModelNotFound(f"no model {t.model!r} at {t.url} (GET {metadata_url} answered 404: {text[:200]})",
                                model=t.model)
        if resp.status != 200:
            raise BackendUnavailable(f"GET {metadata_url} answered {resp.status}: {text[:200]}", model=t.model)
        try:
            metadata = orjson.loads(resp.body)
        except orjson.JSONDecodeError:
            raise BackendUnavailable(f"GET {metadata_url} did not answer JSON model metadata") from None
        if not isinstance(metadata, dict):
            raise BackendUnavailable(f"GET {metadata_url} did not answer a JSON object: {text[:200]}")
        arrays = input_arrays(metadata, batch_size=t.batch_size, example=t.example)
        self._body, headers = build_body(arrays, binary=t.binary)
        self._infer = self._transport.prepare("POST", self._path, self._body, headers)
        probe = await self._probe()
        info = {"metadata": metadata, "request_bytes": len(self._body),
                "inputs": {name: list(a.shape) for name, a in arrays}, "probe_response_bytes": probe}
        parameters = metadata.get("parameters")
        if isinstance(parameters, dict):  # workbench's server says which variant and serve config it runs
            info.update(variant=parameters.get("variant"), serve_config=parameters.get("config"))
        return info

    async def _probe(self) -> int:
        """Send one request and fail clearly if the server refuses it (a wrong body is a user mistake)."""
        try:
            resp = await self._request(self._infer, True)
        except (TimeoutError, OSError, BadResponse) as exc:
            raise BackendUnavailable(f"POST {self._url} failed: {exc or type(exc).__name__}") from None
        if resp.status != 200:
            raise BackendUnavailable(f"POST {self._url} answered {resp.status} to the first request: "
                                     f"{resp.body[:300].decode(errors='replace')}", model=self.target.model)
        return len(resp.body)

    async def send(self) -> str | None:
        try:
            async with asyncio.timeout(self._timeout_s):
                resp = await self._transport.request(self._infer)
        except TimeoutError:  # before OSError: TimeoutError is one
            return "client_timeout"
        except OSError:  # ConnectionError and the socket's own errors
            return "connection"
        except BadResponse:
            return "bad_response"
        return None if resp.status == 200 else error_kind(resp.status)

    async def close(self) -> None:
        await self._transport.close()


__all__ = ["HttpSender", "build_body", "error_kind", "input_arrays"]
