"""Three `orchestrator serve` instances on one PostgreSQL, requests spread round-robin."""

import itertools
import os
import threading

import pytest
import requests

from api.test_metrics import value
from conftest import ServerProcess, free_port, wait_until
from e2e.test_metrics_e2e import scrape
from orchestrator.simulators.server import start_simulators, upstream_environment

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


class RoundRobin:
    """A client that sends each request to the next instance."""

    def __init__(self, urls):
        self._urls = itertools.cycle(urls)
        self._lock = threading.Lock()

    def url(self):
        with self._lock:
            return next(self._urls)

    def get(self, path, **kwargs):
        return requests.get(self.url() + path, timeout=30, **kwargs)

    def post(self, path, **kwargs):
        return requests.post(self.url() + path, timeout=30, **kwargs)


@pytest.fixture
def instances(base_env, tmp_path):
    problems, hints = start_simulators(execution_delay=0.05, hint_delay=0.1)
    (tmp_path / "instructors.yaml").write_text(
        "instructors:\n" + "".join(f"  - {{id: {n}, name: I{n}, email: i{n}@course.example}}\n" for n in range(1, 7)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCHESTRATOR_", "DB_", "BACKEND_"))}
    env.pop("DATABASE_URL", None)
    env.update(base_env, **upstream_environment(problems, hints),
               ORCHESTRATOR_INSTRUCTOR_CONFIG=str(tmp_path / "instructors.yaml"), ORCHESTRATOR_INSTRUCTOR_AUTH="none",
               ORCHESTRATOR_DISPATCHER_INTERVAL_SECONDS="0.1")
    servers = []
    for n in range(3):
        workdir = tmp_path / f"instance{n}"
        workdir.mkdir()
        servers.append(ServerProcess(["--workers", "2"], env, workdir, free_port()))
    # The backend calls back whichever instance; here the second one.
    hints.simulator.configure({"callback_url": f"{servers[1].url}/ai_hint/save/"})
    for server in servers:
        server.wait_healthy(timeout=60)
    yield servers, problems, hints
    for server in servers:
        server.stop()
    hints.stop()
    problems.stop()


def test_three_instances_behave_as_one(instances):
    servers, _, hints = instances
    client = RoundRobin([s.url for s in servers])

    # Quotas: 15 simultaneous plan requests (limit 1) for one student, spread over instances.
    barrier = threading.Barrier(15)
    statuses = []

    def racer():
        url = client.url()
        barrier.wait()
        statuses.append(requests.post(f"{url}/ai_hint/add_request/", timeout=30, json={
            "student_id": "racer", "problem_id": "sum_two", "hint_type": "plan", "student_program": ""}).status_code)

    threads = [threading.Thread(target=racer) for _ in range(15)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(statuses) == [200] + [429] * 14

    # The whole flow with each step on another instance; three dispatchers deliver.
    ids = []
    for n in range(12):
        request_id = client.post("/ai_hint/add_request/", json={
            "student_id": f"s{n}", "problem_id": "sum_two", "hint_type": "debug", "student_program": "x"}
        ).json()["request_id"]
        assert client.post("/ai_hint/add_reflection/", json={
            "request_id": request_id, "reflection_question": "q", "reflection_answer": "a"}).status_code == 200
        ids.append(request_id)

    def all_finished():
        return all(client.get("/ai_hint/query_hint/", params={"request_id": i}).json().get("job_finished")
                   for i in ids)

    wait_until(all_finished, timeout=60, interval=0.3, message="every hint through three instances")
    backend = hints.simulator.received_stats()
    assert backend["out_of_order"]["count"] == 0 and backend["duplicates"]["count"] == 0
    assert backend["received"]["add_request"] == 13 and backend["received"]["add_reflection"] == 12
    assert backend["callbacks"]["statuses"].get("204") == backend["callbacks"]["sent"]

    # The instructor queue: 6 instructors on different instances, 2 escalations.
    queued = {client.post("/instructor_feedback/add_request/", json={"request_id": i}).json()["instructor_request_id"]
              for i in ids[:2]}
    barrier = threading.Barrier(6)
    given = []

    def instructor(n):
        url = client.url()
        barrier.wait()
        item = requests.get(f"{url}/instructor_feedback/fetch_request/", params={"instructor_id": str(n)},
                            timeout=30).json()
        if item:
            given.append(item["instructor_request_id"])

    threads = [threading.Thread(target=instructor, args=(n,)) for n in range(1, 7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(given) == sorted(queued)

    # Metrics: per-instance counters add up; database gauges agree everywhere.
    scrapes = [scrape(s.url) for s in servers]
    accepted = sum(value(s, "orchestrator_http_requests_total", method="POST", route="/ai_hint/add_request/",
                         status="200") for s in scrapes)
    assert accepted == 1 + 12
    assert {value(s, "orchestrator_escalations", state="assigned") for s in scrapes} == {2.0}
