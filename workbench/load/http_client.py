"""The OIP v2 HTTP sender: metadata first, one request body built once, then the same body many times.

Works with any Open Inference Protocol v2 server (workbench, Triton, KServe). Keep-alive connections
in a pool of ``max_connections``; a request that waits for a free connection waits inside the
generator, and its latency (from its intended send time) includes that wait.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import orjson

from workbench.errors import BackendUnavailable, ConfigError, ModelNotFound
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


class HttpSender:
    """Sends the prepared OIP v2 request with aiohttp; counts failures by kind."""

    def __init__(self, target: HttpTarget, *, max_connections: int):
        self.target = target
        self.max_connections = max_connections
        self._session: Any = None
        self._body = b""
        self._headers: dict[str, str] = {}
        self._url = f"{target.url}/v2/models/{target.model}/infer"

    async def open(self) -> dict[str, Any]:
        import aiohttp

        t = self.target
        connector = aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=self.max_connections,
                                         ttl_dns_cache=None)
        self._session = aiohttp.ClientSession(connector=connector, headers=t.headers,
                                              timeout=aiohttp.ClientTimeout(total=t.timeout_s))
        metadata_url = f"{t.url}/v2/models/{t.model}"
        try:
            async with self._session.get(metadata_url) as resp:
                text = await resp.text()
                if resp.status == 404:
                    raise ModelNotFound(f"no model {t.model!r} at {t.url} (GET {metadata_url} answered 404: "
                                        f"{text[:200]})", model=t.model)
                if resp.status != 200:
                    raise BackendUnavailable(f"GET {metadata_url} answered {resp.status}: {text[:200]}",
                                             model=t.model)
                metadata = orjson.loads(text)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise BackendUnavailable(f"cannot reach {t.url}: {exc or type(exc).__name__}", model=t.model) from None
        except orjson.JSONDecodeError:
            raise BackendUnavailable(f"GET {metadata_url} did not answer JSON model metadata") from None
        arrays = input_arrays(metadata, batch_size=t.batch_size, example=t.example)
        self._body, self._headers = build_body(arrays, binary=t.binary)
        probe = await self._probe()
        info = {"metadata": metadata, "request_bytes": len(self._body),
                "inputs": {name: list(a.shape) for name, a in arrays}, "probe_response_bytes": probe}
        parameters = metadata.get("parameters")
        if isinstance(parameters, dict):  # workbench's server says which variant and serve config it runs
            info.update(variant=parameters.get("variant"), serve_config=parameters.get("config"))
        return info

    async def _probe(self) -> int:
        """Send one request and fail clearly if the server refuses it (a wrong body is a user mistake)."""
        import aiohttp

        try:
            async with self._session.post(self._url, data=self._body, headers=self._headers) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise BackendUnavailable(f"POST {self._url} answered {resp.status} to the first request: "
                                             f"{body[:300].decode(errors='replace')}", model=self.target.model)
                return len(body)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise BackendUnavailable(f"POST {self._url} failed: {exc or type(exc).__name__}") from None

    async def send(self) -> str | None:
        import aiohttp

        try:
            async with self._session.post(self._url, data=self._body, headers=self._headers) as resp:
                await resp.read()
                return None if resp.status == 200 else error_kind(resp.status)
        except asyncio.TimeoutError:  # aiohttp's own timeout errors derive from it too
            return "client_timeout"
        except (aiohttp.ClientConnectionError, OSError):
            return "connection"
        except aiohttp.ClientError:
            return "client_error"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


__all__ = ["HttpSender", "build_body", "error_kind", "input_arrays"]
