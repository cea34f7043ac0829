import sqlalchemy as sa
from sqlmodel import select

from orchestrator.store import schema
from orchestrator.store.db import Database, make_engine
from orchestrator.store.models import JS_SAFE_LIMIT, HintRequest, InstructorFeedbackRequest


def test_models_and_migrations_agree(empty_database_url):
    engine = make_engine(empty_database_url)
    status = schema.upgrade(engine)
    assert status.is_current and status.current == schema.head_revision()
    assert schema.drift(engine) == []
    engine.dispose()


def test_upgrade_twice_is_a_no_op_and_downgrade_round_trips(empty_database_url):
    engine = make_engine(empty_database_url)
    schema.upgrade(engine)
    tables = set(sa.inspect(engine).get_table_names())
    assert {"hint_request", "program_execution", "instructor_feedback_request", "alembic_version"} <= tables
    assert schema.upgrade(engine).is_current
    assert schema.downgrade(engine, "base").current is None
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    assert schema.upgrade(engine).is_current
    engine.dispose()


def test_public_ids_are_random_large_and_js_safe(database_url):
    db = Database(make_engine(database_url))
    with db.scope() as session:
        rows = [HintRequest(student_id="s", problem_id="p", hint_type="plan", student_program="")
                for _ in range(50)]
        session.add_all(rows)
    ids = [row.id for row in rows]
    assert len(set(ids)) == 50
    assert all(2**32 <= i < JS_SAFE_LIMIT for i in ids)
    assert ids != sorted(ids)
    db.dispose()


def test_one_escalation_per_hint_request_is_enforced_by_the_schema(database_url):
    db = Database(make_engine(database_url))
    with db.scope() as session:
        hint = HintRequest(student_id="s", problem_id="p", hint_type="debug", student_program="x")
        session.add(hint)
    with db.scope() as session:
        session.add(InstructorFeedbackRequest(hint_request_id=hint.id, student_id="s", problem_id="p"))
    try:
        with db.scope() as session:
            session.add(InstructorFeedbackRequest(hint_request_id=hint.id, student_id="s", problem_id="p"))
    except sa.exc.IntegrityError:
        pass
    else:
        raise AssertionError("a second escalation of the same hint request was stored")
    with db.scope() as session:
        assert len(session.exec(select(InstructorFeedbackRequest)).all()) == 1
    db.dispose()
