"""Property: every endpoint, whatever the path, method, headers or body, answers a clear 4xx (JSON
``{"error": ...}``) or a success, never a 5xx, a hang or a traceback; huge tensors are refused before
anything is allocated, deep nesting is a 400; and the server stays healthy and correct afterwards.

``tests/http/test_fuzz.py`` fuzzes ``/infer`` bodies; this file covers paths, methods, headers and
sizes on every route, against ``workbench serve`` as a real process. ``WORKBENCH_FUZZ_EXAMPLES`` raises
the example counts (``benchmarks/reliability/fuzz.py``)."""

from __future__ import annotations

import gzip
import json
from urllib.parse import quote

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .serve_process import (
    ECHO_FEATURES,
    MAX_BODY_BYTES,
    MLP_FEATURES,
    Answer,
    call,
    endpoint_of,
    examples,
    infer_doc,
    raw_call,
    serve_process,
    tally,
)

FUZZ = settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow],
                database=None)
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
VALID = orjson.dumps(infer_doc([[1.0, 2.0, 3.0, 4.0]]))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with serve_process(tmp_path_factory.mktemp("fuzz-http")) as served:
        yield served


def _checked(answer: Answer | None, family: str, method: str, path: str, *, ours: bool = True) -> Answer | None:
    """No 5xx; an error of our app is ``{"error": "<message>"}`` as JSON. ``ours=False``: the HTTP parser
    may refuse malformed framing itself (plain 4xx) or drop the connection (None)."""
    tally(family, endpoint_of(method, path), None if answer is None else answer.status)
    if answer is None:
        assert not ours, f"{method} {path[:80]}: the connection closed without an answer"
        return None
    assert answer.status < 500, (method, path[:200], answer.status, answer.body[:300])
    if ours and answer.status >= 400 and method != "HEAD":
        assert answer.headers.get("content-type") == "application/json", (answer.status, answer.headers)
        error = orjson.loads(answer.body)["error"]
        assert isinstance(error, str) and error and "Traceback" not in error
    return answer


# ---------------------------------------------------------------------------------- paths and methods
_SEGMENTS = st.one_of(
    st.sampled_from(["echo", "mlp", "..", ".", "%2e%2e", "%2E%2e%2F", "..%2F..%2Fetc%2Fpasswd", "versions", "1",
                     "2", "infer", "ready", "health", "live", "models", "%00", "%2F", "~", "%ff%fe", ""]),
    st.text(min_size=1, max_size=24).map(lambda s: quote(s, safe="")),  # any unicode, percent-encoded
    st.integers(200, 6000).map(lambda n: "n" * n),  # very long names
)
_PATHS = st.one_of(
    st.lists(_SEGMENTS, min_size=0, max_size=6).map(lambda segs: "/v2/" + "/".join(segs)),
    st.lists(_SEGMENTS, min_size=1, max_size=4).map(lambda segs: "/v2/models/" + "/".join(segs) + "/infer"),
    st.sampled_from(["/", "/metrics", "/openapi.json", "/v2", "/v2/health/ready", "/../../etc/passwd",
                     "/v2/models/echo/versions/1/infer", "/v2/models/mlp/ready", "/docs", "/v2/repository/index"]),
)
_BODIES = st.one_of(st.none(), st.just(VALID), st.binary(max_size=256))


@FUZZ
@given(method=st.sampled_from(METHODS), path=_PATHS, body=_BODIES)
def test_any_path_and_method(served, method, path, body):
    _checked(call(served.url, method, path, body, served.headers), "paths+methods", method, path)


@FUZZ
@given(name=_SEGMENTS, version=st.one_of(st.none(), _SEGMENTS),
       route=st.sampled_from(["", "/ready", "/infer"]))
def test_model_names_are_looked_up_never_opened(served, name, version, route):
    """A name that is not a served model is a 404 naming the served ones, on every model route."""
    path = f"/v2/models/{name}" + (f"/versions/{version}" if version is not None else "") + route
    method = "POST" if route == "/infer" else "GET"
    answer = _checked(call(served.url, method, path, VALID if method == "POST" else None, served.headers),
                      "model names", method, path)
    assert answer is not None
    if name not in ("echo", "mlp") or version not in (None, "1"):
        assert answer.status == 404, (path[:120], answer.status, answer.body[:200])
        error = answer.json()["error"]
        assert "served: echo, mlp" in error or "no version" in error or "no route" in error, error


# --------------------------------------------------------------------------------------------- headers
_HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
_CONTENT_TYPES = st.one_of(st.sampled_from(["application/json", "application/octet-stream", "text/plain",
                                            "multipart/form-data; boundary=x", "application/json; charset=utf-16",
                                            ""]), _HEADER_TEXT)
_LENGTHS = st.one_of(st.integers(-5, 10**30).map(str), _HEADER_TEXT,
                     st.sampled_from(["0", "-1", "1e9", "0x10", " 12", "١٢".encode(), "\u00b2".encode("latin-1")]))


@FUZZ
@given(path=st.sampled_from(["/v2/models/echo/infer", "/v2/models/mlp/infer", "/v2/health/ready", "/v2",
                             "/v2/models/echo"]),
       content_type=_CONTENT_TYPES, header_length=st.one_of(st.none(), _LENGTHS),
       encoding=st.one_of(st.none(), st.sampled_from(["gzip", "deflate", "br", "identity", "gzip, gzip"])),
       junk_header=st.one_of(st.none(), st.integers(1, 60_000)), body=st.one_of(st.just(VALID), st.binary(max_size=64)))
