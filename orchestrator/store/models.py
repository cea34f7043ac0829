"""SQLModel tables.

Ids that clients see (hint requests, feedback requests) are random integers below
2**53: they fit a JavaScript number and cannot be guessed from one another, which
matters because rating, cancelling and reflecting take nothing but the id. Rows
that clients never address by our id (program executions: clients use the
upstream's ``execution_id``) keep an ordinary autoincrement key.

All times are timezone-aware UTC.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Index, Integer, Text, text
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

HINT_TYPES = ("plan", "debug", "optimize")

# Deterministic constraint names, the same on SQLite and PostgreSQL, so that
# migrations can refer to them.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Largest integer a JavaScript number represents exactly, plus one.
JS_SAFE_LIMIT = 2**53


# JSON columns store Python None as SQL NULL (not the JSON literal null), so that
# "IS NULL" means "absent" in research queries on both databases.
NULLABLE_JSON = JSON(none_as_null=True)


def new_public_id() -> int:
    """A random id in [2**32, 2**53): unguessable, JSON-number safe, never tiny."""
    return 2**32 + secrets.randbelow(JS_SAFE_LIMIT - 2**32)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """A timestamp that is always timezone-aware UTC in Python.

    PostgreSQL stores ``timestamptz``; SQLite stores text without an offset, which
    this type reads back as UTC, so both databases hand out the same values.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        if value is not None and dialect.name == "sqlite":
            value = value.astimezone(timezone.utc)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def _time(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


class ProgramExecution(SQLModel, table=True):
    """One program a student (or an instructor) ran against a problem's hidden tests."""

    __tablename__ = "program_execution"
    __table_args__ = (
        Index("ix_program_execution_student_problem", "student_id", "problem_id", "created_at"),
        Index("ix_program_execution_execution_id", "execution_id"),
    )

    id: int | None = Field(default=None, sa_type=Integer, primary_key=True)
    student_id: str | None = Field(default=None, max_length=255)
    problem_id: str = Field(max_length=255)
    student_program: str = Field(sa_type=Text)
    # The Problem Handler's id; null when the upstream could not start the execution.
    execution_id: int | None = Field(default=None, sa_type=BigInteger)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = _time()
    # null while running; false when the upstream failed or the run ended in an error.
    is_success: bool | None = Field(default=None, sa_type=Boolean)
    correctness: bool | None = Field(default=None, sa_type=Boolean)
    buggy_output: str | None = Field(default=None, sa_type=Text)
    elapsed_time: float | None = None
    error_message: str | None = Field(default=None, sa_type=Text)


class HintRequest(SQLModel, table=True):
    """An AI hint a student asked for, with its reflection, result, rating and polls.

    ``status`` is ``pending`` until the AI Hint backend's result arrives
    (``succeeded``/``failed``) or the orchestrator gives up on it (``failed`` with
    ``failure_reason``). Cancelling is a flag, not a status: a cancelled request
    keeps its result and keeps counting against the quota.
    """

    __tablename__ = "hint_request"
    __table_args__ = (
        Index("ix_hint_request_student_problem", "student_id", "problem_id", "created_at"),
        Index("ix_hint_request_status_created", "status", "created_at"),
        # The deadline sweep's "no result long after the reflection" (migration 0007).
        Index("ix_hint_request_awaiting_result", "reflection_delivered_at",
              postgresql_where=text("status = 'pending' AND reflection_delivered_at IS NOT NULL"),
              sqlite_where=text("status = 'pending' AND reflection_delivered_at IS NOT NULL")),
    )

    id: int = Field(default_factory=new_public_id, sa_type=BigInteger, primary_key=True)
    student_id: str = Field(max_length=255)
    problem_id: str = Field(max_length=255)
    hint_type: str = Field(max_length=16)
    student_program: str = Field(sa_type=Text)
    student_notebook: dict[str, Any] | None = Field(default=None, sa_type=NULLABLE_JSON)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)

    reflection_question: str | None = Field(default=None, sa_type=Text)
    reflection_answer: str | None = Field(default=None, sa_type=Text)
    reflection_at: datetime | None = _time()

    status: str = Field(default="pending", max_length=16)
    job_finished_successfully: bool | None = Field(default=None, sa_type=Boolean)
    returned_hint: str | None = Field(default=None, sa_type=Text)
    generation_error_message: str | None = Field(default=None, sa_type=Text)
    other_hint_data: dict[str, Any] | None = Field(default=None, sa_type=NULLABLE_JSON)
    returned_time: datetime | None = _time()
    failure_reason: str | None = Field(default=None, sa_type=Text)
    # When the status left "pending" (a backend result, or the orchestrator giving up).
    finished_at: datetime | None = _time()
    # When the AI Hint backend acknowledged the request and the reflection.
    delivered_at: datetime | None = _time()
    reflection_delivered_at: datetime | None = _time()
    # A result that arrived after the orchestrator had failed the request (research only).
    late_result: dict[str, Any] | None = Field(default=None, sa_type=NULLABLE_JSON)
    late_result_at: datetime | None = _time()

    is_cancelled: bool = Field(default=False, sa_type=Boolean)
    cancelled_at: datetime | None = _time()

    is_hint_helpful: bool | None = Field(default=None, sa_type=Boolean)
    rated_at: datetime | None = _time()

    # Poll statistics for research, kept on the row (never a row per poll).
    poll_count: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    first_polled_at: datetime | None = _time()
    last_polled_at: datetime | None = _time()
    result_returned_at: datetime | None = _time()


