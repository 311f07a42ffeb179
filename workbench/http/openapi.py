"""The OpenAPI 3.1 document of the API, served at ``/openapi.json``."""

from __future__ import annotations

from functools import cache
from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}


def _responses(ok: str, ok_schema: dict[str, Any] | None, *errors: int) -> dict[str, Any]:
    reasons = {400: "Malformed request: JSON, tensor name, shape, datatype or binary size",
               401: "Missing or wrong bearer token", 404: "Unknown model or version",
               413: "Body larger than the limit", 415: "Unsupported Content-Encoding",
               503: "Overloaded or not ready; see Retry-After", 504: "The request's deadline passed"}
    out: dict[str, Any] = {"200": {"description": ok}}
    if ok_schema is not None:
        out["200"]["content"] = {"application/json": {"schema": ok_schema}}
    for code in (*errors, 401):
        out[str(code)] = {"description": reasons[code], "content": {"application/json": {"schema": _ERROR}}}
    return out


def _params(version: bool) -> list[dict[str, Any]]:
    names = ["name", "version"] if version else ["name"]
    return [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names]


def _model_paths(prefix: str, version: bool) -> dict[str, Any]:
    ref = "#/components/schemas/"
    return {
        prefix: {"get": {"summary": "Model metadata: input and output names, datatypes, shapes (-1 = batch)",
                         "parameters": _params(version),
                         "responses": _responses("Metadata", {"$ref": ref + "ModelMetadata"}, 404)}},
        f"{prefix}/ready": {"get": {"summary": "Whether the model is ready for inference",
                                    "parameters": _params(version),
                                    "responses": _responses("Ready", None, 404, 503)}},
        f"{prefix}/infer": {"post": {
            "summary": "Inference (JSON, or the binary tensor data extension with Inference-Header-Content-Length)",
            "parameters": [*_params(version), {
                "name": "Inference-Header-Content-Length", "in": "header", "required": False,
                "schema": {"type": "integer"},
                "description": "Bytes of JSON at the start of the body; binary tensors follow"}],
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": {"$ref": ref + "InferenceRequest"}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
            "responses": {**_responses("Outputs", {"$ref": ref + "InferenceResponse"}, 400, 404, 413, 415, 503, 504),
                          "200": {"description": "Outputs (binary outputs follow the JSON when requested)",
                                  "content": {"application/json": {"schema": {"$ref": ref + "InferenceResponse"}},
                                              "application/octet-stream": {"schema": {"type": "string",
                                                                                      "format": "binary"}}}}}}},
    }


def _schemas() -> dict[str, Any]:
    tensor_meta: dict[str, Any] = {"type": "object", "required": ["name", "datatype", "shape"], "properties": {
        "name": {"type": "string"}, "datatype": {"type": "string", "examples": ["FP32"]},
        "shape": {"type": "array", "items": {"type": "integer"}}}}
    data = {"type": "array", "description": "Row-major values, flat or nested"}
    params = {"type": "object", "additionalProperties": True}
    return {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
        "TensorMetadata": tensor_meta,
        "ModelMetadata": {"type": "object", "properties": {
            "name": {"type": "string"}, "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": {"$ref": "#/components/schemas/TensorMetadata"}},
            "outputs": {"type": "array", "items": {"$ref": "#/components/schemas/TensorMetadata"}}}},
        "InferenceRequest": {"type": "object", "required": ["inputs"], "properties": {
            "id": {"type": "string"},
            "parameters": {**params, "description": "binary_data_output (bool); timeout (microseconds)"},
            "inputs": {"type": "array", "items": {**tensor_meta, "properties": {
                **tensor_meta["properties"], "data": data,
                "parameters": {**params, "description": "binary_data_size: bytes of this tensor after the JSON"}}}},
            "outputs": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string"},
                "parameters": {**params, "description": "binary_data (bool): send this output as binary"}}}}}},
        "InferenceResponse": {"type": "object", "properties": {
            "model_name": {"type": "string"}, "model_version": {"type": "string"}, "id": {"type": "string"},
            "outputs": {"type": "array", "items": {**tensor_meta, "properties": {
                **tensor_meta["properties"], "data": data, "parameters": params}}}}},
    }


@cache
def openapi_document() -> dict[str, Any]:
    """The document (built once)."""
    from workbench import __version__

    simple = _responses("OK", None)  # every operation also answers 401 when the server has a token
    return {
        "openapi": "3.1.0",
        "info": {"title": "workbench inference API (Open Inference Protocol v2)", "version": __version__},
        "components": {"schemas": _schemas(),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{}, {"bearer": []}],
        "paths": {
            "/v2": {"get": {"summary": "Server metadata", "responses": simple}},
            "/v2/health/live": {"get": {"summary": "Liveness", "responses": simple}},
            "/v2/health/ready": {"get": {"summary": "Readiness of every model",
                                         "responses": _responses("Ready", None, 503)}},
            **_model_paths("/v2/models/{name}", False),
            **_model_paths("/v2/models/{name}/versions/{version}", True),
            "/metrics": {"get": {"summary": "Prometheus metrics (text format 0.0.4)",
                                 "responses": {**simple, "200": {
                                     "description": "Metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": simple}},
        },
    }


__all__ = ["openapi_document"]
