"""The Problems part of the contract, against the simulated Problem Handler over real HTTP."""

import time

import pytest
from sqlmodel import select

from conftest import wait_until
from orchestrator.simulators.problem_handler import PROBLEMS_PATH, RESULT_PATH, SOLUTIONS
from orchestrator.store.models import ProgramExecution

LIST = "/problems/programming_problems/"
EXECUTE = "/problems/execute_program/"
RESULT = "/problems/get_execution_result/"


def rows(runtime):
    with runtime.db.scope() as session:
        return list(session.exec(select(ProgramExecution).order_by(ProgramExecution.id)))


def poll(client, execution_id, *, timeout=15):
    def finished():
        result = client.simulate_get(RESULT, params={"execution_id": str(execution_id)})
        assert result.status_code == 200, result.text
        return result.json if result.json["job_finished"] else None

    return wait_until(finished, timeout=timeout, interval=0.1, message="the execution to finish")


def assert_json_error(result, status):
    assert result.status_code == status, result.text
    assert isinstance(result.json.get("error"), str) and result.json["error"]
    return result.json


# ----------------------------------------------------------------------------- catalog


def test_list_is_an_array_of_ids_and_names(sim_client):
    result = sim_client.simulate_get(LIST)
    assert result.status_code == 200
    assert isinstance(result.json, list) and len(result.json) >= 3
    for problem in result.json:
        assert set(problem) >= {"problem_id", "name"}
    assert {p["problem_id"] for p in result.json} >= set(SOLUTIONS)


def test_one_problem_with_description_has_the_fields_the_student_app_reads(sim_client):
    result = sim_client.simulate_get(LIST, params={"problem_id": "sum_two", "include_description": "true"})
    assert result.status_code == 200
    assert result.json["problem_id"] == "sum_two"
    assert isinstance(result.json["name"], str)
    assert isinstance(result.json["task_description"], str) and result.json["task_description"]
    assert isinstance(result.json["template_code"], str)


def test_description_errors_of_the_upstream_pass_through(sim_client):
    listing = sim_client.simulate_get(LIST).json
    passed = []
    for problem in listing:
        one = sim_client.simulate_get(LIST, params={"problem_id": problem["problem_id"]}).json
        if "task_description_error" in one:
            passed.append(one)
    assert passed, "the simulator has a problem whose description file is missing"
    assert isinstance(passed[0]["task_description_error"], str)


def test_unknown_problem_is_the_upstreams_404_as_json(sim_client):
    body = assert_json_error(sim_client.simulate_get(LIST, params={"problem_id": "nope"}), 404)
    assert "nope" in body["error"] or "not" in body["error"].lower()


def test_query_parameters_reach_the_upstream_as_they_came(sim_client, simulators):
    sim_client.simulate_get(LIST, query_string="problem_id=sum_two&include_description=true&extra=&x=1&x=2")
    queries = simulators.stats("problems")["received"]["problem_queries"]
    assert queries, "the simulator saw no catalog query"
    last = queries[-1]
    text = str(last)
    for fragment in ("include_description", "extra", "sum_two"):
        assert fragment in text


def test_catalog_is_cached_per_query_and_expires(make_settings, simulators):
    from falcon import testing

    from orchestrator.api.app import create_app
    from orchestrator.runtime import build_runtime

    rt = build_runtime(make_settings(**simulators.env, ORCHESTRATOR_CATALOG_CACHE_SECONDS="0.5"))
    client = testing.TestClient(create_app(rt.settings, rt))

    def upstream_hits():
        return simulators.stats("problems")["requests"].get(PROBLEMS_PATH, 0)

    listing = client.simulate_get(LIST).json
    one = client.simulate_get(LIST, params={"problem_id": "sum_two"}).json
    assert upstream_hits() == 2
    # Repeats are served from the cache, each with its own query's answer.
    assert client.simulate_get(LIST).json == listing
    assert client.simulate_get(LIST, params={"problem_id": "sum_two"}).json == one
    assert upstream_hits() == 2
    # Errors are never cached.
    client.simulate_get(LIST, params={"problem_id": "nope"})
    client.simulate_get(LIST, params={"problem_id": "nope"})
    assert upstream_hits() == 4
    time.sleep(0.6)
    assert client.simulate_get(LIST).json == listing
    assert upstream_hits() == 5
    rt.close()


# ----------------------------------------------------------------------------- executions


