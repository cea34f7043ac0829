"""The OpenAPI document describes exactly the routes the app serves."""

from falcon import inspect

from orchestrator.api.app import create_app
from orchestrator.api.resources.openapi import openapi_document


def served_routes(app) -> dict[str, set[str]]:
    routes = {}
    for route in inspect.inspect_routes(app):
        methods = {m.method for m in route.methods if m.internal is False and m.method != "OPTIONS"}
        routes[route.path] = methods
    return routes


def documented_routes() -> dict[str, set[str]]:
    return {path: {m.upper() for m in item if m in ("get", "post", "put", "patch", "delete")}
            for path, item in openapi_document()["paths"].items()}


def test_every_route_is_documented_and_every_documented_route_exists(runtime):
    app = create_app(runtime.settings, runtime)
    assert served_routes(app) == documented_routes()


def test_the_document_is_served_and_valid(client):
    from openapi_spec_validator import validate

    result = client.simulate_get("/openapi.json")
    assert result.status_code == 200
    assert result.json["openapi"].startswith("3.1")
    validate(result.json)
    for path, item in result.json["paths"].items():
        for method, operation in item.items():
            statuses = set(operation["responses"])
            assert statuses, f"{method} {path} documents no response"
