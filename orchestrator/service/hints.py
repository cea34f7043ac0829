"""The AI hint lifecycle: request, reflection, polling, result, rating, cancellation.

Statuses of a HintRequest: ``pending`` until the AI Hint backend's result arrives
(``succeeded`` or ``failed``) or the orchestrator gives up on it (``failed`` with a
``failure_reason``: delivery gave up, or a deadline passed). Cancelling only sets a
flag. Hand-over to the backend goes through the outbox (see ``service/outbox.py``),
keyed ``hint:<id>`` so the reflection is never delivered before its request.

The polling and listing paths (``poll_hint``, ``list_finished``, ``quota_left``) use
SQLAlchemy Core: they are the hottest endpoints (PERFORMANCE_NOTES.md).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, case, exists, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlmodel import Session

from orchestrator.clients.hint_backend import HintBackendClient
from orchestrator import metrics
from orchestrator.errors import (
    ConflictError, HintGenerationFailedError, NotFoundError, QuotaExceededError, ValidationError,
)
from orchestrator.service import outbox, quotas
from orchestrator.service.profiles import QuotaProfiles
from orchestrator.store.db import Database
from orchestrator.store.models import HINT_TYPES, HintRequest, new_public_id, utcnow

_hints = HintRequest.__table__

ADD_REQUEST = "hint.add_request"
ADD_REFLECTION = "hint.add_reflection"

PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"
DELIVERY_FAILURE = "delivery to the hint backend failed"


def ordering_key(request_id: int) -> str:
    return f"hint:{request_id}"


def _not_found(request_id: int) -> NotFoundError:
    return NotFoundError(f"No hint request with id {request_id}", detail={"request_id": request_id})


# ---------------------------------------------------------------------- student actions


def request_hint(
    db: Database, profiles: QuotaProfiles, *, student_id: str, problem_id: str, hint_type: str,
    student_program: str, student_notebook: dict[str, Any] | None,
) -> int:
    """Accept a hint request within the quota and queue it for the backend; returns its id.

    Owns its transaction: quota check, insert and outbox message commit together,
    serialised per student and problem, so concurrent requests never pass the limit.

    Raises:
        ValidationError: unknown hint type.
        QuotaExceededError: the overall or per-type limit is reached.
    """
    if hint_type not in HINT_TYPES:
        raise ValidationError(
            f"Unknown hint type {hint_type!r}; expected one of {', '.join(HINT_TYPES)}",
            detail={"field": "hint_type"},
        )
    limits = profiles.limits_for(problem_id)
    now = utcnow()
    hint = {
        "id": new_public_id(), "student_id": student_id, "problem_id": problem_id, "hint_type": hint_type,
        "student_program": student_program, "student_notebook": student_notebook, "created_at": now,
        "status": PENDING, "is_cancelled": False, "poll_count": 0,
    }
    message = outbox.message_values(kind=ADD_REQUEST, ordering_key=ordering_key(hint["id"]),
                                    hint_request_id=hint["id"], now=now)
    if not quotas.is_enforced(limits, hint_type):
        # Nothing to check: the request and its message in one atomic statement.
        with db.statement() as connection:
            _insert_request(connection, hint, message)
        return hint["id"]
    with db.transaction(immediate=True) as connection:
        quotas.lock_student_problem(connection, student_id=student_id, problem_id=problem_id)
        status = quotas.quota_status(connection, limits, student_id=student_id, problem_id=problem_id)
        try:
            quotas.ensure_allowed(status, hint_type)
        except QuotaExceededError as exc:
            metrics.QUOTA_REJECTIONS.labels(exc.detail["limit"]).inc()
            raise
        _insert_request(connection, hint, message)
    return hint["id"]


def _insert_request(connection: Connection, hint: dict[str, Any], message: dict[str, Any]) -> None:
    """Insert a hint request and its outbox message: on PostgreSQL in one statement (a
    data-modifying WITH is atomic even under autocommit); SQLite runs it as two inside
    the caller's transaction."""
    if connection.dialect.name == "postgresql":
        connection.execute(_INSERT_REQUEST_PG, {**hint, **outbox.message_params(message)})
    else:
        connection.execute(insert(_hints), hint)
        connection.execute(insert(outbox.TABLE), message)


def _insert_request_pg():
    """Built once: INSERT the request, then its message from the inserted row."""
    inserted = insert(_hints).values({c: bindparam(c, type_=_hints.c[c].type) for c in _NEW_REQUEST_COLUMNS}) \
        .returning(_hints.c.id).cte("inserted")
    return outbox.insert_message_for(inserted.c.id).add_cte(inserted)


