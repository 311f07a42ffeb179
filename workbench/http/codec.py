"""Open Inference Protocol v2 tensors: request bodies to numpy, numpy to response bodies.

Two encodings, as in the protocol and Triton's binary tensor data extension:

- JSON: ``{"inputs": [{"name", "shape", "datatype", "data"}], "outputs": [{"name", "parameters"}]}``,
  ``data`` flat (row-major) or nested;
- binary: the header ``Inference-Header-Content-Length: L`` says the first L bytes are that JSON; an
  input with ``parameters.binary_data_size`` has no ``data``: its bytes (little-endian, row-major)
  follow the JSON, in the order of the inputs. An output comes back the same way when its
  ``parameters.binary_data`` is true, or, when it says nothing, when the request's
  ``parameters.binary_data_output`` is true.

Every check raises :class:`~workbench.http.errors.HTTPError` (400) saying what was wrong and what the
model takes. The request parameter ``timeout`` (microseconds, as Triton has it) sets a deadline.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from workbench.http.errors import HTTPError, bad_request
from workbench.models.signature import OIP_DATATYPES, TensorSpec

_JSON = b"application/json"
_OCTETS = b"application/octet-stream"
# dtype kinds ``np.array`` may infer from JSON numbers that each target kind accepts
_ACCEPTED_KINDS = {"f": "fiu", "i": "iu", "u": "iu", "b": "b"}
_KIND_WORDS = {"f": "numbers", "i": "integers", "u": "non-negative integers", "b": "booleans (true/false)"}


@dataclass(frozen=True, slots=True)
class InferRequest:
    """A decoded inference request for a single-input, single-output model."""

    array: np.ndarray  # (batch, *input shape), the input's dtype
    binary_output: bool  # send the output as binary tensor data
    request_id: str | None = None
    timeout_ms: float | None = None  # from parameters.timeout (µs), if given


def describe(spec: TensorSpec) -> str:
    """``'input' FP32 [-1, 784]``: a tensor as the API shows it (-1 is the batch dimension)."""
    return f"{spec.name!r} {spec.datatype} {[-1, *spec.shape]}"


def _type(value: Any) -> str:
    return "null" if value is None else {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "number")


def decompress(body: bytes, encoding: str, max_bytes: int) -> bytes:
    """Undo ``Content-Encoding`` gzip or deflate (tritonclient's request compression), never inflating
    past ``max_bytes``. Raises HTTPError 415 for other encodings and 413 when it grows too large."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise HTTPError(415, f"Content-Encoding {encoding!r} is not supported; allowed: gzip, deflate, identity")
    inflater = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
    try:
        out = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise bad_request(f"the body is not valid {encoding} data: {exc}") from None
    if len(out) > max_bytes:
        raise HTTPError(413, f"the decompressed body is larger than the limit of {max_bytes} bytes")
    if not inflater.eof:
        raise bad_request(f"the {encoding} body is truncated")
    return out


def _header_length(value: bytes | str | None, body_len: int) -> int | None:
    if value is None:
        return None
    text = (value.decode("latin-1") if isinstance(value, bytes) else value).strip()
    if not (text.isascii() and text.isdigit()):
        raise bad_request(f"Inference-Header-Content-Length must be a whole number of bytes, got {text!r}")
    length = int(text)
    if not 0 < length <= body_len:
        raise bad_request(
            f"Inference-Header-Content-Length {length} must be between 1 and the body size ({body_len} bytes)")
    return length


def _parse_json(raw: bytes | memoryview) -> dict[str, Any]:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"the request body is not valid JSON: {exc}") from None
    if type(doc) is not dict:
        raise bad_request(f"the request body must be a JSON object with 'inputs', got a JSON {_type(doc)}")
    return doc


def _parameters(holder: dict[str, Any], what: str) -> dict[str, Any]:
    params = holder.get("parameters")
    if params is None:
        return {}
    if type(params) is not dict:
        raise bad_request(f"{what} 'parameters' must be a JSON object, got a JSON {_type(params)}")
    return params


