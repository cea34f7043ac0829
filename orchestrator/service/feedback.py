"""Instructor escalations: the queue in which instructors answer students' requests.

States of an InstructorFeedbackRequest: ``waiting``, ``assigned`` (to one instructor
since ``assigned_at``), ``answered``. An assignment older than the configured timeout
counts as waiting again: the next instructor to fetch may take it over, and the
former holder's answer is then refused.

Race-freedom: :func:`fetch_next` claims with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL
(two instructors can never lock, hence never be given, the same row; calls of one
instructor are serialised with an advisory lock so they keep one assignment), and
runs in a ``BEGIN IMMEDIATE`` transaction on SQLite. Every change re-checks its
condition in the UPDATE itself.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from orchestrator.errors import ConflictError, NotFoundError, PermissionDeniedError
from orchestrator.service.instructor_config import InstructorConfig
from orchestrator.service.notifications import Notifier
from orchestrator.store.db import Database
from orchestrator.store.models import HintRequest, InstructorFeedbackRequest, utcnow

_feedback = InstructorFeedbackRequest.__table__
_hints = HintRequest.__table__

WAITING, ASSIGNED, ANSWERED = "waiting", "assigned", "answered"


def _not_found(instructor_request_id: int) -> NotFoundError:
    return NotFoundError(f"No instructor feedback request with id {instructor_request_id}",
                         detail={"instructor_request_id": instructor_request_id})


def _available(cutoff: datetime):
    """Waiting, or assigned so long ago that the assignment has timed out."""
    return or_(_feedback.c.state == WAITING,
               and_(_feedback.c.state == ASSIGNED, _feedback.c.assigned_at <= cutoff))


def _anything_for_statement():
    """Built once (instructor apps poll fetch_request): is anything available, or
    assigned to this instructor?"""
    mine = and_(_feedback.c.state == ASSIGNED, _feedback.c.instructor_id == bindparam("instructor_id"))
    return select(exists().where(or_(_available(bindparam("cutoff", type_=_feedback.c.assigned_at.type)), mine)))


_ANYTHING_FOR = _anything_for_statement()


def assignment_cutoff(config: InstructorConfig, now: datetime) -> datetime:
    return now - timedelta(seconds=config.timeout_seconds)


def effective_state(row, config: InstructorConfig, now: datetime | None = None) -> str:
    if row.state == ASSIGNED and row.assigned_at <= assignment_cutoff(config, now or utcnow()):
        return WAITING
    return row.state


def queue_counts(session: Session, config: InstructorConfig, now: datetime | None = None) -> dict[str, int]:
    cutoff = assignment_cutoff(config, now or utcnow())
    expired = and_(_feedback.c.state == ASSIGNED, _feedback.c.assigned_at <= cutoff)
    row = session.connection().execute(select(
        func.count().filter(or_(_feedback.c.state == WAITING, expired)),
        func.count().filter(and_(_feedback.c.state == ASSIGNED, _feedback.c.assigned_at > cutoff)),
        func.count().filter(_feedback.c.state == ANSWERED),
    )).one()
    return {"waiting": row[0] or 0, "assigned": row[1] or 0, "answered": row[2] or 0}


# ---------------------------------------------------------------------- students


def escalate(
    db: Database, notifier: Notifier, *, hint_request_id: int, student_email: str | None, student_notes: str | None
) -> int:
    """Queue a hint request for the instructors; returns the new feedback request's id.

    Raises:
        NotFoundError: unknown hint request.
        ConflictError: it was already escalated.
    """
    try:
        with db.scope(immediate=True) as session:
            hint = session.get(HintRequest, hint_request_id)
            if hint is None:
                raise NotFoundError(f"No hint request with id {hint_request_id}",
                                    detail={"request_id": hint_request_id})
            existing = session.connection().execute(
                select(_feedback.c.id).where(_feedback.c.hint_request_id == hint_request_id)).first()
            if existing is not None:
                raise _already_escalated(hint_request_id, existing[0])
            row = InstructorFeedbackRequest(
                hint_request_id=hint_request_id, student_id=hint.student_id, problem_id=hint.problem_id,
                student_email=student_email, student_notes=student_notes,
            )
            session.add(row)
            session.flush()
            counts = queue_counts(session, notifier.config)
            notifier.queue_changed(session, waiting=counts["waiting"], assigned=counts["assigned"])
            return row.id
    except IntegrityError:
        # Two escalations of one hint raced; the unique constraint let one through.
        raise _already_escalated(hint_request_id, None) from None


def _already_escalated(hint_request_id: int, existing: int | None) -> ConflictError:
    return ConflictError("This hint request was already sent to the instructors",
                         detail={"request_id": hint_request_id, "instructor_request_id": existing})


def query_feedback(db: Database, *, instructor_request_id: int) -> dict[str, Any]:
    with db.statement() as connection:
        row = connection.execute(
            select(_feedback.c.state, _feedback.c.instructor_feedback).where(_feedback.c.id == instructor_request_id)
        ).first()
    if row is None:
        raise _not_found(instructor_request_id)
    answered = row.state == ANSWERED
    return {"instructor_request_id": instructor_request_id, "job_finished": answered,
            "feedback": row.instructor_feedback if answered else None}


def list_answered(db: Database, *, student_id: str, problem_id: str) -> list[dict[str, Any]]:
    query = (
        select(_feedback.c.id, _feedback.c.hint_request_id, _feedback.c.instructor_feedback,
               _feedback.c.is_feedback_helpful, _feedback.c.created_at)
        .where(and_(_feedback.c.student_id == student_id, _feedback.c.problem_id == problem_id,
                    _feedback.c.state == ANSWERED))
        .order_by(_feedback.c.created_at, _feedback.c.id)
    )
    with db.scope() as session:
        rows = session.connection().execute(query).all()
    return [
        {"instructor_request_id": r.id, "ai_hint_request_id": r.hint_request_id,
         "instructor_feedback": r.instructor_feedback, "is_feedback_helpful": r.is_feedback_helpful,
         "created_at": r.created_at.isoformat()}
        for r in rows
    ]


def rate_feedback(db: Database, *, instructor_request_id: int, is_feedback_helpful: bool) -> None:
    with db.scope() as session:
        changed = session.connection().execute(
            update(_feedback).where(_feedback.c.id == instructor_request_id)
            .values(is_feedback_helpful=is_feedback_helpful, rated_at=utcnow())
        ).rowcount
    if not changed:
        raise _not_found(instructor_request_id)


# ---------------------------------------------------------------------- instructors


def fetch_next(db: Database, config: InstructorConfig, *, instructor_id: str) -> int | None:
    """The request this instructor should work on: theirs while the assignment lasts,
    else the oldest available one, now assigned to them. None when the queue is empty.

    Owns its transaction (the assignment must commit before anyone else looks).
    """
    instructor_id = str(instructor_id)
    now = utcnow()
    cutoff = assignment_cutoff(config, now)
    # Instructor apps poll this; when nothing is waiting and nothing is theirs, answer
    # from one read without taking locks. (A request queued a moment later is found
    # by the next poll.)
    with db.statement() as connection:
        anything = connection.execute(_ANYTHING_FOR, {"cutoff": cutoff, "instructor_id": instructor_id}).scalar()
    if not anything:
        return None
    with db.scope(immediate=True) as session:
        connection = session.connection()
        postgres = connection.dialect.name == "postgresql"
        if postgres:
            digest = hashlib.blake2b(f"instructor\x1f{instructor_id}".encode(), digest_size=8).digest()
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                               {"key": int.from_bytes(digest, "big", signed=True)})
        current = connection.execute(
            select(_feedback.c.id)
            .where(and_(_feedback.c.state == ASSIGNED, _feedback.c.instructor_id == instructor_id,
                        _feedback.c.assigned_at > cutoff))
            .order_by(_feedback.c.assigned_at).limit(1)
        ).first()
        if current is not None:
            return current[0]
        candidate = (
            select(_feedback.c.id).where(_available(cutoff))
            .order_by(_feedback.c.created_at, _feedback.c.id).limit(1)
        )
        if postgres:
            candidate = candidate.with_for_update(skip_locked=True)
        for _ in range(5):
            chosen = connection.execute(candidate).first()
            if chosen is None:
                return None
            # The condition is checked again as the row is written: if another
            # instructor's assignment committed in between, look for the next one.
            changed = connection.execute(
                update(_feedback).where(and_(_feedback.c.id == chosen[0], _available(cutoff)))
                .values(state=ASSIGNED, instructor_id=instructor_id, assigned_at=now)
            ).rowcount
            if changed:
                return chosen[0]
        return None


def save_answer(
    db: Database, config: InstructorConfig, notifier: Notifier, *, instructor_request_id: int,
    instructor_id: str, feedback: str,
) -> None:
    """Answer a request. Allowed when it is assigned to this instructor (even past the
    timeout, if nobody took it over) or waiting; saving the same answer again is a no-op.

    Raises:
        NotFoundError; ConflictError: assigned to (or answered by) someone else, or a
        different answer was already saved.
    """
    instructor_id = str(instructor_id)
    now = utcnow()
    cutoff = assignment_cutoff(config, now)
    with db.scope(immediate=True) as session:
        row = _locked(session, instructor_request_id)
        if row.state == ANSWERED:
            if row.instructor_id == instructor_id and row.instructor_feedback == feedback:
                return
            raise ConflictError("This request was already answered",
                                detail={"instructor_request_id": instructor_request_id,
                                        "answered_by": row.instructor_id})
        if row.state == ASSIGNED and row.instructor_id != instructor_id:
            holder_active = row.assigned_at > cutoff
            raise ConflictError(
                "This request is assigned to another instructor" if holder_active
                else "This request was reassigned; fetch it again if it is still waiting",
                detail={"instructor_request_id": instructor_request_id},
            )
        row.state, row.instructor_id = ANSWERED, instructor_id
        row.instructor_feedback, row.answered_at = feedback, now
        if row.assigned_at is None:
            row.assigned_at = now
        session.add(row)
        session.flush()
        counts = queue_counts(session, config, now)
        notifier.student_answered(session, address=row.student_email, problem_id=row.problem_id)
        notifier.queue_changed(session, waiting=counts["waiting"], assigned=counts["assigned"])


def release(db: Database, config: InstructorConfig, *, instructor_request_id: int, instructor_id: str) -> None:
    """Give an assigned request back to the queue (keeping its place: oldest first).

    Raises:
        NotFoundError; PermissionDeniedError: someone else holds it; ConflictError: it
        is not assigned (waiting, timed out or answered).
    """
    instructor_id = str(instructor_id)
    with db.scope(immediate=True) as session:
        row = _locked(session, instructor_request_id)
        state = effective_state(row, config)
        if state != ASSIGNED:
            raise ConflictError(f"This request is {state}, not assigned",
                                detail={"instructor_request_id": instructor_request_id, "state": state})
        if row.instructor_id != instructor_id:
            raise PermissionDeniedError("Only the instructor holding this request may release it",
                                        detail={"instructor_request_id": instructor_request_id})
        row.state, row.instructor_id, row.assigned_at = WAITING, None, None
        session.add(row)


def queue(db: Database, config: InstructorConfig) -> dict[str, Any]:
    """Counts, and the waiting and assigned requests, oldest first."""
    now = utcnow()
    with db.scope() as session:
        counts = queue_counts(session, config, now)
        rows = session.connection().execute(
            select(_feedback.c.id, _feedback.c.problem_id, _feedback.c.state, _feedback.c.instructor_id,
                   _feedback.c.created_at, _feedback.c.assigned_at, _hints.c.hint_type)
            .join(_hints, _hints.c.id == _feedback.c.hint_request_id)
            .where(_feedback.c.state != ANSWERED)
            .order_by(_feedback.c.created_at, _feedback.c.id)
        ).all()
    items = []
    for r in rows:
        state = effective_state(r, config, now)
        items.append({
            "instructor_request_id": r.id, "problem_id": r.problem_id, "hint_type": r.hint_type, "state": state,
            "instructor_id": r.instructor_id if state == ASSIGNED else None,
            "created_at": r.created_at.isoformat(),
            "assigned_at": r.assigned_at.isoformat() if state == ASSIGNED else None,
        })
    return {**counts, "items": items}


def request_details(db: Database, *, instructor_request_id: int) -> tuple[InstructorFeedbackRequest, HintRequest]:
    with db.scope() as session:
        row = session.get(InstructorFeedbackRequest, instructor_request_id)
        if row is None:
            raise _not_found(instructor_request_id)
        hint = session.get(HintRequest, row.hint_request_id)
    return row, hint


def work_item(row: InstructorFeedbackRequest, hint: HintRequest, *, name: str, description: str | None
              ) -> dict[str, Any]:
    """The fetch_request object of the contract."""
    return {
        "instructor_request_id": row.id,
        "request_id": hint.id,
        "problem_id": row.problem_id,
        "name": name,
        "problem_description": description,
        "hint_type": hint.hint_type,
        "student_program": hint.student_program,
        "student_notebook": hint.student_notebook,
        "reflection_question": hint.reflection_question,
        "reflection_answer": hint.reflection_answer,
        "ai_hint": hint.returned_hint,
        "student_notes": row.student_notes,
    }


def full_item(row, hint, config: InstructorConfig, *, name: str, description: str | None) -> dict[str, Any]:
    """The show_request object: the work item plus its queue state and answer."""
    state = effective_state(row, config)
    return {
        **work_item(row, hint, name=name, description=description),
        "state": state,
        "instructor_id": row.instructor_id if state != WAITING else None,
        "assigned_at": row.assigned_at.isoformat() if row.assigned_at and state != WAITING else None,
        "instructor_feedback": row.instructor_feedback,
        "answered_at": row.answered_at.isoformat() if row.answered_at else None,
    }


def send_reminders(db: Database, config: InstructorConfig, notifier: Notifier) -> int:
    """Remind the instructors of escalations waiting longer than ``reminder_after``.

    Each request is counted once per threshold it passes (after 1x, 2x, ... the
    threshold), recorded in ``reminders_sent`` by a conditional update, so several
    dispatchers never remind twice for the same step. One e-mail per instructor per
    sweep. Returns how many requests were reminded about.
    """
    if config.reminder_after_minutes is None or not notifier.enabled:
        return 0
    step = timedelta(minutes=config.reminder_after_minutes)
    now = utcnow()
    cutoff = assignment_cutoff(config, now)
    overdue = 0
    oldest: datetime | None = None
    with db.scope(immediate=True) as session:
        connection = session.connection()
        rows = connection.execute(
            select(_feedback.c.id, _feedback.c.created_at, _feedback.c.reminders_sent)
            .where(and_(_available(cutoff), _feedback.c.created_at <= now - step))
        ).all()
        for row in rows:
            due = int((now - row.created_at) / step)
            if due <= row.reminders_sent:
                continue
            overdue += connection.execute(
                update(_feedback).where(and_(_feedback.c.id == row.id, _feedback.c.reminders_sent == row.reminders_sent))
                .values(reminders_sent=due)
            ).rowcount
            oldest = row.created_at if oldest is None else min(oldest, row.created_at)
        if overdue:
            counts = queue_counts(session, config, now)
            notifier.reminder(session, overdue=overdue, waiting=counts["waiting"],
                              oldest_minutes=int((now - oldest).total_seconds() // 60))
    return overdue


def describe(
    db: Database, config: InstructorConfig, *, problem_client, catalog, instructor_request_id: int, full: bool
) -> dict[str, Any]:
    """The work item (``full=False``: the fetch_request object) or the show_request
    object, with the problem's name and description from the catalog when it answers."""
    from orchestrator.service.problems import problem_summary

    row, hint = request_details(db, instructor_request_id=instructor_request_id)
    name, description = problem_summary(client=problem_client, cache=catalog, problem_id=row.problem_id)
    if full:
        return full_item(row, hint, config, name=name, description=description)
    return work_item(row, hint, name=name, description=description)


def next_work_item(
    db: Database, config: InstructorConfig, *, problem_client, catalog, instructor_id: str
) -> dict[str, Any]:
    """fetch_request: the instructor's work item (see :func:`fetch_next`), or ``{}``."""
    chosen = fetch_next(db, config, instructor_id=instructor_id)
    if chosen is None:
        return {}
    return describe(db, config, problem_client=problem_client, catalog=catalog,
                    instructor_request_id=chosen, full=False)


def _locked(session: Session, instructor_request_id: int) -> InstructorFeedbackRequest:
    query = select(InstructorFeedbackRequest).where(InstructorFeedbackRequest.id == instructor_request_id)
    if session.connection().dialect.name == "postgresql":
        query = query.with_for_update()
    row = session.exec(query).scalars().first()
    if row is None:
        raise _not_found(instructor_request_id)
    return row

