"""The instructor's terminal in local mode (on the server's database)."""

import json

import pytest

from api.test_feedback import escalate


@pytest.fixture
def stack_env(instructors_file):
    return {"ORCHESTRATOR_INSTRUCTOR_CONFIG": str(instructors_file)}


@pytest.fixture
def cli(make_cli, base_env, simulators, instructors_file):
    return make_cli({**base_env, **simulators.env, "ORCHESTRATOR_INSTRUCTOR_CONFIG": str(instructors_file)})


def test_instructors_add_list_revoke(cli, stack):
    added = cli("instructors", "add", "1", "--label", "laptop")
    assert added.exit_code == 0
    token = added.stdout.strip()
    assert token.startswith("orch_") and len(token) > 40
    unknown = cli("instructors", "add", "99")
    assert unknown.exit_code == 1 and "No instructor with id '99'" in unknown.output
    listed = json.loads(cli("instructors", "list", "--json").stdout)
    assert [i["id"] for i in listed["instructors"]] == ["1", "2"]
    assert len(listed["tokens"]) == 1 and token.startswith(listed["tokens"][0]["prefix"])
    assert "token_hash" not in listed["tokens"][0] and token not in cli("instructors", "list").stdout
    # The token works against the API, until it is revoked.
    headers = {"Authorization": f"Bearer {token}"}
    assert stack.client.simulate_get("/instructor_feedback/queue/", headers=headers).status_code == 200
    assert cli("instructors", "revoke", "1", "--token", listed["tokens"][0]["prefix"]).exit_code == 0
    assert stack.client.simulate_get("/instructor_feedback/queue/", headers=headers).status_code == 401
    assert cli("instructors", "revoke", "1").exit_code == 1


def test_the_escalation_flow_from_the_terminal(cli, stack, tmp_path):
    _, first = escalate(stack.client, student="ann")
    _, second = escalate(stack.client, student="bob")
    queue = json.loads(cli("feedback", "queue", "--json").stdout)
    assert (queue["waiting"], queue["assigned"]) == (2, 0)
    table = cli("feedback", "queue")
    assert table.exit_code == 0 and str(first) in table.stdout and "waiting" in table.stdout

    shown = cli("feedback", "--instructor", "1", "next")
    assert shown.exit_code == 0
    for fragment in (str(first), "Sum of Two Numbers", "student program", "reflection", "AI hint", "I am stuck"):
        assert fragment in shown.stdout, fragment
    assert json.loads(cli("feedback", "--instructor", "1", "next", "--json").stdout)["instructor_request_id"] == first

    answer = tmp_path / "answer.md"
    answer.write_text("Read the input with `input().split()`.\n")
    declined = cli("feedback", "--instructor", "1", "answer", str(first), "--file", str(answer), input="n\n")
    assert declined.exit_code == 1 and "not sent" in declined.output
    assert json.loads(cli("feedback", "show", str(first), "--json").stdout)["state"] == "assigned"
    sent = cli("feedback", "--instructor", "1", "answer", str(first), "--file", str(answer), input="y\n")
    assert sent.exit_code == 0 and "Read the input" in sent.stdout
    detail = json.loads(cli("feedback", "show", str(first), "--json").stdout)
    assert detail["state"] == "answered" and detail["instructor_feedback"] == answer.read_text()

    assert json.loads(cli("feedback", "--instructor", "2", "next", "--json").stdout)["instructor_request_id"] == second
    not_mine = cli("feedback", "--instructor", "1", "release", str(second))
    assert not_mine.exit_code == 1 and "Only the instructor holding" in not_mine.output
    assert cli("feedback", "--instructor", "2", "release", str(second)).exit_code == 0
    from_stdin = cli("feedback", "--instructor", "1", "answer", str(second), "-f", "-", "--yes",
                     input="Answer from stdin\n")
    assert from_stdin.exit_code == 0
    assert json.loads(cli("feedback", "queue", "--json").stdout)["answered"] == 2
    assert json.loads(cli("feedback", "--instructor", "1", "next", "--json").stdout) == {}


def test_student_text_is_shown_literally_not_as_markup(cli, stack):
    _, feedback_id = escalate(stack.client, notes="[/] [bold]not bold[/bold] [red]")
    shown = cli("feedback", "--instructor", "1", "next")
    assert shown.exit_code == 0, shown.output
    assert "[/] [bold]not bold[/bold] [red]" in shown.stdout


def test_terminal_errors_are_plain(cli, stack):
    _, first = escalate(stack.client)
    assert cli("feedback", "next").exit_code == 2  # who are you?
    assert cli("feedback", "--instructor", "nobody", "next").exit_code == 2
    missing = cli("feedback", "show", "424242")
    assert missing.exit_code == 1 and "No instructor feedback request" in missing.output
    empty = cli("feedback", "--instructor", "1", "answer", str(first), "--message", "  ", "--yes")
    assert empty.exit_code == 2
    assert cli("feedback", "show", str(2**70)).exit_code == 2
    assert cli("hints", "show", str(2**70)).exit_code == 2