def test_a_correct_program_runs_and_its_result_is_recorded(sim_client, sim_runtime):
    program = SOLUTIONS["sum_two"]
    started = sim_client.simulate_post(
        EXECUTE, json={"problem_id": "sum_two", "student_program": program, "student_id": "stu-1"}
    )
    assert started.status_code == 200
    execution_id = started.json["execution_id"]
    assert isinstance(execution_id, int) and set(started.json) == {"execution_id"}

    pending = sim_client.simulate_get(RESULT, params={"execution_id": str(execution_id)})
    assert pending.status_code == 200 and pending.json["job_finished"] in (False, True)

    result = poll(sim_client, execution_id)
    assert result["correctness"] is True
    assert result["buggy_output"] is None
    assert isinstance(result["elapsed_time"], (int, float))

    [row] = rows(sim_runtime)
    assert (row.student_id, row.problem_id, row.student_program, row.execution_id) == (
        "stu-1", "sum_two", program, execution_id)
    assert row.is_success is True and row.correctness is True and row.finished_at is not None
    assert row.elapsed_time == pytest.approx(result["elapsed_time"])


def test_a_wrong_program_reports_buggy_output(sim_client, sim_runtime):
    started = sim_client.simulate_post(
        EXECUTE, json={"problem_id": "sum_two", "student_program": "print(0)\n", "student_id": "stu-2"}
    )
    result = poll(sim_client, started.json["execution_id"])
    assert result["correctness"] is False and isinstance(result["buggy_output"], str)
    [row] = rows(sim_runtime)
    assert row.correctness is False and row.buggy_output == result["buggy_output"]


def test_a_program_that_errors_reports_the_error(sim_client, sim_runtime):
    started = sim_client.simulate_post(
        EXECUTE, json={"problem_id": "sum_two", "student_program": "def broken(:\n", "student_id": "s"}
    )
    result = poll(sim_client, started.json["execution_id"])
    assert isinstance(result["error"], str) and result["error"]
    [row] = rows(sim_runtime)
    assert row.is_success is False and row.error_message == result["error"] and row.finished_at


def test_the_instructor_app_omits_student_id_and_may_send_an_empty_program(sim_client, sim_runtime):
    started = sim_client.simulate_post(EXECUTE, json={"problem_id": "reverse_string", "student_program": ""})
    assert started.status_code == 200
    poll(sim_client, started.json["execution_id"])
    [row] = rows(sim_runtime)
    assert row.student_id is None and row.student_program == ""


def test_the_result_is_recorded_once_however_long_the_client_polls(sim_client, sim_runtime):
    started = sim_client.simulate_post(
        EXECUTE, json={"problem_id": "max_list", "student_program": SOLUTIONS["max_list"], "student_id": "s"}
    )
    execution_id = started.json["execution_id"]
    poll(sim_client, execution_id)
    [first] = rows(sim_runtime)
    for _ in range(3):
        assert sim_client.simulate_get(RESULT, params={"execution_id": str(execution_id)}).json["job_finished"]
    [again] = rows(sim_runtime)
    assert again.finished_at == first.finished_at and again.correctness is True


def test_unknown_execution_id_is_the_upstreams_404(sim_client):
    assert_json_error(sim_client.simulate_get(RESULT, params={"execution_id": "987654"}), 404)


def test_an_execution_that_takes_far_too_long_is_a_502_and_recorded_as_failed(make_settings):
    from falcon import testing

    from orchestrator.api.app import create_app
    from orchestrator.runtime import build_runtime
    from orchestrator.simulators.server import start_simulators, upstream_environment

    problems, hints = start_simulators(execution_delay=0.0, case_timeout=0.3)
    try:
        rt = build_runtime(make_settings(**upstream_environment(problems, hints)))
        client = testing.TestClient(create_app(rt.settings, rt))
        started = client.simulate_post(
            EXECUTE, json={"problem_id": "sum_two", "student_program": "while True:\n    pass\n", "student_id": "s"}
        )

        def answered():
            result = client.simulate_get(RESULT, params={"execution_id": str(started.json["execution_id"])})
            return None if result.status_code == 200 and not result.json["job_finished"] else result

        result = wait_until(answered, timeout=15, message="the timeout verdict")
        body = assert_json_error(result, 502)
        assert "too long" in body["error"]
        [row] = rows(rt)
        assert row.is_success is False and "too long" in row.error_message and row.finished_at
        rt.close()
    finally:
        hints.stop()
        problems.stop()


# ----------------------------------------------------------------------------- upstream faults


