"""Property: malformed bodies, headers and shapes sent to ``/infer`` get a 4xx with a JSON error, never a
5xx or a traceback, and the server stays healthy afterwards."""

from __future__ import annotations

import json

import numpy as np
import orjson
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from oip_helpers import call, infer_body

PATH = "/v2/models/mlp/infer"
FEATURES = 784
FUZZ = settings(max_examples=100, deadline=None)

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)), max_leaves=12)


def _dumps(doc: object) -> bytes:
    return json.dumps(doc).encode()  # the stdlib writes integers of any size, as a hostile client may


def _valid() -> dict:
    return {"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FP32", "data": [0.5] * FEATURES}]}


def _assert_client_error(answer) -> None:
    assert 400 <= answer.status < 500, (answer.status, answer.body[:300])
    assert answer.headers["content-type"] == "application/json"
    error = orjson.loads(answer.body)["error"]
    assert isinstance(error, str) and error and "Traceback" not in error


def _healthy(url: str) -> None:
    assert call(url, "GET", "/v2/health/ready").status == 200
    answer = call(url, "POST", PATH, infer_body(np.zeros((1, FEATURES), np.float32)))
    assert answer.status == 200 and answer.json()["outputs"][0]["shape"] == [1, 10]


@FUZZ
@given(body=st.binary(max_size=2048))
def test_random_bytes(served, body):
    _assert_client_error(call(served.url, "POST", PATH, body))


@FUZZ
@given(doc=json_values)
def test_random_json_documents(served, doc):
    _assert_client_error(call(served.url, "POST", PATH, _dumps(doc)))


# one way to break each part of a valid request (each result is invalid by construction)
_MUTATIONS = st.sampled_from([
    ("inputs", None), ("inputs", "x"), ("inputs", []), ("name", None), ("name", "inp"), ("name", 3),
    ("datatype", "FP64"), ("datatype", "BYTES"), ("datatype", None), ("datatype", "fp32"), ("shape", None),
    ("shape", "1,784"), ("data", None), ("data", "0.5"), ("data", {"a": 1}), ("parameters", "x"),
    ("parameters", {"binary_data_size": 3136}), ("outputs", [{"name": "probs"}]), ("outputs", {}),
    ("outputs", [{"name": "logits", "parameters": {"binary_data": "yes"}}]), ("id", 7),
    ("request_parameters", {"timeout": -5}), ("request_parameters", {"binary_data_output": 1}),
])


@FUZZ
@given(mutation=_MUTATIONS, junk=json_values)
def test_one_broken_field(served, mutation, junk):
    field, value = mutation
    doc = _valid()
    tensor = doc["inputs"][0]
    if field == "inputs":
        doc["inputs"] = value
    elif field in ("outputs", "id"):
        doc[field] = value
    elif field == "request_parameters":
        doc["parameters"] = value
    elif value is None:
        del tensor[field]
    else:
        tensor[field] = value
    doc["extra"] = junk  # unknown keys are ignored, so they never make a request valid or invalid
    _assert_client_error(call(served.url, "POST", PATH, _dumps(doc)))


@FUZZ
@given(shape=st.lists(st.integers(-3, 2**40), min_size=0, max_size=4),
       rows=st.integers(0, 3), ragged=st.booleans())
def test_shapes_and_data_that_do_not_fit(served, shape, rows, ragged):
    data = [[0.25] * FEATURES for _ in range(rows)]
    if ragged and data:
        data[-1] = data[-1][:-1]
    assume(not (shape == [rows, FEATURES] and rows >= 1 and not ragged))
    doc = {"inputs": [{"name": "input", "shape": shape, "datatype": "FP32", "data": data}]}
    _assert_client_error(call(served.url, "POST", PATH, _dumps(doc)))


@FUZZ
@given(header=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12),
       encoding=st.sampled_from([None, "gzip", "deflate", "br", "compress", "x-zip"]),
       extra=st.binary(max_size=64), size=st.integers(-10, 10_000))
def test_binary_headers_and_sizes(served, header, encoding, extra, size):
    raw = np.zeros((1, FEATURES), "<f4").tobytes()
    doc = {"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FP32",
                       "parameters": {"binary_data_size": size}}]}
    json_part = orjson.dumps(doc)
    body = json_part + raw + extra
    valid_header = header.strip().isdigit() and int(header) == len(json_part)
    assume(not (valid_header and size == len(raw) and not extra and encoding is None))
    headers = {"Inference-Header-Content-Length": header}
    if encoding is not None:
        headers["Content-Encoding"] = encoding
    _assert_client_error(call(served.url, "POST", PATH, body, headers))


def test_still_healthy_after_the_fuzzing(served):
    """Runs after the properties above (file order): the server answers, and it never answered a 5xx."""
    _healthy(served.url)
    metrics = call(served.url, "GET", "/metrics").body.decode()
    assert 'code="400",model="mlp"' in metrics
    assert not [line for line in metrics.splitlines() if line.startswith("workbench_http_responses_total")
                and 'code="5' in line and 'model="mlp"' in line]
