"""The OpenAPI document describes every route the app serves."""

from __future__ import annotations

from oip_helpers import call
from starlette.routing import Route


def test_every_route_is_documented_with_its_methods(served):
    doc = call(served.url, "GET", "/openapi.json").json()
    assert doc["openapi"].startswith("3.") and doc["info"]["title"]
    routes = [r for r in served.app.routes.routes if isinstance(r, Route)]
    assert routes
    for route in routes:
        documented = doc["paths"].get(route.path)
        assert documented is not None, f"{route.path} is not in the OpenAPI document"
        assert {m.lower() for m in route.methods or ()} - {"head"} <= set(documented), route.path


def test_the_infer_operation_lists_its_error_answers(served):
    doc = call(served.url, "GET", "/openapi.json").json()
    infer = doc["paths"]["/v2/models/{name}/infer"]["post"]
    assert {"200", "400", "401", "404", "413", "415", "503", "504"} <= set(infer["responses"])
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
