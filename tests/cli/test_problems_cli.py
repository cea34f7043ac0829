import json

import pytest

from orchestrator.simulators.problem_handler import SOLUTIONS

@pytest.fixture
def cli(make_cli, simulators, database_url):
    return make_cli({"DATABASE_URL": database_url, **simulators.env, "ORCHESTRATOR_UPSTREAM_RETRIES": "0"})


def test_problems_list_as_table_and_json(cli):
    table = cli("problems", "list")
    assert table.exit_code == 0
    for problem_id in SOLUTIONS:
        assert problem_id in table.output
    data = json.loads(cli("problems", "list", "--json").stdout)
    assert {p["problem_id"] for p in data} >= set(SOLUTIONS)


def test_problems_show_renders_description_and_code(cli):
    shown = cli("problems", "show", "sum_two")
    assert shown.exit_code == 0
    assert "task description" in shown.output and "template code" in shown.output
    data = json.loads(cli("problems", "show", "sum_two", "--json").stdout)
    assert data["problem_id"] == "sum_two" and "template_code" in data


def test_problems_show_unknown_and_upstream_down_fail_plainly(cli, simulators):
    unknown = cli("problems", "show", "no-such-problem")
    assert unknown.exit_code == 1 and "error:" in unknown.output
    simulators.problems.stop()
    down = cli("problems", "list")
    assert down.exit_code == 5 and "cannot be reached" in down.output


def test_executions_list_filters(cli, sim_client):
    for student, problem in [("ann", "sum_two"), ("ann", "max_list"), ("bob", "sum_two")]:
        assert sim_client.simulate_post("/problems/execute_program/", json={
            "problem_id": problem, "student_program": SOLUTIONS[problem], "student_id": student,
        }).status_code == 200
    everything = json.loads(cli("executions", "list", "--json").stdout)
    assert len(everything) == 3
    anns = json.loads(cli("executions", "list", "--student", "ann", "--json").stdout)
    assert {e["problem_id"] for e in anns} == {"sum_two", "max_list"}
    ann_sum = json.loads(cli("executions", "list", "--student", "ann", "--problem", "sum_two", "--json").stdout)
    assert len(ann_sum) == 1 and ann_sum[0]["student_program"] == SOLUTIONS["sum_two"]
    table = cli("executions", "list", "--problem", "sum_two")
    assert table.exit_code == 0 and "bob" in table.output and "ann" in table.output
