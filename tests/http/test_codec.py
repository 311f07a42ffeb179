"""The OIP v2 codec: JSON and binary requests to numpy, with every check; numpy to JSON or binary answers."""

from __future__ import annotations

import gzip
import zlib

import numpy as np
import orjson
import pytest

from workbench.http.codec import decode_request, decompress, encode_response
from workbench.http.errors import HTTPError
from workbench.models.signature import TensorSpec

IN = TensorSpec(name="input", shape=(4,))
OUT = TensorSpec(name="logits", shape=(3,))
IMAGE = TensorSpec(name="image", shape=(1, 2, 2))


def _json(inputs: list, **extra) -> bytes:
    return orjson.dumps({"inputs": inputs, **extra})


def _tensor(data=None, *, name="input", shape=(1, 4), datatype="FP32", **extra) -> dict:
    t = {"name": name, "shape": list(shape), "datatype": datatype, **extra}
    if data is not None:
        t["data"] = data
    return t


def _binary(array: np.ndarray, *, name="input", datatype="FP32", size: int | None = None, **doc) -> tuple[bytes, str]:
    raw = array.astype(array.dtype.newbyteorder("<")).tobytes()
    tensor = {"name": name, "shape": list(array.shape), "datatype": datatype,
              "parameters": {"binary_data_size": len(raw) if size is None else size}}
    header = orjson.dumps({"inputs": [tensor], **doc})
    return header + raw, str(len(header))


def _bad(body: bytes, spec=IN, *, header=None, status=400) -> str:
    with pytest.raises(HTTPError) as err:
        decode_request(body, spec, OUT, header_length=header)
    assert err.value.status == status
    return err.value.message


# ------------------------------------------------------------------ JSON requests
def test_flat_and_nested_data_give_the_same_array():
    values = np.arange(8, dtype=np.float32).reshape(2, 4) / 7
    flat = decode_request(_json([_tensor(values.ravel().tolist(), shape=(2, 4))]), IN, OUT)
    nested = decode_request(_json([_tensor(values.tolist(), shape=(2, 4))]), IN, OUT)
    for req in (flat, nested):
        assert req.array.dtype == np.float32 and req.array.shape == (2, 4)
        np.testing.assert_array_equal(req.array, values)
    assert flat.binary_output is False and flat.request_id is None and flat.timeout_ms is None


def test_multi_dimensional_input_reshapes_row_major():
    values = np.arange(8, dtype=np.float32)
    req = decode_request(_json([_tensor(values.tolist(), name="image", shape=(2, 1, 2, 2))]), IMAGE, OUT)
    np.testing.assert_array_equal(req.array, values.reshape(2, 1, 2, 2))


def test_integer_json_numbers_are_accepted_for_a_float_input():
    req = decode_request(_json([_tensor([1, 2, 3, 4])]), IN, OUT)
    np.testing.assert_array_equal(req.array, [[1, 2, 3, 4]])


@pytest.mark.parametrize("datatype,dtype,data", [
    ("INT64", "int64", [1, -2, 3, 4]), ("UINT8", "uint8", [0, 255, 3, 4]), ("BOOL", "bool", [True, False, True, True]),
    ("FP64", "float64", [0.5, 1, 2, 3]), ("FP16", "float16", [0.5, 1, 2, 3]),
])
def test_each_oip_datatype_the_model_takes(datatype, dtype, data):
    spec = TensorSpec(name="input", shape=(4,), dtype=dtype)
    req = decode_request(_json([_tensor(data, datatype=datatype)]), spec, OUT)
    assert req.array.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(req.array, np.asarray([data], dtype=dtype))


def test_request_id_timeout_and_output_choice():
    body = _json([_tensor([1, 2, 3, 4])], id="req-7", parameters={"timeout": 2500},
                 outputs=[{"name": "logits", "parameters": {"binary_data": True}}])
    req = decode_request(body, IN, OUT)
    assert req.request_id == "req-7" and req.timeout_ms == 2.5 and req.binary_output is True