_NEW_REQUEST_COLUMNS = ("id", "student_id", "problem_id", "hint_type", "student_program", "student_notebook",
                        "created_at", "status", "is_cancelled", "poll_count")
_INSERT_REQUEST_PG = _insert_request_pg()


def add_reflection(db: Database, *, request_id: int, question: str, answer: str) -> int:
    """Store the student's reflection and queue it for the backend (after the request).

    Sending the same reflection again changes nothing; a different one is refused.
    A reflection on a request that has already ended is stored but not sent.

    The common case, a first reflection, is one statement on PostgreSQL: the UPDATE
    (which locks the row, then re-checks that no reflection is stored) and the outbox
    message of a pending request, atomic even under autocommit. A repeated reflection
    or an unknown id takes a second, plain read: a stored reflection never changes.

    Raises:
        NotFoundError, ConflictError.
    """
    values = {"reflect_id": request_id, "reflect_question": question, "reflect_answer": answer,
              "reflect_at": utcnow()}
    # A cancelled request still gets its reflection delivered: cancelling only hides
    # it, and a reflection that was never sent would leave it pending forever.
    message = outbox.message_values(kind=ADD_REFLECTION, ordering_key=ordering_key(request_id),
                                    hint_request_id=request_id, now=values["reflect_at"])
    if db.is_sqlite:
        with db.transaction(immediate=True) as connection:
            row = connection.execute(_REFLECT, values).first()
            if row is not None and row.status == PENDING:
                connection.execute(insert(outbox.TABLE), message)
    else:
        with db.statement() as connection:
            row = connection.execute(_REFLECT_AND_QUEUE_PG, {**values, **outbox.message_params(message)}).first()
    if row is not None:
        return request_id
    with db.statement() as connection:
        stored = connection.execute(
            select(_hints.c.reflection_question, _hints.c.reflection_answer).where(_hints.c.id == request_id)
        ).first()
    if stored is None:
        raise _not_found(request_id)
    if tuple(stored) == (question, answer):
        return request_id
    raise ConflictError("A different reflection was already recorded for this hint request",
                        detail={"request_id": request_id})


def _reflect_statements():
    """Built once: store a first reflection (returning the request's status), and on
    PostgreSQL the same with the pending request's outbox message in one statement."""
    reflect = (
        update(_hints)
        .where(and_(_hints.c.id == bindparam("reflect_id"), _hints.c.reflection_at.is_(None)))
        .values(reflection_question=bindparam("reflect_question"), reflection_answer=bindparam("reflect_answer"),
                reflection_at=bindparam("reflect_at", type_=_hints.c.reflection_at.type))
        .returning(_hints.c.id, _hints.c.status)
    )
    reflected = reflect.cte("reflected")
    queued = outbox.insert_message_for(reflected.c.id, where=reflected.c.status == PENDING).cte("queued")
    return reflect, select(reflected.c.id, reflected.c.status).add_cte(queued)


_REFLECT, _REFLECT_AND_QUEUE_PG = _reflect_statements()


def poll_hint(db: Database, *, request_id: int) -> dict[str, Any]:
    """The poll answer, counting the poll on the row (one UPDATE ... RETURNING).

    Raises:
        NotFoundError: unknown id.
        HintGenerationFailedError: the hint ended without a hint (answered as 500).
    """
    # The poll only bumps its statistics: a relaxed commit (no wait for the WAL flush).
    with db.statement(relaxed=True) as connection:
        row = connection.execute(_POLL, {"poll_id": request_id, "poll_now": utcnow()}).first()
    if row is None:
        raise _not_found(request_id)
    status, hint, failure_reason = row
    if status == PENDING:
        return {"request_id": request_id, "job_finished": False, "hint": None}
    if status == SUCCEEDED:
        return {"request_id": request_id, "job_finished": True, "hint": hint}
    # The backend's own error text may be anything (a traceback): students get our reason only.
    raise HintGenerationFailedError(
        "The hint could not be generated",
        detail={"request_id": request_id, "reason": failure_reason or "the hint service could not generate it"},
    )


