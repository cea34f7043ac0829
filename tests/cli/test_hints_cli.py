import json

import pytest

from api.test_hints import ask, poll_until_done, reflect

@pytest.fixture
def cli(make_cli, base_env, simulators):
    return make_cli({**base_env, **simulators.env})


def test_quota_show_matches_the_api(cli, stack):
    ask(stack.client, student="ann", hint_type="debug")
    data = json.loads(cli("quota", "show", "ann", "sum_two", "--json").stdout)
    api = stack.client.simulate_get("/ai_hint/quota_left/", params={"student_id": "ann", "problem_id": "sum_two"}).json
    assert data == api and data["used"]["debug"] == 1
    table = cli("quota", "show", "ann", "sum_two")
    assert table.exit_code == 0 and "debug" in table.output and "unlimited" in table.output


def test_quota_profiles_prints_patterns_and_validates(cli, tmp_path):
    d = tmp_path / "profiles"
    d.mkdir()
    (d / "default.yaml").write_text("default: {plan: 2}\nproblems:\n  'exam_*': {overall: 1}\n")
    result = cli("quota", "profiles", "--json", "--problem", "exam_3", extra={"ORCHESTRATOR_QUOTA_PROFILES": str(d)})
    data = json.loads(result.stdout)
    assert [p["pattern"] for p in data["profiles"]] == ["(default)", "exam_*"]
    assert data["problem"]["overall"] == 1 and data["problem"]["plan"] == 2
    (d / "default.yaml").write_text("default: {plan: lots}\n")
    bad = cli("quota", "profiles", extra={"ORCHESTRATOR_QUOTA_PROFILES": str(d)})
    assert bad.exit_code == 2 and "default.plan" in bad.output


def test_hints_list_and_show(cli, stack):
    first = ask(stack.client, student="ann", hint_type="debug").json["request_id"]
    reflect(stack.client, first)
    poll_until_done(stack.client, first)
    ask(stack.client, student="bob", problem="max_list")
    listed = json.loads(cli("hints", "list", "--json").stdout)
    assert len(listed) == 2 and "student_program" not in listed[0]
    assert [h["id"] for h in json.loads(cli("hints", "list", "--student", "ann", "--json").stdout)] == [first]
    assert [h["student_id"] for h in json.loads(cli("hints", "list", "--status", "succeeded", "--json").stdout)] == ["ann"]
    assert cli("hints", "list", "--status", "bogus").exit_code == 2
    shown = json.loads(cli("hints", "show", str(first), "--json").stdout)
    assert shown["status"] == "succeeded" and [d["status"] for d in shown["deliveries"]] == ["delivered", "delivered"]
    text = cli("hints", "show", str(first))
    assert text.exit_code == 0 and "student program" in text.output and "delivery history" in text.output
    assert cli("hints", "show", "12345").exit_code == 1


@pytest.mark.parametrize("stack_env", [{"ORCHESTRATOR_DELIVERY_MAX_ATTEMPTS": "2"}])
def test_outbox_shows_failures_and_retry_requeues_them(stack_env, cli, stack):
    stack.simulators.set_faults("hints", error_rate=1.0)
    request_id = ask(stack.client).json["request_id"]
    reflect(stack.client, request_id)
    assert poll_until_done(stack.client, request_id).status_code == 500
    data = json.loads(cli("outbox", "--json").stdout)
    assert data["counts"]["failed"] == 1 and data["counts"]["cancelled"] == 1
    failed = [m for m in data["messages"] if m["status"] == "failed"][0]
    assert cli("outbox").exit_code == 0
    stack.stop_dispatcher()
    retried = cli("outbox", "retry", str(failed["id"]))
    assert retried.exit_code == 0 and "queued again" in retried.output
    counts = json.loads(cli("outbox", "--json").stdout)["counts"]
    assert counts["pending"] == 2 and counts["failed"] == 0
    # The hint request, failed because delivery gave up, is reopened and now succeeds.
    stack.simulators.set_faults("hints", error_rate=0.0)
    stack.start_dispatcher()
    assert poll_until_done(stack.client, request_id).status_code == 200
    again = cli("outbox", "retry", str(failed["id"]))
    assert again.exit_code == 1 and "only failed or cancelled" in again.output
    assert json.loads(cli("outbox", "--json").stdout)["counts"]["delivered"] == 2
    assert cli("outbox", "retry", "999999").exit_code == 1