def test_header_lies_and_huge_headers(served, path, content_type, header_length, encoding, junk_header, body):
    headers = {**served.headers, "Content-Type": content_type}
    if header_length is not None:
        headers["Inference-Header-Content-Length"] = header_length
    if encoding is not None:
        headers["Content-Encoding"] = encoding
    if junk_header is not None:
        headers["X-Junk"] = "j" * junk_header
    method = "POST" if path.endswith("/infer") else "GET"
    answer = _checked(call(served.url, method, path, body, headers), "headers", method, path)
    assert answer is not None


def _request(path: str, head: dict[str, str], body: bytes) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in head.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@settings(FUZZ, max_examples=examples(25))
@given(path=st.sampled_from(["/v2/models/echo/infer", "/v2/models/mlp/infer", "/v2"]),
       claimed=st.integers(0, 4096), sent=st.integers(0, 4096))
def test_content_length_lies(served, path, claimed, sent):
    """More body promised than sent (then EOF) or less: a 4xx or a closed connection, never a hang or 5xx."""
    body = (VALID * (sent // len(VALID) + 1))[:sent]
    request = _request(path, {**served.headers, "Content-Length": str(claimed), "Connection": "close"}, body)
    answer = raw_call(served.url, request, half_close=True, timeout_s=30)
    _checked(answer, "content-length lies", "POST", path, ours=False)
    if claimed == sent == len(VALID) and path == "/v2/models/echo/infer":
        assert answer is not None and answer.status == 200


# ----------------------------------------------------------------------------------- huge and deep
def test_a_huge_claimed_length_is_refused_before_the_body_is_read(served):
    """Content-Length of a terabyte, no body sent: the 413 comes at once (the server reads nothing)."""
    request = _request("/v2/models/mlp/infer", {**served.headers, "Content-Length": str(10**12)}, b"")
    answer = raw_call(served.url, request, timeout_s=20)
    assert answer is not None and answer.status == 413
    assert "limit" in orjson.loads(answer.body)["error"]


def test_a_body_over_the_limit_is_refused_while_streaming(served):
    """A chunked body (no Content-Length) that grows past the limit: 413, without reading it all."""
    chunk = b"7" * 65536
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(MAX_BODY_BYTES // len(chunk) + 4))
    request = _request("/v2/models/mlp/infer", {**served.headers, "Transfer-Encoding": "chunked"}, chunks + b"0\r\n\r\n")
    answer = raw_call(served.url, request, timeout_s=30)
    assert answer is not None and answer.status == 413, answer


def test_a_compression_bomb_is_refused(served):
    bomb = gzip.compress(b"\0" * (64 * MAX_BODY_BYTES))  # 64 MiB of zeros in ~64 KiB
    assert len(bomb) < MAX_BODY_BYTES
    answer = call(served.url, "POST", "/v2/models/mlp/infer", bomb, {**served.headers, "Content-Encoding": "gzip"})
    assert answer.status == 413 and "decompressed" in answer.json()["error"]


@settings(FUZZ, max_examples=examples(25))
@given(rows=st.sampled_from([10**6, 10**9, 10**12, 2**62]), binary=st.booleans(), model=st.sampled_from(["echo", "mlp"]))
def test_huge_shape_claims_are_refused_without_allocating(served, rows, binary, model):
    features = ECHO_FEATURES if model == "echo" else MLP_FEATURES
    path = f"/v2/models/{model}/infer"
    tensor = {"name": "input", "shape": [rows, features], "datatype": "FP32"}
    headers = dict(served.headers)
    if binary:
        tensor["parameters"] = {"binary_data_size": rows * features * 4}
        head = json.dumps({"inputs": [tensor]}).encode()  # the stdlib writes integers of any size
        body = head + b"\0" * (features * 4)
        headers["Inference-Header-Content-Length"] = str(len(head))
    else:
        tensor["data"] = [0.5] * features
        body = json.dumps({"inputs": [tensor]}).encode()
    answer = _checked(call(served.url, "POST", path, body, headers), "huge shapes", "POST", path)
    assert answer is not None and answer.status == 400
    error = answer.json()["error"]
    assert any(str(n) in error for n in (rows, rows * features, rows * features * 4)), error  # says what was wrong


@settings(FUZZ, max_examples=examples(20))
@given(depth=st.one_of(st.integers(2, 2000), st.sampled_from([10**4, 10**5])),
       where=st.sampled_from(["data", "parameters", "outputs", "root"]), model=st.sampled_from(["echo", "mlp"]))
def test_deep_nesting_is_a_400(served, depth, where, model):
    """JSON nested up to 10^5 deep anywhere in the request: 400 (no RecursionError, no 500)."""
    deep_list = "[" * depth + "0.5" + "]" * depth
    deep_object = '{"a":' * depth + "1" + "}" * depth
    tensor = '{"name":"input","shape":[1,%d],"datatype":"FP32","data":%s%s}'
    features = ECHO_FEATURES if model == "echo" else MLP_FEATURES
    body = {
        "data": '{"inputs":[' + tensor % (features, deep_list, "") + "]}",
        "parameters": '{"inputs":[' + tensor % (features, "[0.5]", ',"parameters":' + deep_object) + "]}",
        "outputs": '{"outputs":' + deep_list + ',"inputs":[' + tensor % (features, "[0.5]", "") + "]}",
        "root": deep_list,
    }[where].encode()
    path = f"/v2/models/{model}/infer"
    answer = _checked(call(served.url, "POST", path, body, served.headers), "deep nesting", "POST", path)
    assert answer is not None and answer.status == 400


# ------------------------------------------------------------------------------------------ afterwards
def test_still_healthy_and_correct_afterwards(served):
    """Runs last in this file: ready, inference on both models still correct, no 5xx counted, alive."""
    assert served.healthy()
    assert served.five_hundreds() == 0
    assert served.proc.poll() is None
    assert "Traceback" not in served.output(), served.output()[-3000:]

