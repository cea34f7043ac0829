import json

import pytest

from api.test_hints import ask, quota

ADMIN = "operator-token-0123456789"


@pytest.fixture
def stack_env():
    return {"ORCHESTRATOR_ADMIN_TOKEN": ADMIN}


def grant(client, token=ADMIN, **body):
    payload = {"student_id": "stu", "problem_id": "sum_two", "hint_type": "plan", "count": 2, **body}
    return client.simulate_post("/admin/quota_grant/", json=payload, headers={"Authorization": f"Bearer {token}"})


def test_a_grant_raises_the_limit_and_what_is_left(stack):
    client = stack.client
    assert ask(client, hint_type="plan").status_code == 200
    assert ask(client, hint_type="plan").status_code == 429
    granted = grant(client, reason="office hours")
    assert granted.status_code == 200
    assert granted.json["limits"]["plan"] == 3 and granted.json["left"]["plan"] == 2
    assert granted.json["limits"]["overall"] is None  # unlimited stays unlimited
    assert quota(client)["left"]["plan"] == 2
    assert ask(client, hint_type="plan").status_code == 200
    assert ask(client, hint_type="plan").status_code == 200
    assert ask(client, hint_type="plan").status_code == 429
    assert quota(client, student="other")["limits"]["plan"] == 1  # only this student


def test_grants_need_the_operator_token_and_valid_input(stack):
    assert grant(stack.client, token="wrong").status_code == 401
    for bad in ({"hint_type": "explain"}, {"count": 0}, {"count": "2"}, {"count": 1000}):
        assert grant(stack.client, **bad).status_code == 400
    assert quota(stack.client)["limits"]["plan"] == 1


def test_quota_grant_from_the_cli_raises_overall_when_it_is_limited(make_cli, base_env, tmp_path, stack):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "default.yaml").write_text("default: {overall: 2, plan: 1, debug: 3, optimize: 1}\n")
    cli = make_cli({**base_env, "ORCHESTRATOR_QUOTA_PROFILES": str(profiles)})
    result = cli("quota", "grant", "stu", "sum_two", "--type", "debug", "--count", "2", "--reason", "exam", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["limits"] == {"overall": 4, "plan": 1, "debug": 5, "optimize": 1}
    assert cli("quota", "grant", "stu", "sum_two", "--type", "explain").exit_code == 2