def test_binary_data_output_is_the_default_for_outputs_that_say_nothing():
    assert decode_request(_json([_tensor([1, 2, 3, 4])], parameters={"binary_data_output": True}), IN, OUT).binary_output
    body = _json([_tensor([1, 2, 3, 4])], parameters={"binary_data_output": True},
                 outputs=[{"name": "logits", "parameters": {"binary_data": False}}])
    assert decode_request(body, IN, OUT).binary_output is False


@pytest.mark.parametrize("body,needle", [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'{"inputs": {}}', "'inputs' must be a list"),
    (_json([]), "'inputs' must be a list holding one"),
    (_json([_tensor([1, 2, 3, 4]), _tensor([1, 2, 3, 4])]), "holding one"),
    (_json([_tensor([1, 2, 3, 4], name="x")]), "unknown input 'x'"),
    (_json([_tensor([1, 2, 3, 4], datatype="FP64")]), "takes FP32"),
    (_json([_tensor([1, 2, 3, 4], datatype="FLOAT")]), "OIP datatypes"),
    (_json([_tensor([1, 2, 3, 4], shape=(1, 5))]), "the model takes [-1, 4]"),
    (_json([_tensor([1, 2, 3, 4], shape=(0, 4))]), "at least 1 row"),
    (_json([_tensor([1, 2, 3, 4], shape=(4,))]), "the model takes [-1, 4]"),
    (_json([_tensor([1, 2, 3, 4], shape=[1, "4"])]), "list of integers"),
    (_json([_tensor([1, 2, 3, 4], shape=[1, 4.0])]), "list of integers"),
    (_json([_tensor([1, 2, 3])]), "holds 4 values, but 'data' holds 3"),
    (_json([_tensor([[1, 2], [3]])]), "non-ragged"),
    (_json([_tensor([1, 2, "a", 4])]), "must hold numbers"),
    (_json([_tensor([1, 2, None, 4])]), "must hold numbers"),
    (_json([_tensor([1, 2, {"a": 1}, 4])]), "must hold numbers"),
    (_json([_tensor([True, False, True, True])]), "must hold numbers"),
    (_json([_tensor([1e300, 1, 2, 3])]), "out of the range of FP32"),
    (_json([_tensor("1,2,3,4")]), "must be a JSON array"),
    (_json([_tensor()]), "neither 'data' nor"),
    (_json([_tensor([1, 2, 3, 4], parameters=[1])]), "'parameters' must be a JSON object"),
    (_json([_tensor([1, 2, 3, 4], parameters={"shared_memory_region": "r"})]), "shared memory"),
    (_json([_tensor([1, 2, 3, 4])], id=5), "'id' must be a string"),
    (_json([_tensor([1, 2, 3, 4])], parameters={"timeout": -1}), "microseconds"),
    (_json([_tensor([1, 2, 3, 4])], parameters={"binary_data_output": "yes"}), "true or false"),
    (_json([_tensor([1, 2, 3, 4])], outputs=[{"name": "probs"}]), "unknown output 'probs'"),
    (_json([_tensor([1, 2, 3, 4])], outputs=[{"name": "logits", "parameters": {"classification": 2}}]), "classification"),
    (_json([_tensor([1, 2, 3, 4])], outputs=[{"name": "logits", "parameters": {"binary_data": 1}}]), "true or false"),
])
def test_malformed_json_requests_are_400_with_a_clear_message(body, needle):
    assert needle in _bad(body)


def test_integer_inputs_reject_floats_and_out_of_range_values():
    spec = TensorSpec(name="input", shape=(4,), dtype="uint8")
    assert "must hold non-negative integers" in _bad(_json([_tensor([1.5, 2, 3, 4], datatype="UINT8")]), spec)
    assert "[0, 255]" in _bad(_json([_tensor([1, 256, 3, 4], datatype="UINT8")]), spec)
    assert "[0, 255]" in _bad(_json([_tensor([1, -1, 3, 4], datatype="UINT8")]), spec)


# ---------------------------------------------------------------- binary requests
def test_binary_request_reads_little_endian_tensor_after_the_header():
    values = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    body, header = _binary(values)
    req = decode_request(body, IN, OUT, header_length=header)
    np.testing.assert_array_equal(req.array, values)


