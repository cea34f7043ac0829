"""Every failure is JSON of one shape, and a 500 leaks nothing."""

import json

import pytest
from falcon import testing

from orchestrator import errors
from orchestrator.api.app import create_app
from orchestrator.api.media import json_object


class Echo:
    def on_post(self, req, resp):
        resp.media = {"received": json_object(req)}


class Boom:
    def on_get(self, req, resp):
        raise RuntimeError("SELECT password FROM secrets -- at /srv/orchestrator/db.py line 12")


class Raises:
    def __init__(self, exc):
        self._exc = exc

    def on_get(self, req, resp):
        raise self._exc


@pytest.fixture
def app_client(runtime):
    app = create_app(runtime.settings, runtime)
    app.add_route("/test/echo/", Echo())
    app.add_route("/test/boom/", Boom())
    app.add_route("/test/not_found/", Raises(errors.NotFoundError("No hint request with id 7")))
    app.add_route("/test/quota/", Raises(errors.QuotaExceededError("Hint quota used up")))
    app.add_route("/test/conflict/", Raises(errors.ConflictError("Already escalated")))
    app.add_route("/test/timeout/", Raises(errors.UpstreamError("slow", upstream="hint", kind="timeout")))
    app.add_route("/test/unreachable/", Raises(errors.UpstreamError("down", upstream="hint", kind="unreachable")))
    app.add_route("/test/db_down/", Raises(errors.DatabaseUnavailableError("The database is unavailable")))
    app.add_route("/test/unauth/", Raises(errors.AuthenticationError("Credentials required")))
    return testing.TestClient(app)


def assert_error_shape(result, status):
    assert result.status_code == status
    assert result.headers["content-type"].startswith("application/json")
    body = result.json
    assert set(body) <= {"error", "detail", "info"} and body["detail"] is None
    assert isinstance(body["error"], str) and body["error"] and not body["error"][:3].isdigit()
    return body


def test_unknown_path_is_a_json_404(app_client):
    body = assert_error_shape(app_client.simulate_get("/no/such/path/"), 404)
    assert "/no/such/path/" in body["error"]


def test_trailing_slash_is_part_of_the_path(app_client):
    assert_error_shape(app_client.simulate_get("/healthz/"), 404)


def test_wrong_method_is_a_json_405_with_allow(app_client):
    result = app_client.simulate_delete("/test/echo/")
    assert_error_shape(result, 405)
    assert "POST" in result.headers["allow"]


@pytest.mark.parametrize(
    "body, fragment",
    [
        (b"{not json", "not valid JSON"),
        (b"", "empty"),
        (b"[1, 2]", "JSON object"),
        (b"\xff\xfe\x00", "UTF-8"),
        (b"null", "JSON object"),
    ],
)
def test_malformed_bodies_are_400_with_a_sentence(app_client, body, fragment):
    result = app_client.simulate_post(
        "/test/echo/", body=body, headers={"Content-Type": "application/json"}
    )
    assert fragment in assert_error_shape(result, 400)["error"]


def test_json_is_read_whatever_the_content_type_says(app_client):
    result = app_client.simulate_post("/test/echo/", body=b'{"a": 1}', headers={"Content-Type": "text/plain"})
    assert result.status_code == 200 and result.json == {"received": {"a": 1}}


def test_body_over_the_limit_is_413(make_settings):
    settings = make_settings(ORCHESTRATOR_MAX_BODY_BYTES="100")
    app = create_app(settings)
    app.add_route("/test/echo/", Echo())
    c = testing.TestClient(app)
    small = json.dumps({"x": "a" * 50}).encode()
    assert c.simulate_post("/test/echo/", body=small).status_code == 200
    result = c.simulate_post("/test/echo/", body=json.dumps({"x": "a" * 200}).encode())
    assert "too large" in assert_error_shape(result, 413)["error"]


def test_an_unexpected_error_is_a_500_that_names_only_the_request_id(app_client, caplog):
    result = app_client.simulate_get("/test/boom/", headers={"X-Request-ID": "req-42"})
    body = assert_error_shape(result, 500)
    assert body == {"error": "Internal server error", "detail": None, "info": {"request_id": "req-42"}}
    assert "SELECT" not in result.text and "secrets" not in result.text
    # ...but the operator's log has the traceback, under the same request id.
    logged = [r for r in caplog.records if r.name == "orchestrator.api" and r.exc_info]
    assert logged and logged[0].request_id == "req-42"


@pytest.mark.parametrize(
    "path, status",
    [
        ("/test/not_found/", 404),
        ("/test/quota/", 429),
        ("/test/conflict/", 409),
        ("/test/timeout/", 504),
        ("/test/unreachable/", 502),
        ("/test/db_down/", 503),
        ("/test/unauth/", 401),
    ],
)
def test_domain_errors_map_to_their_status(app_client, path, status):
    body = assert_error_shape(app_client.simulate_get(path), status)
    assert body["error"]


def test_every_response_carries_a_request_id(app_client):
    ids = {app_client.simulate_get("/healthz").headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3
    assert app_client.simulate_get("/healthz", headers={"X-Request-ID": "abc.123"}).headers[
        "x-request-id"] == "abc.123"
    # An id that could forge log lines is replaced, not echoed.
    forged = app_client.simulate_get("/healthz", headers={"X-Request-ID": 'x" level=error'})
    assert forged.headers["x-request-id"] != 'x" level=error'
