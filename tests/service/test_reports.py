"""The report on a seeded database matches figures computed here by hand."""

import json
from datetime import datetime, timedelta, timezone

import pytest

from orchestrator.store.models import HintRequest, InstructorFeedbackRequest, ProgramExecution, QuotaGrant

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)
ADMIN = "operator-token-0123456789"


def hint(student, problem, hint_type, status, *, minute, took=None, helpful=None, cancelled=False):
    created = T0 + timedelta(minutes=minute)
    return HintRequest(student_id=student, problem_id=problem, hint_type=hint_type, student_program="x",
                       status=status, created_at=created, is_hint_helpful=helpful, is_cancelled=cancelled,
                       returned_time=created + timedelta(seconds=took) if took is not None else None,
                       job_finished_successfully=status == "succeeded" if status != "pending" else None)


@pytest.fixture
def seeded(runtime):
    hints = [
        hint("ann", "loops", "plan", "succeeded", minute=0, took=10, helpful=True),
        hint("ann", "loops", "debug", "succeeded", minute=5, took=20, helpful=False),
        hint("bob", "loops", "debug", "succeeded", minute=6, took=40, helpful=True),
        hint("bob", "loops", "debug", "failed", minute=7),
        hint("cid", "loops", "debug", "succeeded", minute=8, took=30, cancelled=True),
        hint("cid", "recursion", "optimize", "pending", minute=9),
        hint("old", "loops", "plan", "succeeded", minute=-60 * 24 * 10, took=99, helpful=False),
    ]
    with runtime.db.scope() as session:
        session.add_all(hints)
    ann_plan, ann_debug, bob_debug = hints[0], hints[1], hints[2]
    with runtime.db.scope() as session:
        session.add_all([
            # ann runs correctly 5 min after her plan hint (followed), bob 50 min after his (not within 30).
            ProgramExecution(student_id="ann", problem_id="loops", student_program="x", correctness=True,
                             is_success=True, created_at=ann_plan.returned_time + timedelta(minutes=5)),
            ProgramExecution(student_id="bob", problem_id="loops", student_program="x", correctness=True,
                             is_success=True, created_at=bob_debug.returned_time + timedelta(minutes=50)),
            ProgramExecution(student_id="ann", problem_id="recursion", student_program="x", correctness=True,
                             is_success=True, created_at=ann_debug.returned_time + timedelta(minutes=1)),
            InstructorFeedbackRequest(hint_request_id=ann_debug.id, student_id="ann", problem_id="loops",
                                      state="answered", created_at=T0 + timedelta(minutes=10),
                                      answered_at=T0 + timedelta(minutes=10, seconds=600), is_feedback_helpful=True,
                                      instructor_id="1", instructor_feedback="f"),
            InstructorFeedbackRequest(hint_request_id=bob_debug.id, student_id="bob", problem_id="loops",
                                      state="answered", created_at=T0 + timedelta(minutes=11),
                                      answered_at=T0 + timedelta(minutes=11, seconds=1200), is_feedback_helpful=False,
                                      instructor_id="2", instructor_feedback="g"),
            InstructorFeedbackRequest(hint_request_id=hints[3].id, student_id="bob", problem_id="loops",
                                      state="waiting", created_at=T0 + timedelta(minutes=12)),
            QuotaGrant(student_id="bob", problem_id="loops", hint_type="debug", count=2, created_at=T0),
        ])
    return hints


def test_the_report_matches_hand_computed_figures(runtime, seeded, make_cli, base_env):
    cli = make_cli(base_env)
    data = json.loads(cli("report", "--json", "--since", T0.date().isoformat()).stdout)
    # Six requests since T0 ("old" is ten days earlier), from three students.
    assert (data["hint_requests"], data["students_served"]) == (6, 3)
    debug = data["by_type"]["debug"]
    assert (debug["requests"], debug["succeeded"], debug["failed"], debug["cancelled"]) == (4, 3, 1, 1)
    assert (debug["rated"], debug["helpful"], debug["helpfulness_rate"]) == (2, 1, 0.5)
    # Succeeded debug hints took 20, 40 and 30 s: median 30, p90 (nearest rank) 40.
    assert debug["time_to_hint_seconds"] == {"median": 30.0, "p90": 40.0}
    # bob's correct run came 50 min later (not within 30); ann's was on another problem.
    assert debug["followed_by_correct_run"] == 0
    plan = data["by_type"]["plan"]
    assert (plan["requests"], plan["helpfulness_rate"], plan["followed_by_correct_run"]) == (1, 1.0, 1)
    assert data["by_type"]["optimize"]["pending"] == 1
    assert data["time_to_hint_seconds"] == {"median": 20.0, "p90": 40.0}  # 10, 20, 30, 40
    assert (data["escalations"], data["answered_escalations"]) == (3, 2)
    assert data["escalation_rate"] == round(3 / 6, 4)
    assert data["instructor_answer_seconds"] == {"median": 600.0, "p90": 1200.0}
    assert data["feedback_helpfulness_rate"] == 0.5
    assert data["quota_grants"] == {"debug": 2}
    # With 60 minutes, bob's run follows his hint.
    wide = json.loads(cli("report", "--json", "--since", T0.date().isoformat(), "--within", "60").stdout)
    assert wide["by_type"]["debug"]["followed_by_correct_run"] == 1
    # All time, and one problem only.
    assert json.loads(cli("report", "--json").stdout)["hint_requests"] == 7
    assert json.loads(cli("report", "--json", "--problem", "recursion").stdout)["hint_requests"] == 1
    table = cli("report", "--since", T0.date().isoformat())
    assert table.exit_code == 0 and "AI hints by type" in table.stdout
    assert cli("report", "--since", "last tuesday").exit_code == 2


def test_the_same_figures_over_http_with_the_operator_token(make_settings, seeded):
    from falcon import testing

    from orchestrator.api.app import create_app
    from orchestrator.runtime import build_runtime

    runtime = build_runtime(make_settings(ORCHESTRATOR_ADMIN_TOKEN=ADMIN))
    client = testing.TestClient(create_app(runtime.settings, runtime))
    assert client.simulate_get("/admin/report").status_code == 401
    result = client.simulate_get("/admin/report", params={"since": T0.date().isoformat()},
                                 headers={"Authorization": f"Bearer {ADMIN}"})
    assert result.status_code == 200 and result.json["hint_requests"] == 6
    assert client.simulate_get("/admin/report", params={"within": "0"},
                               headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 400
    runtime.close()
