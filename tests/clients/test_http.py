"""The upstream chokepoint against exact fault sequences (pytest-httpserver: a real HTTP server)."""

import logging
import time

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from orchestrator.clients.hint_backend import HintBackendClient
from orchestrator.clients.http import RetryPolicy
from orchestrator.clients.problem_handler import ProblemHandlerClient
from orchestrator.errors import UpstreamError
from orchestrator.settings import UpstreamUrls


def urls(server) -> UpstreamUrls:
    return UpstreamUrls(
        problems=server.url_for("/problems/"),
        execute=server.url_for("/execute/"),
        execution_result=server.url_for("/result/"),
        hint_add_request=server.url_for("/hint/request/"),
        hint_add_reflection=server.url_for("/hint/reflection/"),
    )


@pytest.fixture
def problems(httpserver):
    client = ProblemHandlerClient(
        urls(httpserver), connect_timeout=1, read_timeout=0.5,
        retry=RetryPolicy(retries=2, backoff_base=0.01, backoff_max=0.05),
    )
    yield client
    client.close()


def test_a_get_that_fails_once_is_retried_transparently(httpserver, problems):
    httpserver.expect_ordered_request("/problems/").respond_with_data("busy", status=503)
    httpserver.expect_ordered_request("/problems/").respond_with_json([{"problem_id": "a", "name": "A"}])
    assert problems.catalog() == [{"problem_id": "a", "name": "A"}]
    assert len(httpserver.log) == 2


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gets_give_up_after_the_configured_retries(httpserver, problems, status):
    httpserver.expect_request("/problems/").respond_with_json({"error": "x"}, status=status)
    with pytest.raises(UpstreamError) as excinfo:
        problems.catalog()
    assert (excinfo.value.kind, excinfo.value.status) == ("bad_status", status)
    assert len(httpserver.log) == 3


@pytest.mark.parametrize("status", [400, 404, 500])
def test_other_statuses_are_not_retried(httpserver, problems, status):
    httpserver.expect_request("/problems/").respond_with_json({"error": "no such problem"}, status=status)
    with pytest.raises(UpstreamError) as excinfo:
        problems.catalog("problem_id=zz")
    assert excinfo.value.upstream_body == {"error": "no such problem"}
    assert len(httpserver.log) == 1


def test_retry_after_is_honoured(httpserver):
    client = ProblemHandlerClient(urls(httpserver), connect_timeout=1, read_timeout=1,
                                  retry=RetryPolicy(retries=1, backoff_base=0.01, backoff_max=2))
    httpserver.expect_ordered_request("/problems/").respond_with_response(
        Response("slow down", status=503, headers={"Retry-After": "0.6"}))
    httpserver.expect_ordered_request("/problems/").respond_with_json([])
    started = time.monotonic()
    assert client.catalog() == []
    assert time.monotonic() - started >= 0.55
    client.close()


def test_posts_are_never_retried(httpserver, problems):
    httpserver.expect_request("/execute/", method="POST").respond_with_data("down", status=503)
    with pytest.raises(UpstreamError) as excinfo:
        problems.start_execution("p", "print(1)")
    assert excinfo.value.kind == "bad_status"
    assert len(httpserver.log) == 1
    assert httpserver.log[0][0].get_json() == {"problem_id": "p", "student_program": "print(1)"}


def test_a_timeout_is_its_own_kind_and_bounded():
    # A server of its own, threaded, so the sleeping handlers delay no other test.
    server = HTTPServer(threaded=True)
    server.start()

    def slow(request):
        time.sleep(0.8)
        return Response("[]", content_type="application/json")

    server.expect_request("/problems/").respond_with_handler(slow)
    client = ProblemHandlerClient(urls(server), connect_timeout=1, read_timeout=0.3,
                                  retry=RetryPolicy(retries=2, backoff_base=0.01, backoff_max=0.05))
    started = time.monotonic()
    with pytest.raises(UpstreamError) as excinfo:
        client.catalog()
    assert excinfo.value.kind == "timeout"
    # 3 attempts x 0.3 s read timeout, plus tiny backoff and margin.
    assert time.monotonic() - started < 3 * 0.3 + 1.0
    client.close()
    time.sleep(0.9)
    server.clear()
    server.stop()


