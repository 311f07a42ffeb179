"""The OIP v2 HTTP sender: the request it builds (JSON, binary tensors) from metadata, and how it sends and
classifies answers against real servers (aiohttp echo, uvicorn)."""

from __future__ import annotations

import asyncio
import json
import socket

import numpy as np
import pytest

from workbench.errors import BackendUnavailable, ConfigError
from workbench.load.http_client import HttpSender, build_body, error_kind, input_arrays
from workbench.load.targets import HttpTarget

from .uvicorn_app import UvicornServer

METADATA = {"name": "m", "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2, 3]}]}


def test_random_inputs_follow_the_metadata_with_the_batch_size():
    [(name, array)] = input_arrays(METADATA, batch_size=4, example=None)
    assert name == "x" and array.shape == (4, 2, 3) and array.dtype == np.float32
    ints = input_arrays({"inputs": [{"name": "i", "datatype": "INT64", "shape": [-1, 5]},
                                    {"name": "b", "datatype": "BOOL", "shape": [3]}]}, batch_size=2, example=None)
    assert [(n, a.shape, str(a.dtype)) for n, a in ints] == [("i", (2, 5), "int64"), ("b", (3,), "bool")]


def test_an_example_must_fit_the_metadata():
    example = np.arange(12, dtype=np.float64).reshape(2, 2, 3)
    [(_, array)] = input_arrays(METADATA, batch_size=1, example=example)
    assert array.dtype == np.float32 and array.shape == (2, 2, 3)  # cast to the model's datatype
    with pytest.raises(ConfigError, match=r"does not fit input 'x' of shape \[-1, 2, 3\]"):
        input_arrays(METADATA, batch_size=1, example=np.zeros((2, 3)))
    with pytest.raises(ConfigError, match="lists no inputs"):
        input_arrays({"inputs": []}, batch_size=1, example=None)
    with pytest.raises(ConfigError, match="unsupported metadata"):
        input_arrays({"inputs": [{"name": "s", "datatype": "BYTES", "shape": [-1]}]}, batch_size=1, example=None)


def test_json_body_is_an_oip_v2_request():
    array = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    body, headers = build_body([("x", array)], binary=False)
    assert headers == {"Content-Type": "application/json"}
    assert json.loads(body) == {"inputs": [{"name": "x", "shape": [1, 2, 3], "datatype": "FP32",
                                            "data": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]}]}


def test_binary_body_is_a_json_header_then_little_endian_bytes():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([[7, 8]], dtype=np.int64)
    body, headers = build_body([("a", a), ("b", b)], binary=True)
    n = int(headers["Inference-Header-Content-Length"])
    header = json.loads(body[:n])
    assert [i["parameters"]["binary_data_size"] for i in header["inputs"]] == [24, 16]
    assert all("data" not in i for i in header["inputs"])
    np.testing.assert_array_equal(np.frombuffer(body[n:n + 24], "<f4").reshape(2, 3), a)
    np.testing.assert_array_equal(np.frombuffer(body[n + 24:], "<i8").reshape(1, 2), b)


def test_statuses_map_to_error_kinds():
    assert [error_kind(s) for s in (503, 504, 429, 400, 500)] == ["overloaded", "timeout", "overloaded",
                                                                     "http_400", "http_500"]


def test_sender_against_a_real_oip_server(echo_server):
    async def go():
        sender = HttpSender(HttpTarget(url=echo_server.url, model="echo", batch_size=3), max_connections=2)
        try:
            info = await sender.open()
            results = await asyncio.gather(*(sender.send() for _ in range(10)))
        finally:
            await sender.close()
        return info, results

    info, results = asyncio.run(go())
    assert info["inputs"] == {"input": [3, 4]} and info["metadata"]["name"] == "echo"
    assert results == [None] * 10 and echo_server.requests == 11


def _sender(uvicorn_server: UvicornServer, **kw) -> HttpSender:
    return HttpSender(HttpTarget(url=uvicorn_server.url, model="m", **kw), max_connections=kw.pop("n", 4))


def test_sender_sends_the_token_and_counts_503_as_overloaded_on_a_kept_connection(uvicorn_server):
    async def go():
        sender = _sender(uvicorn_server, headers={"Authorization": "Bearer s3cret"})
        try:
            await sender.open()
            ok = [await sender.send() for _ in range(3)]
            uvicorn_server.status = 503
            refused = [await sender.send() for _ in range(3)]
            uvicorn_server.status = 500
            failed = await sender.send()
            return ok, refused, failed
        finally:
            await sender.close()

    ok, refused, failed = asyncio.run(go())
    assert ok == [None] * 3 and refused == ["overloaded"] * 3 and failed == "http_500"
    assert set(uvicorn_server.authorization) == {"Bearer s3cret"}
    assert len(set(uvicorn_server.client_ports)) == 1  # the probe and every answer, errors included, on one connection


def test_a_request_with_no_answer_times_out_and_its_connection_is_replaced(uvicorn_server):
    async def go():
        sender = _sender(uvicorn_server, timeout_s=0.3)
        try:
            await sender.open()
            sender._infer = sender._transport.prepare("POST", "/hang", b"{}", {"Content-Type": "application/json"})
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            kind = await sender.send()
            waited = loop.time() - t0
            sender._infer = sender._transport.prepare("POST", "/v2/models/m/infer", sender._body,
                                                      {"Content-Type": "application/json"})
            return kind, waited, await sender.send()
        finally:
            await sender.close()

    kind, waited, after = asyncio.run(go())
    assert kind == "client_timeout" and 0.25 < waited < 2.0
    assert after is None
    assert len(set(uvicorn_server.client_ports)) == 2  # the timed-out connection was not reused


def test_nothing_listening_is_a_clear_error_and_a_connection_error_kind():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def go():
        sender = HttpSender(HttpTarget(url=f"http://127.0.0.1:{port}", model="m"), max_connections=2)
        try:
            with pytest.raises(BackendUnavailable, match=f"cannot reach http://127.0.0.1:{port}"):
                await sender.open()
            sender._infer = sender._transport.prepare("POST", "/v2/models/m/infer", b"{}")
            return await sender.send()
        finally:
            await sender.close()

    assert asyncio.run(go()) == "connection"


def test_https_targets_go_through_aiohttp():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def go():
        sender = HttpSender(HttpTarget(url=f"https://127.0.0.1:{port}", model="m"), max_connections=2)
        try:
            assert type(sender._transport).__name__ == "_AiohttpTransport"
            with pytest.raises(BackendUnavailable, match="cannot reach https://"):
                await sender.open()
        finally:
            await sender.close()

    asyncio.run(go())