def _poll_statement():
    """Built once: a poll is the hottest statement (one UPDATE ... RETURNING)."""
    now = bindparam("poll_now", type_=_hints.c.last_polled_at.type)
    return (
        update(_hints)
        .where(_hints.c.id == bindparam("poll_id"))
        .values(
            poll_count=_hints.c.poll_count + 1,
            first_polled_at=func.coalesce(_hints.c.first_polled_at, now),
            last_polled_at=now,
            result_returned_at=case(
                (and_(_hints.c.status != PENDING, _hints.c.result_returned_at.is_(None)), now),
                else_=_hints.c.result_returned_at,
            ),
        )
        .returning(_hints.c.status, _hints.c.returned_hint, _hints.c.failure_reason)
    )


_POLL = _poll_statement()


def list_finished(db: Database, *, student_id: str, problem_id: str) -> list[dict[str, Any]]:
    """The student's finished, not cancelled hint requests for a problem, oldest first."""
    with db.statement() as connection:
        rows = connection.execute(_LIST_FINISHED, {"student_id": student_id, "problem_id": problem_id}).all()
    return [
        {
            "id": id_,
            "request_id": id_,
            "hint_type": hint_type,
            "job_finished_successfully": status == SUCCEEDED,
            "returned_hint": returned_hint,
            "is_hint_helpful": is_hint_helpful,
            "created_at": created_at.isoformat(),
            "returned_time": None if returned_time is None else returned_time.isoformat(),
        }
        for id_, hint_type, status, returned_hint, is_hint_helpful, created_at, returned_time in rows
    ]


def _list_finished_statement():
    """Built once: the student app lists finished hints on every problem page."""
    return (
        select(_hints.c.id, _hints.c.hint_type, _hints.c.status, _hints.c.returned_hint, _hints.c.is_hint_helpful,
               _hints.c.created_at, _hints.c.returned_time)
        .where(and_(_hints.c.student_id == bindparam("student_id"), _hints.c.problem_id == bindparam("problem_id"),
                    _hints.c.status != PENDING, _hints.c.is_cancelled.is_(False)))
        .order_by(_hints.c.created_at, _hints.c.id)
    )


_LIST_FINISHED = _list_finished_statement()


def rate_hint(db: Database, *, request_id: int, is_hint_helpful: bool) -> None:
    """Store (or change) the student's rating of a hint. Raises NotFoundError."""
    with db.statement() as connection:
        changed = connection.execute(
            update(_hints).where(_hints.c.id == request_id)
            .values(is_hint_helpful=is_hint_helpful, rated_at=utcnow())
        ).rowcount
    if not changed:
        raise _not_found(request_id)


def cancel(db: Database, *, request_id: int) -> None:
    """Hide a hint request from the student's list; it still counts. Idempotent. Raises NotFoundError."""
    with db.scope() as session:
        connection = session.connection()
        connection.execute(
            update(_hints).where(and_(_hints.c.id == request_id, _hints.c.is_cancelled.is_(False)))
            .values(is_cancelled=True, cancelled_at=utcnow())
        )
        found = connection.execute(select(_hints.c.id).where(_hints.c.id == request_id)).first()
    if found is None:
        raise _not_found(request_id)


def quota_left(db: Database, profiles: QuotaProfiles, *, student_id: str, problem_id: str) -> dict[str, Any]:
    with db.statement() as connection:
        status = quotas.quota_status(
            connection, profiles.limits_for(problem_id), student_id=student_id, problem_id=problem_id
        )
    return status.as_dict(student_id, problem_id)


def grant_quota(
    db: Database, profiles: QuotaProfiles, *, student_id: str, problem_id: str, hint_type: str, count: int,
    reason: str | None, granted_by: str,
) -> dict[str, Any]:
    """Grant extra hints (:func:`quotas.grant`) and return the new quota_left answer.

    Raises:
        ValidationError: unknown hint type or a count outside 1..100.
    """
    with db.scope() as session:
        quotas.grant(session, student_id=student_id, problem_id=problem_id, hint_type=hint_type, count=count,
                     reason=reason, granted_by=granted_by)
    return quota_left(db, profiles, student_id=student_id, problem_id=problem_id)


def has_ever_requested(db: Database, *, student_id: str) -> bool:
    with db.statement() as connection:
        return bool(connection.execute(select(exists().where(_hints.c.student_id == student_id))).scalar())


# ---------------------------------------------------------------------- the backend's callback


