"""Forgetting a student leaves no trace; pruning anonymises old records."""

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel

from api.test_hints import ask, poll_until_done, reflect
from conftest import INSTRUCTORS_YAML
from orchestrator.simulators.problem_handler import SOLUTIONS

SECRET_ID = "forget-me-7731"
EMAIL = "forget.me.7731@course.example"


@pytest.fixture
def stack_env(tmp_path, mail):
    path = tmp_path / "instructors.yaml"
    path.write_text(INSTRUCTORS_YAML)
    return {"ORCHESTRATOR_INSTRUCTOR_CONFIG": str(path), **mail.env}


def everything_as_text(runtime) -> str:
    chunks = []
    with runtime.db.engine.connect() as connection:
        for table in SQLModel.metadata.sorted_tables:
            for row in connection.execute(sa.select(table)):
                chunks.append(json.dumps([str(v) for v in row]))
    return "\n".join(chunks)


def use_the_service(client, student):
    request_id = ask(client, student=student, hint_type="debug").json["request_id"]
    reflect(client, request_id)
    poll_until_done(client, request_id)
    client.simulate_post("/ai_hint/save_hint_rating/", json={"request_id": request_id, "is_hint_helpful": False})
    client.simulate_post("/instructor_feedback/add_request/", json={
        "request_id": request_id, "student_email": EMAIL if student == SECRET_ID else None, "student_notes": "n"})
    client.simulate_post("/problems/execute_program/", json={
        "problem_id": "sum_two", "student_program": SOLUTIONS["sum_two"], "student_id": student})


def test_forget_leaves_no_trace_in_any_table_or_export(stack, make_cli, base_env, tmp_path):
    use_the_service(stack.client, SECRET_ID)
    use_the_service(stack.client, "keep-me")
    cli = make_cli({**base_env, "ORCHESTRATOR_INSTRUCTOR_CONFIG": str(tmp_path / "instructors.yaml")})
    assert cli("quota", "grant", SECRET_ID, "sum_two", "--type", "plan").exit_code == 0
    assert SECRET_ID in everything_as_text(stack.runtime)

    declined = cli("students", "forget", SECRET_ID, input="n\n")
    assert declined.exit_code == 1 and SECRET_ID in everything_as_text(stack.runtime)
    stack.stop_dispatcher()
    result = cli("students", "forget", SECRET_ID, "--yes", "--json")
    assert result.exit_code == 0, result.output
    removed = json.loads(result.stdout)["removed"]
    assert removed["hint_request"] == 1 and removed["instructor_feedback_request"] == 1
    assert removed["program_execution"] == 1 and removed["quota_grant"] == 1 and removed["outbox_message"] >= 2

    text = everything_as_text(stack.runtime)
    assert SECRET_ID not in text and EMAIL not in text
    assert "keep-me" in text
    out = tmp_path / "export"
    assert cli("export", "--out", str(out)).exit_code == 0
    exported = "".join(p.read_text() for p in out.iterdir())
    assert SECRET_ID not in exported and EMAIL not in exported and "keep-me" in exported
    again = cli("students", "forget", SECRET_ID, "--json")
    assert again.exit_code == 0 and not any(json.loads(again.stdout)["removed"].values())


def test_prune_anonymises_old_records_only(stack, make_cli, base_env):
    from orchestrator.store.models import HintRequest, InstructorFeedbackRequest

    use_the_service(stack.client, SECRET_ID)
    with stack.runtime.db.scope(immediate=True) as session:
        for model in (HintRequest, InstructorFeedbackRequest):
            for row in session.exec(sa.select(model)).scalars():
                row.created_at -= timedelta(days=400)
                session.add(row)
    use_the_service(stack.client, "recent")
    cli = make_cli({**base_env, "ORCHESTRATOR_RETENTION_DAYS": "365"})
    result = cli("prune", "--yes", "--json")
    assert result.exit_code == 0, result.output
    changed = json.loads(result.stdout)["changed"]
    assert changed["hint_request"] == 1 and changed["instructor_feedback_request"] == 1
    with stack.runtime.db.scope() as session:
        old = session.exec(sa.select(HintRequest).where(HintRequest.student_id.startswith("anon-"))).scalars().all()
        feedback = session.exec(sa.select(InstructorFeedbackRequest)
                                .where(InstructorFeedbackRequest.student_id.startswith("anon-"))).scalars().all()
    assert len(old) == 1 and feedback[0].student_email is None
    text = everything_as_text(stack.runtime)
    assert "recent" in text
    # The execution was recent (not backdated), so it keeps its id; the old rows do not.
    assert json.loads(cli("prune", "--older-than", "365", "--json").stdout)["changed"]["hint_request"] == 0
    assert make_cli(base_env)("prune").exit_code == 2
