"""/metrics: counts that a flow produced, database gauges, optional operator token."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.test_hints import ask, poll_until_done, reflect


def scrape(client, headers=None) -> dict:
    result = client.simulate_get("/metrics", headers=headers or {})
    assert result.status_code == 200, result.text
    assert result.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(result.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_what_a_flow_did(stack):
    client = stack.client
    before = scrape(client)
    request_id = ask(client, hint_type="plan").json["request_id"]
    assert ask(client, hint_type="plan").status_code == 429
    reflect(client, request_id)
    poll_until_done(client, request_id)
    client.simulate_post("/instructor_feedback/add_request/", json={"request_id": request_id})
    after = scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("orchestrator_http_requests_total", method="POST", route="/ai_hint/add_request/", status="200") == 1
    assert delta("orchestrator_http_requests_total", method="POST", route="/ai_hint/add_request/", status="429") == 1
    assert delta("orchestrator_http_request_duration_seconds_count", method="POST", route="/ai_hint/add_request/") == 2
    assert delta("orchestrator_quota_rejections_total", limit="plan") == 1
    assert delta("orchestrator_upstream_calls_total", upstream="hint_backend", outcome="ok") == 2
    assert value(after, "orchestrator_escalations", state="waiting") == 1
    assert value(after, "orchestrator_escalation_oldest_waiting_seconds") >= 0
    assert value(after, "orchestrator_outbox_pending", kind="hint.add_request") == 0


def test_outbox_gauges_show_what_waits(stack):
    stack.stop_dispatcher()
    ask(stack.client)
    samples = scrape(stack.client)
    assert value(samples, "orchestrator_outbox_pending", kind="hint.add_request") == 1
    assert value(samples, "orchestrator_outbox_oldest_pending_seconds", kind="hint.add_request") >= 0


ADMIN = "operator-token-0123456789"


@pytest.mark.parametrize("stack_env", [{"ORCHESTRATOR_ADMIN_TOKEN": ADMIN, "ORCHESTRATOR_METRICS_REQUIRE_TOKEN": "true"}])
def test_metrics_can_require_the_operator_token(stack_env, stack):
    assert stack.client.simulate_get("/metrics").status_code == 401
    assert stack.client.simulate_get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert scrape(stack.client, {"Authorization": f"Bearer {ADMIN}"})