def save_result(
    db: Database, *, request_id: int, hint: str | None, job_finished_successfully: bool,
    generation_error_message: str | None, other_hint_data: dict[str, Any] | None,
) -> str:
    """Store the AI Hint backend's result. Returns what happened: ``stored``,
    ``duplicate`` (the same result again), or ``late`` (the orchestrator had already
    failed the request; kept for research, the student's view is unchanged).

    Raises:
        ValidationError: a success without a hint.
        NotFoundError: unknown id.
        ConflictError: a different result for a request that already has one.
    """
    if job_finished_successfully and not (hint and hint.strip()):
        raise ValidationError("A successful result needs a non-empty 'hint'", detail={"field": "hint"})
    result = {
        "hint": hint,
        "job_finished_successfully": job_finished_successfully,
        "generation_error_message": generation_error_message,
        "other_hint_data": other_hint_data,
    }
    now = utcnow()
    with db.scope(immediate=True) as session:
        row = _locked(session, request_id)
        if row.returned_time is not None:
            if _same_result(row, result):
                return "duplicate"
            raise ConflictError(
                "A different result was already stored for this hint request", detail={"request_id": request_id}
            )
        if row.status == FAILED:
            if row.late_result is None:
                row.late_result = {**result, "received_at": now.isoformat()}
                row.late_result_at = now
                session.add(row)
                return "late"
            if {k: row.late_result.get(k) for k in result} == result:
                return "duplicate"
            raise ConflictError(
                "A different late result was already stored for this hint request",
                detail={"request_id": request_id},
            )
        row.status = SUCCEEDED if job_finished_successfully else FAILED
        row.job_finished_successfully = job_finished_successfully
        row.returned_hint = hint
        row.generation_error_message = generation_error_message
        row.other_hint_data = other_hint_data
        row.returned_time = row.finished_at = now
        session.add(row)
        outbox.cancel_pending(session, hint_request_id=request_id, reason="the hint request has a result")
    return "stored"


def _same_result(row: HintRequest, result: dict[str, Any]) -> bool:
    return (
        row.returned_hint == result["hint"]
        and bool(row.job_finished_successfully) == result["job_finished_successfully"]
        and row.generation_error_message == result["generation_error_message"]
        and row.other_hint_data == result["other_hint_data"]
    )


# ---------------------------------------------------------------------- failure and deadlines


def fail_request(session: Session, *, request_id: int, reason: str, now: datetime | None = None) -> bool:
    """Mark a pending request failed (it stops counting against the quota and its poll
    ends); cancel its undelivered messages. Returns False if it was no longer pending."""
    now = now or utcnow()
    changed = session.connection().execute(
        update(_hints).where(and_(_hints.c.id == request_id, _hints.c.status == PENDING))
        .values(status=FAILED, failure_reason=reason, finished_at=now, job_finished_successfully=False)
    ).rowcount
    if changed:
        outbox.cancel_pending(session, hint_request_id=request_id, reason=f"hint request failed: {reason}")
    return bool(changed)


def expire_deadlines(
    db: Database, *, result_deadline_seconds: float, reflection_deadline_seconds: float
) -> int:
    """Fail pending requests past a deadline: no result long after the reflection was
    delivered, or no reflection long after the request. Returns how many."""
    now = utcnow()
    result_cutoff = now - timedelta(seconds=result_deadline_seconds)
    reflection_cutoff = now - timedelta(seconds=reflection_deadline_seconds)
    failed = 0
    with db.scope(immediate=True) as session:
        connection = session.connection()
        no_result = connection.execute(
            select(_hints.c.id).where(and_(_hints.c.status == PENDING,
                                           _hints.c.reflection_delivered_at.is_not(None),
                                           _hints.c.reflection_delivered_at < result_cutoff))
        ).scalars().all()
        no_reflection = connection.execute(
            select(_hints.c.id).where(and_(_hints.c.status == PENDING, _hints.c.reflection_at.is_(None),
                                           _hints.c.created_at < reflection_cutoff))
        ).scalars().all()
        for request_id in no_result:
            failed += fail_request(session, request_id=request_id, now=now,
                                   reason=f"no hint arrived within {result_deadline_seconds:g} s of the reflection")
        for request_id in no_reflection:
            failed += fail_request(session, request_id=request_id, now=now,
                                   reason=f"no reflection within {reflection_deadline_seconds:g} s of the request")
    return failed


# ---------------------------------------------------------------------- delivery to the backend