class InstructorFeedbackRequest(SQLModel, table=True):
    """A hint request escalated to the instructors, and its answer.

    ``state`` is ``waiting`` (never assigned, or released), ``assigned`` (to
    ``instructor_id`` since ``assigned_at``; an expired assignment counts as
    waiting) or ``answered``. One escalation per hint request.
    """

    __tablename__ = "instructor_feedback_request"
    __table_args__ = (
        Index("ix_feedback_state_created", "state", "created_at"),
        Index("ix_feedback_student_problem", "student_id", "problem_id", "created_at"),
        Index("ix_feedback_instructor_state", "instructor_id", "state"),
    )

    id: int = Field(default_factory=new_public_id, sa_type=BigInteger, primary_key=True)
    hint_request_id: int = Field(
        sa_type=BigInteger, foreign_key="hint_request.id", unique=True, ondelete="CASCADE"
    )
    student_id: str = Field(max_length=255)
    problem_id: str = Field(max_length=255)
    student_email: str | None = Field(default=None, max_length=320)
    student_notes: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)

    state: str = Field(default="waiting", max_length=16)
    instructor_id: str | None = Field(default=None, max_length=255)
    assigned_at: datetime | None = _time()
    instructor_feedback: str | None = Field(default=None, sa_type=Text)
    answered_at: datetime | None = _time()
    is_feedback_helpful: bool | None = Field(default=None, sa_type=Boolean)
    rated_at: datetime | None = _time()
    # Reminder e-mails sent about this request while it waited (one per threshold passed).
    reminders_sent: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class OutboxMessage(SQLModel, table=True):
    """A message to deliver to an upstream, committed with the change that caused it.

    Messages with the same ``ordering_key`` are delivered strictly in ``id`` order: one
    is claimable only when no earlier message of its key is still ``pending``.
    ``status`` is ``pending``, ``delivered``, ``failed`` (gave up) or ``cancelled``
    (its hint request ended before it was delivered). A claim is a lease
    (``lease_owner`` until ``lease_expires_at``); an expired lease may be taken over,
    so delivery is at least once.
    """

    __tablename__ = "outbox_message"
    __table_args__ = (
        Index("ix_outbox_status_due", "status", "next_attempt_at"),
        Index("ix_outbox_ordering_key", "ordering_key", "id"),
        Index("ix_outbox_hint_request", "hint_request_id"),
        # The dispatcher's claim walks pending messages oldest first, and asks whether
        # an earlier one of the same key is still pending (migration 0007).
        Index("ix_outbox_pending", "id", postgresql_where=text("status = 'pending'"),
              sqlite_where=text("status = 'pending'")),
        Index("ix_outbox_pending_key", "ordering_key", "id", postgresql_where=text("status = 'pending'"),
              sqlite_where=text("status = 'pending'")),
    )

    id: int | None = Field(default=None, sa_type=BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    kind: str = Field(max_length=64)
    ordering_key: str = Field(max_length=128)
    hint_request_id: int | None = Field(default=None, sa_type=BigInteger)
    payload: dict[str, Any] | None = Field(default=None, sa_type=NULLABLE_JSON)
    status: str = Field(default="pending", max_length=16)
    attempts: int = Field(default=0)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    lease_owner: str | None = Field(default=None, max_length=128)
    lease_expires_at: datetime | None = _time()
    last_attempt_at: datetime | None = _time()
    last_error: str | None = Field(default=None, sa_type=Text)
    delivered_at: datetime | None = _time()


class InstructorToken(SQLModel, table=True):
    """A credential issued to an instructor. Only a SHA-256 of the token is stored
    (tokens are 256-bit random values, so a fast hash is enough); ``prefix`` lets an
    operator tell tokens apart without revealing them."""

    __tablename__ = "instructor_token"
    __table_args__ = (Index("ix_instructor_token_instructor", "instructor_id"),)

    id: int | None = Field(default=None, primary_key=True)
    instructor_id: str = Field(max_length=255)
    token_hash: str = Field(max_length=64, unique=True)
    prefix: str = Field(max_length=16)
    label: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_used_at: datetime | None = _time()
    revoked_at: datetime | None = _time()


class AuthFailure(SQLModel, table=True):
    """One failed credential check, by client address: the failed-login rate limit
    counts these, so it holds across instances."""

    __tablename__ = "auth_failure"
    __table_args__ = (Index("ix_auth_failure_client_at", "client", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    client: str = Field(max_length=64)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class QuotaGrant(SQLModel, table=True):
    """Extra hints an instructor or operator granted a student on a problem, on top of
    the quota profile (``orchestrator quota grant``, ``POST /admin/quota_grant/``)."""

    __tablename__ = "quota_grant"
    __table_args__ = (Index("ix_quota_grant_student_problem", "student_id", "problem_id"),)

    id: int | None = Field(default=None, primary_key=True)
    student_id: str = Field(max_length=255)
    problem_id: str = Field(max_length=255)
    hint_type: str = Field(max_length=16)
    count: int
    reason: str | None = Field(default=None, sa_type=Text)
    granted_by: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


def metadata():
    """The metadata every table registers on (what Alembic compares against)."""
    return SQLModel.metadata
