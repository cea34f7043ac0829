"""The Problem Handler simulator over real HTTP: catalog, execution, errors."""

from __future__ import annotations

import os
import sys
import time

import pytest
import requests

from orchestrator.simulators.problem_handler import SAMPLE_PROBLEMS, SOLUTIONS

SAMPLE_IDS = [p.problem_id for p in SAMPLE_PROBLEMS]


def catalog(server, **params):
    return requests.get(f"{server.url}/query/programming_problems/", params=params, timeout=5)


# -- catalog ---------------------------------------------------------------------


def test_list_is_an_array_of_id_and_name(problems):
    response = catalog(problems)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body, list)
    assert [item["problem_id"] for item in body] == SAMPLE_IDS
    for item in body:
        assert set(item) == {"problem_id", "name"}
        assert isinstance(item["problem_id"], str) and isinstance(item["name"], str) and item["name"]


def test_one_problem_has_description_and_template(problems):
    body = catalog(problems, problem_id="sum_two").json()
    assert set(body) == {"problem_id", "name", "task_description", "template_code"}
    assert body["problem_id"] == "sum_two"
    assert body["name"] == "Sum of Two Numbers"
    assert body["task_description"].startswith("# ")
    assert "input()" in body["template_code"] and "print(" in body["template_code"]


def test_include_description_is_accepted_and_ignored(problems):
    plain = catalog(problems, problem_id="fizzbuzz")
    with_flag = catalog(problems, problem_id="fizzbuzz", include_description="true")
    assert with_flag.status_code == 200
    assert with_flag.json() == plain.json()
    queries = requests.get(f"{problems.url}/_sim/stats", timeout=5).json()["received"]["problem_queries"]
    assert queries[-1] == {"problem_id": "fizzbuzz", "include_description": "true"}


def test_missing_description_file_is_reported_as_task_description_error(problems):
    body = catalog(problems, problem_id="max_list").json()
    assert "task_description" not in body
    assert "max_list" in body["task_description_error"]
    assert body["template_code"]


def test_unknown_problem_is_404_json(problems):
    response = catalog(problems, problem_id="no_such_problem")
    assert response.status_code == 404
    assert response.json() == {"error": "unknown problem: no_such_problem"}


def test_wrong_method_is_405_json_with_allow(problems):
    response = requests.delete(f"{problems.url}/query/programming_problems/", timeout=5)
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]
    assert "error" in response.json()


# -- execution -------------------------------------------------------------------


@pytest.mark.parametrize("problem_id", SAMPLE_IDS)
def test_known_solution_is_correct(run_program, problem_id):
    response = run_program(problem_id, SOLUTIONS[problem_id])
    assert response.status_code == 200
    body = response.json()
    assert body["job_finished"] is True
    assert body["correctness"] is True
    assert body["buggy_output"] is None
    assert isinstance(body["elapsed_time"], float) and body["elapsed_time"] > 0
    assert "error" not in body


@pytest.mark.parametrize("problem", SAMPLE_PROBLEMS, ids=SAMPLE_IDS)
def test_template_runs_but_is_not_yet_correct(run_program, problem):
    body = run_program(problem.problem_id, problem.template_code).json()
    assert body["job_finished"] is True
    assert body["correctness"] is False
    assert "crashed" not in body["buggy_output"]


def test_wrong_program_names_the_failing_case(run_program):
    body = run_program("reverse_string", "print(input())\n").json()
    assert body["correctness"] is False
    buggy = body["buggy_output"]
    assert "Test case 1" in buggy
    assert "'hello\\n'" in buggy  # the input
    assert "'olleh\\n'" in buggy  # what was expected
    assert "Your output: 'hello\\n'" in buggy  # what the program printed


def test_program_passing_some_cases_reports_the_first_failure(run_program):
    # Correct except for negative numbers: the first two cases pass, the third fails.
    program = "nums = [int(x) for x in input().split()]\nprint(max(nums) if min(nums) >= 0 else 0)\n"
    body = run_program("max_list", program).json()
    assert body["correctness"] is False
    assert "Test case 3" in body["buggy_output"]
    assert "'-4 -2 -9\\n'" in body["buggy_output"]


def test_runtime_crash_is_a_failing_case_not_an_error(run_program):
    body = run_program("sum_two", "a, b = map(int, input().split())\nprint(a // 0)\n").json()
    assert body["job_finished"] is True
    assert body["correctness"] is False
    assert "ZeroDivisionError" in body["buggy_output"]
    assert "error" not in body


def test_trailing_whitespace_is_ignored(run_program):
    body = run_program("sum_two", "a, b = map(int, input().split())\nprint(a + b, ' ')\nprint()\n").json()
    assert body["correctness"] is True


def test_syntax_error_is_an_execution_error(run_program):
    body = run_program("sum_two", "def broken(:\n    pass\n").json()
    assert body["job_finished"] is True
    assert body["error"].startswith("SyntaxError:")
    assert "line 1" in body["error"]
    assert "correctness" not in body


def test_indentation_error_is_an_execution_error(run_program):
    body = run_program("sum_two", "if True:\nprint(1)\n").json()
    assert body["error"].startswith("IndentationError:")


