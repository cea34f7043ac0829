"""Privacy: forget a student entirely, and anonymise records past the retention period."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import and_, delete, func, or_, select, update
from sqlmodel import Session

from orchestrator.store.models import (
    HintRequest,
    InstructorFeedbackRequest,
    OutboxMessage,
    ProgramExecution,
    QuotaGrant,
)

_hints = HintRequest.__table__
_feedback = InstructorFeedbackRequest.__table__
_runs = ProgramExecution.__table__
_grants = QuotaGrant.__table__
_outbox = OutboxMessage.__table__


def _emails_of(session: Session, condition) -> set[str]:
    return {e for e in session.connection().execute(select(_feedback.c.student_email).where(condition)).scalars() if e}


def _email_messages_to(session: Session, addresses: set[str]) -> list[int]:
    if not addresses:
        return []
    rows = session.connection().execute(select(_outbox.c.id, _outbox.c.payload).where(_outbox.c.kind == "email"))
    return [row.id for row in rows if set((row.payload or {}).get("to", [])) & addresses]


def forget_counts(session: Session, *, student_id: str) -> dict[str, int]:
    """What `forget` would remove, per table."""
    connection = session.connection()
    hint_ids = select(_hints.c.id).where(_hints.c.student_id == student_id)

    def count(table, condition) -> int:
        return connection.execute(select(func.count()).select_from(table).where(condition)).scalar()

    emails = _emails_of(session, _feedback.c.student_id == student_id)
    return {
        "hint_request": count(_hints, _hints.c.student_id == student_id),
        "instructor_feedback_request": count(_feedback, _feedback.c.student_id == student_id),
        "program_execution": count(_runs, _runs.c.student_id == student_id),
        "quota_grant": count(_grants, _grants.c.student_id == student_id),
        "outbox_message": count(_outbox, _outbox.c.hint_request_id.in_(hint_ids))
        + len(_email_messages_to(session, emails)),
    }


def forget(session: Session, *, student_id: str) -> dict[str, int]:
    """Delete everything about a student: hint requests (with reflections, ratings, poll
    statistics), escalations and answers, executions, quota grants, and the outbox
    messages that carried them or mailed the student. Returns rows removed per table."""
    counts = forget_counts(session, student_id=student_id)
    connection = session.connection()
    emails = _emails_of(session, _feedback.c.student_id == student_id)
    mail_ids = _email_messages_to(session, emails)
    hint_ids = select(_hints.c.id).where(_hints.c.student_id == student_id)
    connection.execute(delete(_outbox).where(or_(_outbox.c.hint_request_id.in_(hint_ids), _outbox.c.id.in_(mail_ids))))
    connection.execute(delete(_feedback).where(or_(_feedback.c.student_id == student_id,
                                                   _feedback.c.hint_request_id.in_(hint_ids))))
    connection.execute(delete(_hints).where(_hints.c.student_id == student_id))
    connection.execute(delete(_runs).where(_runs.c.student_id == student_id))
    connection.execute(delete(_grants).where(_grants.c.student_id == student_id))
    return counts


def prune(session: Session, *, before: datetime) -> dict[str, int]:
    """Anonymise records created before ``before``: student ids become ``anon-…``
    pseudonyms (consistent within this run only, so they cannot be linked to later
    data), e-mail addresses are removed, finished outbox messages are deleted.
    Returns rows changed per table."""
    salt = secrets.token_bytes(16)
    connection = session.connection()
    changed: dict[str, int] = {}

    def pseudonym(student_id: str) -> str:
        return "anon-" + hashlib.blake2b(student_id.encode(), key=salt, digest_size=8).hexdigest()

    for name, table in (("hint_request", _hints), ("instructor_feedback_request", _feedback),
                        ("program_execution", _runs), ("quota_grant", _grants)):
        old = and_(table.c.created_at < before, table.c.student_id.is_not(None),
                   ~table.c.student_id.startswith("anon-"))
        students = set(connection.execute(select(table.c.student_id).where(old).distinct()).scalars())
        total = 0
        for student_id in students:
            values = {"student_id": pseudonym(student_id)}
            if table is _feedback:
                values["student_email"] = None
            total += connection.execute(update(table).where(and_(old, table.c.student_id == student_id))
                                        .values(**values)).rowcount
        changed[name] = total
    changed["outbox_message"] = connection.execute(
        delete(_outbox).where(and_(_outbox.c.created_at < before, _outbox.c.status != "pending"))).rowcount
    return changed
