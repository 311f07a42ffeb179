"""The OIP v2 request the HTTP sender builds: JSON and the binary tensor extension, from metadata."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from workbench.errors import ConfigError
from workbench.load.http_client import HttpSender, build_body, error_kind, input_arrays
from workbench.load.targets import HttpTarget

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