def test_infinite_loop_is_500_execution_took_too_long(start_problem_handler, execute_and_poll):
    server = start_problem_handler(case_timeout=0.3)
    started = time.monotonic()
    response = execute_and_poll(server.url, "sum_two", "while True:\n    pass\n")
    assert response.status_code == 500
    assert response.json() == {"error": "execution took too long"}
    assert time.monotonic() - started >= 0.3


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")
def test_stopping_the_simulator_kills_running_programs(start_problem_handler, tmp_path):
    server = start_problem_handler(case_timeout=60)
    pid_file = tmp_path / "pid"
    program = f"import os\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\nwhile True:\n    pass\n"
    requests.post(
        f"{server.url}/execution/execute_program/",
        json={"problem_id": "sum_two", "student_program": program},
        timeout=5,
    ).raise_for_status()
    deadline = time.monotonic() + 10
    while not (pid_file.exists() and pid_file.read_text()):
        assert time.monotonic() < deadline, "the program never started"
        time.sleep(0.02)
    pid = int(pid_file.read_text())
    server.stop()
    deadline = time.monotonic() + 5
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "the student program outlived the simulator"
        time.sleep(0.02)


def test_empty_program_is_accepted_and_judged(run_program):
    body = run_program("sum_two", "").json()
    assert body["correctness"] is False
    assert "Your output: ''" in body["buggy_output"]


def test_result_hidden_until_execution_delay(start_problem_handler, execute_and_poll):
    server = start_problem_handler(execution_delay=0.6)
    started = time.monotonic()
    execution_id = requests.post(
        f"{server.url}/execution/execute_program/",
        json={"problem_id": "sum_two", "student_program": SOLUTIONS["sum_two"]},
        timeout=5,
    ).json()["execution_id"]
    first = requests.get(
        f"{server.url}/execution/get_execution_result/", params={"execution_id": execution_id}, timeout=5
    )
    assert first.json() == {"job_finished": False, "execution_id": execution_id}
    while True:
        body = requests.get(
            f"{server.url}/execution/get_execution_result/", params={"execution_id": execution_id}, timeout=5
        ).json()
        if body["job_finished"]:
            break
        assert time.monotonic() - started < 10
        time.sleep(0.05)
    assert time.monotonic() - started >= 0.6
    assert body["correctness"] is True


def test_execution_ids_are_increasing_integers(problems):
    ids = [
        requests.post(
            f"{problems.url}/execution/execute_program/",
            json={"problem_id": "sum_two", "student_program": "print(5)"},
            timeout=5,
        ).json()["execution_id"]
        for _ in range(3)
    ]
    assert all(type(i) is int for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == 3


def test_received_programs_and_unexpected_fields_are_recorded(problems):
    requests.post(
        f"{problems.url}/execution/execute_program/",
        json={"problem_id": "fizzbuzz", "student_program": "print(1)", "student_id": "s1"},
        timeout=5,
    ).raise_for_status()
    stats = requests.get(f"{problems.url}/_sim/stats", timeout=5).json()
    assert stats["received"]["executions"][-1]["student_program"] == "print(1)"
    assert stats["received"]["executions"][-1]["problem_id"] == "fizzbuzz"
    assert stats["received"]["unexpected_fields"] == {"student_id": 1}
    assert stats["executions"]["submitted"] == 1


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"student_program": "print(1)"}, "missing field: problem_id"),
        ({"problem_id": "sum_two"}, "missing field: student_program"),
        ({"problem_id": 3, "student_program": "x"}, "problem_id must be a string"),
        ({"problem_id": "sum_two", "student_program": None}, "student_program must be a string"),
        (["sum_two", "print(1)"], "must be a JSON object"),
    ],
)
def test_execute_rejects_malformed_bodies_with_400(problems, body, fragment):
    response = requests.post(f"{problems.url}/execution/execute_program/", json=body, timeout=5)
    assert response.status_code == 400
    assert fragment in response.json()["error"]


def test_execute_rejects_non_json_with_400(problems):
    response = requests.post(
        f"{problems.url}/execution/execute_program/",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert response.status_code == 400
    assert response.json() == {"error": "request body is not valid JSON"}


def test_execute_unknown_problem_is_404(problems):
    response = requests.post(
        f"{problems.url}/execution/execute_program/",
        json={"problem_id": "nope", "student_program": "print(1)"},
        timeout=5,
    )
    assert response.status_code == 404
    assert response.json() == {"error": "unknown problem: nope"}


def test_unknown_execution_id_is_404(problems):
    response = requests.get(
        f"{problems.url}/execution/get_execution_result/", params={"execution_id": "999"}, timeout=5
    )
    assert response.status_code == 404
    assert response.json() == {"error": "unknown execution: 999"}


@pytest.mark.parametrize("query", ["?execution_id=abc", "?execution_id=1.5", "?execution_id=", ""])
def test_bad_execution_id_is_400(problems, query):
    response = requests.get(f"{problems.url}/execution/get_execution_result/{query}", timeout=5)
    assert response.status_code == 400
    assert "execution_id" in response.json()["error"]