def _check_shape(shape: Any, spec: TensorSpec) -> tuple[int, ...]:
    expected = [-1, *spec.shape]
    if type(shape) is not list or not all(type(d) is int for d in shape):
        raise bad_request(f"input {spec.name!r} 'shape' must be a list of integers like {expected}, got {shape!r}")
    if len(shape) != len(spec.shape) + 1 or tuple(shape[1:]) != spec.shape or shape[0] < 1:
        raise bad_request(
            f"input {spec.name!r} has shape {shape}; the model takes {expected} (a batch of at least 1 row)")
    return tuple(shape)


def _array_from_json(data: Any, shape: tuple[int, ...], spec: TensorSpec) -> np.ndarray:
    if type(data) is not list:
        raise bad_request(f"input {spec.name!r} 'data' must be a JSON array, got a JSON {_type(data)}")
    try:
        values = np.array(data)
    except (ValueError, TypeError, OverflowError, RecursionError):
        raise bad_request(f"input {spec.name!r} 'data' is not a regular (non-ragged) array of numbers") from None
    dtype = np.dtype(spec.dtype)
    if values.dtype.kind not in _ACCEPTED_KINDS[dtype.kind] and values.size:
        raise bad_request(
            f"input {spec.name!r} is {spec.datatype}: 'data' must hold {_KIND_WORDS[dtype.kind]}, "
            f"got {'mixed or non-numeric values' if values.dtype.kind in 'OUS' else values.dtype.name + ' values'}")
    numel = math.prod(shape)
    if values.size != numel:
        raise bad_request(f"input {spec.name!r} has shape {list(shape)}, which holds {numel} values, "
                          f"but 'data' holds {values.size}")
    if values.size and dtype.kind in "iu" and values.dtype != dtype:
        info = np.iinfo(dtype)
        if values.min() < info.min or values.max() > info.max:
            raise bad_request(f"input {spec.name!r} is {spec.datatype}: values must lie in [{info.min}, {info.max}]")
    if dtype.kind == "f" and values.dtype.kind == "f" and values.dtype.itemsize > dtype.itemsize:
        if float(np.abs(values).max()) > float(np.finfo(dtype).max):
            raise bad_request(f"input {spec.name!r} holds values out of the range of {spec.datatype}")
    return values.astype(dtype, copy=False).reshape(shape)


def decode_request(body: bytes, spec: TensorSpec, output: TensorSpec, *,
                   header_length: bytes | str | None = None) -> InferRequest:
    """Parse an OIP v2 inference request (JSON or binary) for a model taking ``spec`` and giving ``output``."""
    json_end = _header_length(header_length, len(body))
    doc = _parse_json(body if json_end is None else memoryview(body)[:json_end])
    inputs = doc.get("inputs")
    if type(inputs) is not list or len(inputs) != 1 or type(inputs[0]) is not dict:
        raise bad_request(f"'inputs' must be a list holding one tensor object: the model takes {describe(spec)}")
    tensor = inputs[0]
    if tensor.get("name") != spec.name:
        raise bad_request(f"unknown input {tensor.get('name')!r}: the model takes {describe(spec)}")
    datatype = tensor.get("datatype")
    if datatype != spec.datatype:
        allowed = "" if datatype in OIP_DATATYPES else f" (OIP datatypes: {', '.join(OIP_DATATYPES)})"
        raise bad_request(f"input {spec.name!r} has datatype {datatype!r}; the model takes {spec.datatype}{allowed}")
    shape = _check_shape(tensor.get("shape"), spec)
    params = _parameters(tensor, f"input {spec.name!r}")
    if "shared_memory_region" in params:
        raise bad_request("the shared memory extension is not supported: send the tensor in the body")
    size = params.get("binary_data_size")
    binary_len = 0 if json_end is None else len(body) - json_end
    if size is None:
        if "data" not in tensor:
            raise bad_request(f"input {spec.name!r} has neither 'data' nor parameters.binary_data_size")
        if binary_len:
            raise bad_request(f"{binary_len} bytes follow the JSON header, but no input has binary_data_size")
        array = _array_from_json(tensor["data"], shape, spec)
    else:
        if "data" in tensor:
            raise bad_request(f"input {spec.name!r} has both 'data' and parameters.binary_data_size; send one")
        if json_end is None:
            raise bad_request(f"input {spec.name!r} has binary_data_size but the request has no "
                              "Inference-Header-Content-Length header")
        expected = math.prod(shape) * np.dtype(spec.dtype).itemsize
        if type(size) is not int or size != expected:
            raise bad_request(f"input {spec.name!r}: binary_data_size is {size!r}, but shape {list(shape)} of "
                              f"{spec.datatype} takes {expected} bytes")
        if binary_len != size:
            raise bad_request(f"input {spec.name!r}: binary_data_size is {size} but {binary_len} bytes follow "
                              "the JSON header")
        dtype = np.dtype(spec.dtype).newbyteorder("<")
        array = np.frombuffer(body, dtype=dtype, count=math.prod(shape), offset=json_end).reshape(shape)
    return InferRequest(array=array, binary_output=_binary_output(doc, output),
                        request_id=_request_id(doc), timeout_ms=_timeout_ms(doc))