def test_upstream_down_gives_502_quickly_and_records_the_failure(sim_client, sim_runtime, simulators):
    simulators.problems.stop()
    started = time.monotonic()
    result = sim_client.simulate_post(EXECUTE, json={"problem_id": "sum_two", "student_program": "x", "student_id": "s"})
    assert_json_error(result, 502)
    assert_json_error(sim_client.simulate_get(LIST), 502)
    assert_json_error(sim_client.simulate_get(RESULT, params={"execution_id": "1"}), 502)
    assert time.monotonic() - started < 15
    [row] = rows(sim_runtime)
    assert row.execution_id is None and row.is_success is False and "unreachable" in row.error_message


def test_upstream_slower_than_the_timeout_gives_504_within_the_bound(sim_client, sim_runtime, simulators):
    simulators.set_faults("problems", latency=3.0)
    started = time.monotonic()
    result = sim_client.simulate_post(EXECUTE, json={"problem_id": "sum_two", "student_program": "x", "student_id": "s"})
    assert_json_error(result, 504)
    # One attempt for a POST: read timeout (1 s) plus margin.
    assert time.monotonic() - started < 2.5
    started = time.monotonic()
    assert_json_error(sim_client.simulate_get(LIST), 504)
    # Three attempts for a GET (1 s each) plus backoff, with margin.
    assert time.monotonic() - started < 3 * 1 + 3 * 2 + 2
    [row] = rows(sim_runtime)
    assert row.is_success is False and row.error_message.startswith("timeout")


def test_upstream_500_gives_502_without_blind_retries(sim_client, sim_runtime, simulators):
    simulators.set_faults("problems", error_rate=1.0)
    assert_json_error(sim_client.simulate_get(LIST), 502)
    assert_json_error(
        sim_client.simulate_post(EXECUTE, json={"problem_id": "sum_two", "student_program": "x", "student_id": "s"}),
        502,
    )
    requests_seen = simulators.stats("problems")["requests"]
    assert requests_seen.get(PROBLEMS_PATH) == 1
    [row] = rows(sim_runtime)
    assert row.is_success is False and "500" in row.error_message


def test_upstream_non_json_gives_502(sim_client, sim_runtime, simulators):
    started = sim_client.simulate_post(
        EXECUTE, json={"problem_id": "sum_two", "student_program": SOLUTIONS["sum_two"], "student_id": "s"}
    )
    simulators.set_faults("problems", non_json_rate=1.0)
    assert_json_error(sim_client.simulate_get(LIST), 502)
    assert_json_error(sim_client.simulate_get(RESULT, params={"execution_id": str(started.json["execution_id"])}), 502)
    [row] = rows(sim_runtime)
    # A failed poll is recorded, but provisionally: the execution is not over.
    assert row.is_success is False and row.error_message.startswith("non_json") and row.finished_at is None
    simulators.set_faults("problems", non_json_rate=0.0)
    result = poll(sim_client, started.json["execution_id"])
    [row] = rows(sim_runtime)
    assert result["correctness"] is True and row.is_success is True and row.error_message is None
    assert simulators.stats("problems")["requests"].get(RESULT_PATH, 0) >= 2


def test_refused_connections_give_502(sim_client, simulators):
    simulators.set_faults("problems", refuse_rate=1.0)
    assert_json_error(sim_client.simulate_get(LIST), 502)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "body",
    [
        {"student_program": "print(1)"},
        {"problem_id": "sum_two"},
        {"problem_id": 5, "student_program": "print(1)"},
        {"problem_id": "sum_two", "student_program": ["print(1)"]},
        {"problem_id": "sum_two", "student_program": None},
        {"problem_id": "", "student_program": "x"},
        {"problem_id": "p" * 300, "student_program": "x"},
        {"problem_id": "sum_two", "student_program": "x", "student_id": 17},
        {"problem_id": "sum_two", "student_program": "print('\x00')"},
    ],
)
def test_bad_execute_bodies_are_400(sim_client, sim_runtime, body):
    assert_json_error(sim_client.simulate_post(EXECUTE, json=body), 400)
    assert rows(sim_runtime) == []


@pytest.mark.parametrize("query", ["", "execution_id=", "execution_id=abc", "execution_id=1.5",
                                   "execution_id=-3", "execution_id=1&execution_id=2"])
def test_bad_execution_ids_are_400(sim_client, query):
    assert_json_error(sim_client.simulate_get(RESULT, query_string=query), 400)


def test_malformed_json_and_wrong_methods_are_4xx(sim_client):
    assert_json_error(sim_client.simulate_post(EXECUTE, body=b'{"problem_id": '), 400)
    assert_json_error(sim_client.simulate_get(EXECUTE), 405)
    assert_json_error(sim_client.simulate_post(LIST, json={}), 405)
    assert_json_error(sim_client.simulate_put(RESULT, json={}), 405)
