"""The instructor queue against a real `orchestrator serve`: concurrency and the remote CLI."""

import json
import threading

import pytest
import requests

from conftest import INSTRUCTORS_YAML

pytestmark = pytest.mark.e2e

TEN_INSTRUCTORS = "instructors:\n" + "".join(
    f"  - {{id: {n}, name: Instructor {n}, email: i{n}@course.example}}\n" for n in range(1, 11)
) + "feedback_timeout: 30\n"


def escalate(base, student):
    hint = requests.post(f"{base}/ai_hint/add_request/", timeout=10, json={
        "student_id": student, "problem_id": "sum_two", "hint_type": "debug", "student_program": ""}).json()
    result = requests.post(f"{base}/instructor_feedback/add_request/", timeout=10,
                           json={"request_id": hint["request_id"]})
    assert result.status_code == 200
    return result.json()["instructor_request_id"]


def test_concurrent_fetches_never_hand_out_a_request_twice(serve_process, tmp_path):
    config = tmp_path / "ten.yaml"
    config.write_text(TEN_INSTRUCTORS)
    server = serve_process("--workers", "4", "--no-dispatcher", env={
        "ORCHESTRATOR_INSTRUCTOR_CONFIG": str(config), "ORCHESTRATOR_INSTRUCTOR_AUTH": "none"})
    for run in range(12):
        queued = {escalate(server.url, f"run{run}-s{n}") for n in range(3)}
        barrier = threading.Barrier(10)
        results: dict[str, dict] = {}

        def fetch(instructor):
            session = requests.Session()
            barrier.wait()
            response = session.get(f"{server.url}/instructor_feedback/fetch_request/",
                                   params={"instructor_id": instructor}, timeout=30)
            assert response.status_code == 200, response.text
            results[instructor] = response.json()

        threads = [threading.Thread(target=fetch, args=(str(n),)) for n in range(1, 11)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        given = [r["instructor_request_id"] for r in results.values() if r]
        assert len(results) == 10
        assert sorted(given) == sorted(queued), f"run {run}: {results}"
        # Answer them so the next run starts with an empty queue.
        for instructor, item in results.items():
            if item:
                saved = requests.post(f"{server.url}/instructor_feedback/save_feedback/", timeout=10, json={
                    "instructor_request_id": item["instructor_request_id"], "instructor_id": instructor,
                    "feedback": "answer"})
                assert saved.status_code == 200


def test_the_cli_in_remote_mode_against_a_real_server(serve_process, tmp_path, make_cli, base_env):
    config = tmp_path / "instructors.yaml"
    config.write_text(INSTRUCTORS_YAML)
    server = serve_process("--workers", "2", "--no-dispatcher", env={"ORCHESTRATOR_INSTRUCTOR_CONFIG": str(config)})
    local = make_cli({"DATABASE_URL": base_env["DATABASE_URL"], "ORCHESTRATOR_INSTRUCTOR_CONFIG": str(config)})
    issued = json.loads(local("instructors", "add", "1", "--json").stdout)
    token = issued["token"]
    feedback_id = escalate(server.url, "remote-student")

    remote = make_cli({"ORCHESTRATOR_URL": server.url, "ORCHESTRATOR_INSTRUCTOR_TOKEN": token,
                       "ORCHESTRATOR_INSTRUCTOR_ID": "1"})
    queue = json.loads(remote("feedback", "queue", "--json").stdout)
    assert queue["waiting"] == 1 and queue["items"][0]["instructor_request_id"] == feedback_id
    shown = remote("feedback", "next")
    # No Problem Handler runs here: the name falls back to the problem id.
    assert shown.exit_code == 0 and "student program" in shown.stdout and "sum_two" in shown.stdout
    answered = remote("feedback", "answer", str(feedback_id), "--message", "Check the input parsing.", "--yes")
    assert answered.exit_code == 0, answered.output
    result = requests.get(f"{server.url}/instructor_feedback/query_feedback/", timeout=5,
                          params={"instructor_request_id": feedback_id}).json()
    assert result == {"instructor_request_id": feedback_id, "job_finished": True,
                      "feedback": "Check the input parsing."}
    detail = json.loads(remote("feedback", "show", str(feedback_id), "--json").stdout)
    assert detail["state"] == "answered" and detail["instructor_id"] == "1"

    # Errors come back as plainly as in local mode.
    as_other = make_cli({"ORCHESTRATOR_URL": server.url, "ORCHESTRATOR_INSTRUCTOR_TOKEN": token,
                         "ORCHESTRATOR_INSTRUCTOR_ID": "2"})
    denied = as_other("feedback", "next")
    assert denied.exit_code == 1 and "only as themself" in denied.output
    revoked = local("instructors", "revoke", "1")
    assert revoked.exit_code == 0
    refused = remote("feedback", "queue")
    assert refused.exit_code == 1 and "not valid" in refused.output