def _binary_output(doc: dict[str, Any], output: TensorSpec) -> bool:
    params = _parameters(doc, "the request")
    default = params.get("binary_data_output", False)
    if type(default) is not bool:
        raise bad_request(f"parameters.binary_data_output must be true or false, got {default!r}")
    outputs = doc.get("outputs")
    if outputs is None or outputs == []:
        return default
    if type(outputs) is not list or len(outputs) != 1 or type(outputs[0]) is not dict:
        raise bad_request(f"'outputs' must be a list holding one object: the model gives {describe(output)}")
    requested = outputs[0]
    if requested.get("name") != output.name:
        raise bad_request(f"unknown output {requested.get('name')!r}: the model gives {describe(output)}")
    out_params = _parameters(requested, f"output {output.name!r}")
    if "classification" in out_params or "shared_memory_region" in out_params:
        raise bad_request("the classification and shared memory extensions are not supported")
    binary = out_params.get("binary_data", default)
    if type(binary) is not bool:
        raise bad_request(f"output {output.name!r} parameters.binary_data must be true or false, got {binary!r}")
    return binary


def _request_id(doc: dict[str, Any]) -> str | None:
    rid = doc.get("id")
    if rid is None or type(rid) is str:
        return rid
    raise bad_request(f"'id' must be a string, got a JSON {_type(rid)}")


def _timeout_ms(doc: dict[str, Any]) -> float | None:
    timeout = _parameters(doc, "the request").get("timeout")
    if timeout is None:
        return None
    if type(timeout) not in (int, float) or not timeout > 0:
        raise bad_request(f"parameters.timeout is the deadline in microseconds (> 0), got {timeout!r}")
    return timeout / 1000.0


def encode_response(model: str, version: str, output: TensorSpec, result: np.ndarray, *,
                    binary: bool, request_id: str | None = None) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The body and ASGI headers of an inference response holding ``result`` as ``output``."""
    result = np.ascontiguousarray(result)
    tensor: dict[str, Any] = {"name": output.name, "datatype": output.datatype, "shape": list(result.shape)}
    doc: dict[str, Any] = {"model_name": model, "model_version": version}
    if request_id is not None:
        doc["id"] = request_id
    doc["outputs"] = [tensor]
    if not binary:
        tensor["data"] = result.reshape(-1)
        body = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
        return body, [(b"content-type", _JSON), (b"content-length", str(len(body)).encode())]
    raw = result.astype(result.dtype.newbyteorder("<"), copy=False).tobytes()
    tensor["parameters"] = {"binary_data_size": len(raw)}
    header = orjson.dumps(doc)
    body = header + raw
    return body, [(b"content-type", _OCTETS), (b"content-length", str(len(body)).encode()),
                  (b"inference-header-content-length", str(len(header)).encode())]


__all__ = ["InferRequest", "decode_request", "decompress", "describe", "encode_response"]
