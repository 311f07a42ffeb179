"""Schemathesis against the OpenAPI document the server serves (``/openapi.json``), on ``workbench serve``
as a real process: cases generated from the document (valid and invalid ones) reach every documented
operation; no response is a 5xx, every error is JSON ``{"error": "<message>"}``, and status codes,
content types and response bodies conform to what the document declares.

``WORKBENCH_FUZZ_EXAMPLES`` raises the example count (``benchmarks/reliability/fuzz.py``)."""

from __future__ import annotations

import copy

import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from workbench.http.openapi import openapi_document

from .serve_process import call, endpoint_of, examples, serve_process, tally


@schemathesis.check
def errors_are_json_messages(ctx: schemathesis.CheckContext, response: schemathesis.Response,
                             case: schemathesis.Case) -> bool | None:
    """Every 4xx/5xx of the API is ``{"error": "<non-empty message>"}`` with no traceback in it."""
    if response.status_code < 400 or case.method.upper() == "HEAD":
        return None
    assert response.headers.get("content-type", [""])[0] == "application/json", response.headers
    error = orjson.loads(response.content)["error"]
    assert isinstance(error, str) and error and "Traceback" not in error, error
    return True


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with serve_process(tmp_path_factory.mktemp("schemathesis")) as served:
        yield served


@pytest.fixture(scope="module")
def served_with_token(tmp_path_factory):
    with serve_process(tmp_path_factory.mktemp("schemathesis-token"), token="s3cret-token") as served:
        yield served


# The eager form: schemathesis' lazy ``from_fixture`` loader relies on a pytest internal (``Item._nodeid``)
# that pytest 9 no longer has. The document is built by the code the server runs, and
# ``test_the_served_document_is_the_one_tested`` checks that the server serves exactly this one.
schema = schemathesis.openapi.from_dict(openapi_document())


def _for_served_models(document: dict) -> dict:
    """The same document with ``{name}`` and ``{version}`` pinned to what the server serves, so that the
    generated requests reach the models (and their decoders) rather than stopping at a 404."""
    document = copy.deepcopy(document)
    for operations in document["paths"].values():
        for operation in operations.values():
            for param in operation.get("parameters", []):
                if param["in"] == "path":
                    param["schema"] = {"type": "string", "enum": ["echo", "mlp"] if param["name"] == "name" else ["1"]}
    return document


served_models = schemathesis.openapi.from_dict(_for_served_models(openapi_document()))
SETTINGS = settings(max_examples=examples(12), deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.function_scoped_fixture])


def test_the_served_document_is_the_one_tested(served):
    served_document = orjson.loads(call(served.url, "GET", "/openapi.json").body)
    assert served_document == orjson.loads(orjson.dumps(openapi_document()))
    assert {f"{m.upper()} {p}" for p, ops in served_document["paths"].items() for m in ops} >= {
        "GET /v2", "GET /v2/health/ready", "POST /v2/models/{name}/infer", "GET /metrics"}


def _call_and_validate(case: schemathesis.Case, served, family: str, headers: dict[str, str] | None = None):
    # A schema-valid inference request for a random model name is rightly a 404 (and for a served model,
    # a body of the wrong shape rightly a 400): the document cannot know which tensors a model takes, so
    # "schema-valid data is accepted" does not apply. Every other check of schemathesis runs.
    response = case.call_and_validate(base_url=served.url, headers=headers,
                                      excluded_checks=[positive_data_acceptance])
    tally(family, endpoint_of(case.method.upper(), case.formatted_path), response.status_code)


@schema.parametrize()
@SETTINGS
def test_the_api_conforms_to_its_document(case, served):
    _call_and_validate(case, served, "schemathesis")


@served_models.parametrize()
@SETTINGS
def test_the_served_models_conform_to_the_document(case, served):
    _call_and_validate(case, served, "schemathesis (served models)")


@schema.parametrize()
@settings(SETTINGS, max_examples=examples(4))
def test_without_the_token_every_operation_is_a_documented_401(case, served_with_token):
    """With a token set, a request without it gets the 401 the document declares, on every operation."""
    response = case.call(base_url=served_with_token.url)
    case.validate_response(response, excluded_checks=[positive_data_acceptance])
    tally("schemathesis (no token)", endpoint_of(case.method.upper(), case.formatted_path), response.status_code)
    assert response.status_code == 401


def test_still_healthy_afterwards(served):
    assert served.healthy()  # the served models still answer correctly
    assert served.five_hundreds() == 0
    assert "Traceback" not in served.output(), served.output()[-3000:]