def test_non_json_and_wrong_shapes_are_typed(httpserver, problems):
    httpserver.expect_ordered_request("/problems/").respond_with_data("<html>", content_type="text/html")
    httpserver.expect_ordered_request("/problems/").respond_with_json({"not": "a list"})
    httpserver.expect_ordered_request("/execute/").respond_with_json({"execution_id": "7"})
    with pytest.raises(UpstreamError) as first:
        problems.catalog()
    with pytest.raises(UpstreamError) as second:
        problems.catalog()
    with pytest.raises(UpstreamError) as third:
        problems.start_execution("p", "")
    assert [e.value.kind for e in (first, second, third)] == ["non_json", "bad_response", "bad_response"]


def test_an_unreachable_upstream_is_typed(httpserver):
    dead = UpstreamUrls(*(["http://127.0.0.1:9/x/"] * 5))
    client = ProblemHandlerClient(dead, connect_timeout=0.5, read_timeout=0.5, retry=RetryPolicy.none())
    with pytest.raises(UpstreamError) as excinfo:
        client.execution_result(3)
    assert excinfo.value.kind == "unreachable"
    assert "cannot be reached" in excinfo.value.message


def test_hint_backend_posts_the_protocol_and_accepts_empty_or_json_2xx(httpserver):
    client = HintBackendClient(urls(httpserver), connect_timeout=1, read_timeout=1)
    httpserver.expect_ordered_request("/hint/request/", method="POST").respond_with_data("", status=200)
    httpserver.expect_ordered_request("/hint/reflection/", method="POST").respond_with_json({"status": "ok"})
    httpserver.expect_ordered_request("/hint/reflection/", method="POST").respond_with_data(
        "<html>proxy error</html>", content_type="text/html")
    client.add_request(5, {"problem_id": "p", "student_program": "x", "hint_type": "plan"})
    client.add_reflection(5, "What did you try?", "")
    # An HTML page with 200 is a proxy's error page, not an acknowledgement: not delivered.
    with pytest.raises(UpstreamError) as excinfo:
        client.add_reflection(5, "What did you try?", "")
    assert excinfo.value.kind == "non_json"
    bodies = [entry[0].get_json() for entry in httpserver.log][:2]
    assert bodies == [
        {"request_id": 5, "type": "add_request",
         "data": {"problem_id": "p", "student_program": "x", "hint_type": "plan"}},
        {"request_id": 5, "type": "add_reflection",
         "data": {"reflection_question": "What did you try?", "reflection_answer": ""}},
    ]


def test_every_call_is_logged_with_duration_and_outcome_but_no_query(httpserver, problems, caplog):
    caplog.set_level(logging.INFO, logger="orchestrator.upstream")
    httpserver.expect_ordered_request("/problems/").respond_with_json({"problem_id": "a"})
    httpserver.expect_ordered_request("/problems/").respond_with_json({"error": "no"}, status=404)
    problems.catalog("problem_id=a&student_id=secret-student")
    with pytest.raises(UpstreamError):
        problems.catalog("problem_id=b")
    records = [r for r in caplog.records if getattr(r, "event", None) == "upstream"]
    assert [(r.status, r.outcome) for r in records] == [(200, "ok"), (404, "bad_status")]
    assert all(r.duration_ms >= 0 and r.upstream == "problem_handler" for r in records)
    ours = [r for r in caplog.records if r.name.startswith("orchestrator")]
    assert ours and not any("secret-student" in r.getMessage() or "secret-student" in str(r.__dict__)
                            for r in ours)
