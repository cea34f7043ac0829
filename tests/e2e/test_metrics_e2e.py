"""/metrics of a real server sums every process: gunicorn workers and the dispatcher."""

import pytest
import requests

from api.test_metrics import value
from conftest import free_port, wait_until
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.e2e


def scrape(url):
    samples = {}
    for family in text_string_to_metric_families(requests.get(f"{url}/metrics", timeout=10).text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_are_summed_over_workers_and_the_dispatcher(serve_process):
    server = serve_process("--demo", "--workers", "2", "--problems-port", str(free_port()),
                           "--hint-port", str(free_port()))
    session = requests.Session()
    for n in range(40):
        # A fresh connection each time, so both workers answer some of them.
        response = requests.get(f"{server.url}/ai_hint/has_ever_requested/", params={"student_id": f"m{n}"},
                                timeout=10, headers={"Connection": "close"})
        assert response.status_code == 200
    added = session.post(f"{server.url}/ai_hint/add_request/", timeout=10, json={
        "student_id": "m", "problem_id": "sum_two", "hint_type": "plan", "student_program": ""})
    assert added.status_code == 200

    def counted():
        samples = scrape(server.url)
        delivered = value(samples, "orchestrator_upstream_calls_total", upstream="hint_backend", outcome="ok")
        return samples if delivered >= 1 else None

    samples = wait_until(counted, timeout=20, message="the dispatcher's delivery in the metrics")
    assert value(samples, "orchestrator_http_requests_total", method="GET",
                 route="/ai_hint/has_ever_requested/", status="200") == 40
    assert value(samples, "orchestrator_http_requests_total", method="POST",
                 route="/ai_hint/add_request/", status="200") == 1
