"""Upstream and SMTP faults against a real `orchestrator serve` (and its dispatcher)."""

import os
import time

import pytest
import requests

from conftest import INSTRUCTORS_YAML, MailSink, ServerProcess, free_port, wait_until
from orchestrator.simulators.server import start_simulators, upstream_environment

pytestmark = pytest.mark.e2e


def test_upstreams_and_smtp_failing_never_block_the_api(base_env, tmp_path):
    problems, hints = start_simulators(execution_delay=0.05, hint_delay=0.1)
    mail = MailSink()  # not started: the mail server is down
    (tmp_path / "instructors.yaml").write_text(INSTRUCTORS_YAML)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCHESTRATOR_", "DB_", "BACKEND_"))}
    env.pop("DATABASE_URL", None)
    env.update(base_env, **upstream_environment(problems, hints), **mail.env,
               ORCHESTRATOR_INSTRUCTOR_CONFIG=str(tmp_path / "instructors.yaml"),
               ORCHESTRATOR_UPSTREAM_CONNECT_TIMEOUT="1", ORCHESTRATOR_UPSTREAM_READ_TIMEOUT="1",
               ORCHESTRATOR_UPSTREAM_RETRIES="1", ORCHESTRATOR_OUTBOX_LEASE_SECONDS="5",
               ORCHESTRATOR_DELIVERY_MAX_ATTEMPTS="100", ORCHESTRATOR_DELIVERY_BACKOFF_SECONDS="0.1",
               ORCHESTRATOR_DELIVERY_BACKOFF_MAX_SECONDS="0.5", ORCHESTRATOR_DISPATCHER_INTERVAL_SECONDS="0.1")
    server = ServerProcess(["--workers", "2"], env, tmp_path, free_port())
    hints.simulator.configure({"callback_url": f"{server.url}/ai_hint/save/"})
    counts = {}
    try:
        server.wait_healthy()
        base = server.url

        # The hint backend is down: students still get their request id at once.
        requests.put(f"{hints.url}/_sim/faults", json={"refuse_rate": 1.0}, timeout=5)
        started = time.monotonic()
        request_id = requests.post(f"{base}/ai_hint/add_request/", timeout=10, json={
            "student_id": "s", "problem_id": "sum_two", "hint_type": "debug", "student_program": ""}).json()["request_id"]
        requests.post(f"{base}/ai_hint/add_reflection/", timeout=10, json={
            "request_id": request_id, "reflection_question": "q", "reflection_answer": "a"})
        counts["hint_calls_while_backend_down_s"] = round(time.monotonic() - started, 2)
        assert counts["hint_calls_while_backend_down_s"] < 2
        time.sleep(1.5)
        requests.put(f"{hints.url}/_sim/faults", json={"refuse_rate": 0.0}, timeout=5)

        def hint_done():
            result = requests.get(f"{base}/ai_hint/query_hint/", params={"request_id": request_id}, timeout=5)
            return result.json() if result.status_code == 200 and result.json()["job_finished"] else None

        assert wait_until(hint_done, timeout=30, message="the hint after the backend came back")["hint"]

        # The Problem Handler is slow, then flapping: bounded 504/502s, then answers again.
        requests.put(f"{problems.url}/_sim/faults", json={"latency": 3.0}, timeout=5)
        started = time.monotonic()
        slow = requests.get(f"{base}/problems/programming_problems/", timeout=30)
        counts["slow_catalog_s"] = round(time.monotonic() - started, 2)
        assert slow.status_code == 504 and slow.json()["error"]
        assert counts["slow_catalog_s"] < 2 * 1 + 2 + 2
        requests.put(f"{problems.url}/_sim/faults", json={"latency": 0.0, "error_rate": 0.5, "seed": 3}, timeout=5)
        statuses = [requests.get(f"{base}/problems/programming_problems/", params={"problem_id": f"p{n}"},
                                 timeout=10).status_code for n in range(20)]
        counts["flapping_catalog_statuses"] = {s: statuses.count(s) for s in sorted(set(statuses))}
        assert set(statuses) <= {404, 502}, statuses  # unknown problems, or the upstream's 500 as 502
        requests.put(f"{problems.url}/_sim/faults", json={"error_rate": 0.0}, timeout=5)
        assert requests.get(f"{base}/problems/programming_problems/", timeout=10).status_code == 200

        # SMTP is down: escalations and answers still answer at once; mail goes out later.
        started = time.monotonic()
        escalated = requests.post(f"{base}/instructor_feedback/add_request/", timeout=10, json={
            "request_id": request_id, "student_email": "s@course.example"})
        counts["escalation_while_smtp_down_s"] = round(time.monotonic() - started, 2)
        assert escalated.status_code == 200 and counts["escalation_while_smtp_down_s"] < 2
        time.sleep(1.0)
        mail.start()
        wait_until(lambda: len(mail.messages) == 2, timeout=30, message="the instructors' e-mails")
        counts["emails_after_smtp_returned"] = len(mail.messages)
        print(f"\nupstream faults: {counts}")
    finally:
        server.stop()
        mail.stop()
        hints.stop()
        problems.stop()
