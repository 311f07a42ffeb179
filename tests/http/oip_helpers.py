"""Plain ``http.client`` helpers that send exactly the bytes and headers a test asks for."""

from __future__ import annotations

import http.client
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np
import orjson


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return orjson.loads(self.body)


def call(url: str, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
         timeout_s: float = 30.0) -> Answer:
    """One request on a fresh connection; returns status, lower-cased headers and body."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


def infer_body(x: np.ndarray, name: str = "input", **doc) -> bytes:
    return orjson.dumps({"inputs": [{"name": name, "shape": list(x.shape), "datatype": "FP32",
                                     "data": x.ravel().tolist()}], **doc})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