def delivery_kinds(db: Database, client: HintBackendClient) -> dict[str, outbox.Kind]:
    """How the dispatcher hands hint requests and reflections to the AI Hint backend.

    Bodies are built from the row at delivery time (not copied into the outbox), so a
    10 MB notebook is stored once.
    """

    def load(message):
        with db.statement() as connection:
            hint = connection.execute(_LOAD_FOR_DELIVERY, {"load_id": message.hint_request_id}).first()
        if hint is None:
            raise outbox.SkipDelivery("the hint request no longer exists")
        if hint.status != PENDING:
            raise outbox.SkipDelivery(f"the hint request is {hint.status}")
        return hint

    def deliver_request(message) -> None:
        hint = load(message)
        data: dict[str, Any] = {
            "problem_id": hint.problem_id,
            "student_program": hint.student_program,
            "hint_type": hint.hint_type,
        }
        if hint.student_notebook is not None:
            data["student_notebook"] = hint.student_notebook
        client.add_request(hint.id, data)

    def deliver_reflection(message) -> None:
        hint = load(message)
        client.add_reflection(hint.id, hint.reflection_question or "", hint.reflection_answer or "")

    def delivered(column: str):
        statement = update(_hints).where(_hints.c.id == bindparam("mark_id")) \
            .values({column: bindparam("mark_at", type_=_hints.c[column].type)})

        def mark(connection: Connection, message, now: datetime) -> None:
            connection.execute(statement, {"mark_id": message.hint_request_id, "mark_at": now})
        return mark

    def give_up(session: Session, message, reason: str, now: datetime) -> None:
        fail_request(session, request_id=message.hint_request_id, now=now,
                     reason=f"{DELIVERY_FAILURE} after {message.attempts} attempts: {reason}")

    return {
        ADD_REQUEST: outbox.Kind(deliver_request, delivered("delivered_at"), give_up),
        ADD_REFLECTION: outbox.Kind(deliver_reflection, delivered("reflection_delivered_at"), give_up),
    }


# What a delivery sends, read in one autocommit statement (the dispatcher's hot path).
_LOAD_FOR_DELIVERY = select(
    _hints.c.id, _hints.c.status, _hints.c.problem_id, _hints.c.student_program, _hints.c.hint_type,
    _hints.c.student_notebook, _hints.c.reflection_question, _hints.c.reflection_answer,
).where(_hints.c.id == bindparam("load_id"))


def retry_delivery(session: Session, *, message_id: int) -> list[int]:
    """Queue a failed outbox message again (with the messages cancelled behind it).

    A hint request that had failed *because this delivery gave up* is reopened
    (pending again, quota counted again) so that the retried delivery is not skipped
    and its result reaches the student; one failed for any other reason stays failed.
    Returns the re-queued message ids. Raises NotFoundError / ConflictError.
    """
    requeued = outbox.requeue(session, message_id)
    session.flush()
    hint_ids = set(session.connection().execute(
        select(outbox._outbox.c.hint_request_id).where(outbox._outbox.c.id.in_(requeued))
    ).scalars()) - {None}
    for hint_id in hint_ids:
        session.connection().execute(
            update(_hints)
            .where(and_(_hints.c.id == hint_id, _hints.c.status == FAILED, _hints.c.returned_time.is_(None),
                        _hints.c.failure_reason.like(f"{DELIVERY_FAILURE}%")))
            .values(status=PENDING, failure_reason=None, finished_at=None, job_finished_successfully=None)
        )
    return requeued


# ---------------------------------------------------------------------- operator views


def list_hints(
    session: Session, *, student_id: str | None = None, problem_id: str | None = None,
    status: str | None = None, limit: int = 50,
) -> list[HintRequest]:
    query = select(HintRequest).order_by(HintRequest.created_at.desc(), HintRequest.id.desc())
    if student_id is not None:
        query = query.where(HintRequest.student_id == student_id)
    if problem_id is not None:
        query = query.where(HintRequest.problem_id == problem_id)
    if status == "cancelled":
        query = query.where(HintRequest.is_cancelled.is_(True))
    elif status is not None:
        query = query.where(HintRequest.status == status)
    return list(session.exec(query.limit(limit)).scalars())


def get_hint(session: Session, request_id: int) -> HintRequest:
    hint = session.get(HintRequest, request_id)
    if hint is None:
        raise _not_found(request_id)
    return hint


def _locked(session: Session, request_id: int) -> HintRequest:
    """The row, locked for this transaction (FOR UPDATE on PostgreSQL; SQLite's write
    lock is taken by the caller's immediate transaction)."""
    query = select(HintRequest).where(HintRequest.id == request_id)
    if session.connection().dialect.name == "postgresql":
        query = query.with_for_update()
    hint = session.exec(query).scalars().first()
    if hint is None:
        raise _not_found(request_id)
    return hint


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