def test_json_body_with_the_header_covering_all_of_it():
    body = _json([_tensor([1, 2, 3, 4])])
    req = decode_request(body, IN, OUT, header_length=str(len(body)).encode())
    np.testing.assert_array_equal(req.array, [[1, 2, 3, 4]])


def test_binary_size_mismatches_are_400():
    values = np.ones((1, 4), np.float32)
    body, header = _binary(values, size=15)
    assert "binary_data_size is 15" in _bad(body, header=header)
    body, header = _binary(values)
    assert "bytes follow the JSON header" in _bad(body + b"x", header=header)
    assert "bytes follow the JSON header" in _bad(body[:-1], header=header)
    assert "no Inference-Header-Content-Length" in _bad(body[: int(header)])
    for value in ("abc", "-3", "0", str(len(body) + 1)):
        assert "Inference-Header-Content-Length" in _bad(body, header=value)
    plain = _json([_tensor([1, 2, 3, 4])])
    assert "no input has binary_data_size" in _bad(plain + b"\0\0", header=str(len(plain)))
    both = _json([_tensor([1, 2, 3, 4], parameters={"binary_data_size": 16})])
    assert "both 'data' and" in _bad(both + bytes(16), header=str(len(both)))


# ----------------------------------------------------------------- compression
def test_gzip_and_deflate_bodies_are_inflated_within_the_limit():
    body = _json([_tensor([1, 2, 3, 4])])
    assert decompress(gzip.compress(body), "gzip", 10_000) == body
    assert decompress(zlib.compress(body), "deflate", 10_000) == body
    assert decompress(body, "identity", 10_000) == body
    with pytest.raises(HTTPError) as err:
        decompress(gzip.compress(bytes(1_000_000)), "gzip", 10_000)
    assert err.value.status == 413
    with pytest.raises(HTTPError) as err:
        decompress(body, "br", 10_000)
    assert err.value.status == 415
    with pytest.raises(HTTPError) as err:
        decompress(b"not gzip", "gzip", 10_000)
    assert err.value.status == 400


# -------------------------------------------------------------------- responses
def test_json_response_is_flat_data_with_shape_and_datatype():
    result = np.arange(6, dtype=np.float32).reshape(2, 3) / 3
    body, headers = encode_response("mlp", "1", OUT, result, binary=False, request_id="r1")
    doc = orjson.loads(body)
    assert doc["model_name"] == "mlp" and doc["model_version"] == "1" and doc["id"] == "r1"
    (out,) = doc["outputs"]
    assert out["name"] == "logits" and out["datatype"] == "FP32" and out["shape"] == [2, 3]
    np.testing.assert_array_equal(np.asarray(out["data"], np.float32).reshape(2, 3), result)
    assert (b"content-type", b"application/json") in headers
    assert (b"content-length", str(len(body)).encode()) in headers


def test_binary_response_follows_the_extension():
    result = np.arange(6, dtype=np.float32).reshape(2, 3)
    body, headers = encode_response("mlp", "1", OUT, result, binary=True)
    header_len = int(dict(headers)[b"inference-header-content-length"])
    doc = orjson.loads(body[:header_len])
    (out,) = doc["outputs"]
    assert "data" not in out and out["parameters"]["binary_data_size"] == 24 and "id" not in doc
    np.testing.assert_array_equal(np.frombuffer(body[header_len:], "<f4").reshape(out["shape"]), result)


def test_binary_response_is_readable_by_tritonclient():
    from tritonclient.http import InferResult

    result = np.random.default_rng(1).standard_normal((2, 3)).astype(np.float32)
    body, headers = encode_response("mlp", "1", OUT, result, binary=True)
    parsed = InferResult.from_response_body(body, header_length=int(dict(headers)[b"inference-header-content-length"]))
    np.testing.assert_array_equal(parsed.as_numpy("logits"), result)
    body, _ = encode_response("mlp", "1", OUT, result, binary=False)
    np.testing.assert_array_equal(InferResult.from_response_body(body).as_numpy("logits"), result)
