"""Program executions: start them on the Problem Handler, relay and record their results.

These functions own their transactions (they take the Database, not a session):
the upstream call must never happen inside an open transaction, and the row is
written after the upstream answered (or failed).
"""

from __future__ import annotations

import functools
import json
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlmodel import Session, col

from orchestrator.clients.problem_handler import ProblemHandlerClient
from orchestrator.errors import UpstreamError
from orchestrator.service.problems import passthrough, upstream_error_text
from orchestrator.store.db import Database
from orchestrator.store.models import ProgramExecution, utcnow


def start_execution(
    *, db: Database, client: ProblemHandlerClient, student_id: str | None, problem_id: str,
    student_program: str,
) -> int:
    """Run a program against the problem's hidden tests; returns the upstream ``execution_id``.

    The ProgramExecution is recorded either way: with the execution id, or without one
    and marked failed with the reason when the upstream could not start it.

    Raises:
        UpstreamRejectedError: the Problem Handler refused it (e.g. unknown problem).
        UpstreamError: it could not be reached, timed out or answered nonsense.
    """
    row = ProgramExecution(student_id=student_id, problem_id=problem_id, student_program=student_program)
    try:
        row.execution_id = client.start_execution(problem_id, student_program)
    except UpstreamError as exc:
        row.is_success = False
        row.finished_at = utcnow()
        row.error_message = describe_failure(exc)
        with db.scope() as session:
            session.add(row)
        raise passthrough(exc) from exc
    with db.scope() as session:
        session.add(row)
    return row.execution_id


def execution_result(*, db: Database, client: ProblemHandlerClient, execution_id: int) -> dict[str, Any]:
    """The upstream's answer for ``execution_id``, recorded on its ProgramExecution.

    A finished result is recorded exactly once (later polls change nothing). A failed
    poll records the failure on an unfinished execution: final when the upstream
    itself reported an error (HTTP 500: the execution took too long), provisional
    otherwise (a later successful poll still records the real result).

    Raises:
        UpstreamRejectedError: the Problem Handler answered 4xx (404: unknown id).
        UpstreamError: it could not be reached, timed out, failed or answered nonsense.
    """
    try:
        body = client.execution_result(execution_id)
    except UpstreamError as exc:
        final = exc.kind == "bad_status" and exc.status is not None and exc.status >= 500 \
            and exc.status not in (502, 503, 504)
        _record(db, execution_id, {"is_success": False, "error_message": describe_failure(exc)}, final=final)
        raise passthrough(exc) from exc
    if body["job_finished"]:
        _record(db, execution_id, result_fields(body), final=True)
    return body


def result_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The columns a finished upstream result sets (tolerant of odd types)."""
    error = body.get("error")
    correctness = body.get("correctness")
    elapsed = body.get("elapsed_time")
    buggy = body.get("buggy_output")
    if buggy is not None and not isinstance(buggy, str):
        buggy = json.dumps(buggy)
    return {
        "is_success": error in (None, ""),
        "correctness": correctness if isinstance(correctness, bool) else None,
        "buggy_output": buggy,
        "elapsed_time": float(elapsed) if isinstance(elapsed, (int, float)) and not isinstance(elapsed, bool) else None,
        "error_message": None if error in (None, "") else str(error),
    }


def describe_failure(exc: UpstreamError) -> str:
    text = upstream_error_text(exc)
    reason = (exc.detail or {}).get("reason", exc.kind) if isinstance(exc.detail, dict) else exc.kind
    return f"{exc.kind}: {reason}" + (f": {text}" if text else "")


def _record(db: Database, execution_id: int, values: dict[str, Any], *, final: bool) -> None:
    """Write ``values`` on the newest unfinished ProgramExecution with this upstream id.
    (A finished one is never written again, so polling a finished result is a no-op.)"""
    if final:
        values = {**values, "finished_at": utcnow()}
    statement = _record_statement(tuple(sorted(values)))
    with db.statement() as connection:
        connection.execute(statement, {"poll_execution_id": execution_id, **{f"v_{k}": v for k, v in values.items()}})


@functools.lru_cache(maxsize=8)
def _record_statement(columns: tuple[str, ...]):
    """Built once per set of columns: get_execution_result is polled every second."""
    latest = (
        select(_executions.c.id)
        .where(_executions.c.execution_id == bindparam("poll_execution_id"))
        .order_by(_executions.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return (
        update(_executions)
        .where(_executions.c.id == latest)
        .where(_executions.c.finished_at.is_(None))
        .values({c: bindparam(f"v_{c}", type_=_executions.c[c].type) for c in columns})
    )


_executions = ProgramExecution.__table__


def list_executions(
    session: Session, *, student_id: str | None = None, problem_id: str | None = None, limit: int = 50
) -> list[ProgramExecution]:
    """The newest executions first, optionally for one student and/or problem."""
    query = select(ProgramExecution).order_by(col(ProgramExecution.created_at).desc(), col(ProgramExecution.id).desc())
    if student_id is not None:
        query = query.where(col(ProgramExecution.student_id) == student_id)
    if problem_id is not None:
        query = query.where(col(ProgramExecution.problem_id) == problem_id)
    return list(session.scalars(query.limit(limit)))
