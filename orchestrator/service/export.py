"""Research export: one tidy file per entity plus a data dictionary.

Rows are streamed from the database (a server-side cursor on PostgreSQL, in batches),
written as they come, so memory stays flat whatever the table size. With
``pseudonymize`` every student id and e-mail address becomes a keyed hash
(HMAC-SHA256 with ``ORCHESTRATOR_PSEUDONYM_KEY``): the same student gets the same
pseudonym in every file, so files still join, and nobody without the key can reverse it.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, select, true

from orchestrator.errors import ConfigError, ValidationError
from orchestrator.store.db import Database
from orchestrator.store.models import HintRequest, InstructorFeedbackRequest, ProgramExecution

_hints = HintRequest.__table__
_feedback = InstructorFeedbackRequest.__table__
_runs = ProgramExecution.__table__

BATCH = 2000


@dataclass(frozen=True)
class Column:
    name: str
    expression: Any
    description: str
    identifying: str | None = None  # "student" or "email": replaced when pseudonymizing


@dataclass(frozen=True)
class Entity:
    name: str
    description: str
    table: Any
    time_column: Any
    columns: tuple[Column, ...]
    where: Any = None


def _c(table, name, description, identifying=None) -> Column:
    return Column(name, table.c[name], description, identifying)


ENTITIES = (
    Entity("hint_requests", "One row per AI hint request.", _hints, _hints.c.created_at, (
        _c(_hints, "id", "Hint request id (the request_id clients see)."),
        _c(_hints, "student_id", "The student.", "student"),
        _c(_hints, "problem_id", "The problem."),
        _c(_hints, "hint_type", "plan, debug or optimize."),
        _c(_hints, "created_at", "When the request was accepted (UTC)."),
        _c(_hints, "status", "pending, succeeded or failed."),
        _c(_hints, "failure_reason", "Why the orchestrator failed it (delivery gave up, a deadline), else empty."),
        _c(_hints, "job_finished_successfully", "The hint backend's verdict, empty while pending."),
        _c(_hints, "returned_hint", "The hint text."),
        _c(_hints, "generation_error_message", "The hint backend's error message when generation failed."),
        _c(_hints, "returned_time", "When the result arrived (UTC)."),
        _c(_hints, "is_cancelled", "The student cancelled it (it still counted against the quota)."),
        _c(_hints, "student_program", "The program the student asked about."),
    )),
    Entity("reflections", "The reflection a student wrote before seeing the hint.", _hints, _hints.c.reflection_at, (
        Column("hint_request_id", _hints.c.id, "The hint request (hint_requests.id)."),
        _c(_hints, "student_id", "The student.", "student"),
        _c(_hints, "problem_id", "The problem."),
        _c(_hints, "reflection_question", "The question the app asked."),
        _c(_hints, "reflection_answer", "The student's answer (may be empty)."),
        _c(_hints, "reflection_at", "When it was written (UTC)."),
    ), where=_hints.c.reflection_at.is_not(None)),
    Entity("ratings", "Students' ratings of hints.", _hints, _hints.c.rated_at, (
        Column("hint_request_id", _hints.c.id, "The hint request (hint_requests.id)."),
        _c(_hints, "student_id", "The student.", "student"),
        _c(_hints, "problem_id", "The problem."),
        _c(_hints, "hint_type", "plan, debug or optimize."),
        _c(_hints, "is_hint_helpful", "The rating."),
        _c(_hints, "rated_at", "When it was (last) rated (UTC)."),
    ), where=_hints.c.is_hint_helpful.is_not(None)),
    Entity("poll_statistics", "How the student's client polled for each hint (one row per hint, not per poll).",
           _hints, _hints.c.created_at, (
        Column("hint_request_id", _hints.c.id, "The hint request (hint_requests.id)."),
        _c(_hints, "student_id", "The student.", "student"),
        _c(_hints, "poll_count", "Number of query_hint polls."),
        _c(_hints, "first_polled_at", "First poll (UTC)."),
        _c(_hints, "last_polled_at", "Last poll (UTC)."),
        _c(_hints, "result_returned_at", "First poll that returned the end result (UTC); empty if never."),
    )),
    Entity("escalations", "Hint requests escalated to an instructor, and the answers.", _feedback,
           _feedback.c.created_at, (
        _c(_feedback, "id", "Escalation id (instructor_request_id)."),
        _c(_feedback, "hint_request_id", "The escalated hint request (hint_requests.id)."),
        _c(_feedback, "student_id", "The student.", "student"),
        _c(_feedback, "problem_id", "The problem."),
        _c(_feedback, "student_email", "Address the student gave for the answer, if any.", "email"),
        _c(_feedback, "student_notes", "The student's notes."),
        _c(_feedback, "created_at", "When it was escalated (UTC)."),
        _c(_feedback, "state", "waiting, assigned or answered."),
        _c(_feedback, "instructor_id", "The instructor holding or having answered it."),
        _c(_feedback, "assigned_at", "When it was last assigned (UTC)."),
        _c(_feedback, "answered_at", "When it was answered (UTC)."),
        _c(_feedback, "instructor_feedback", "The answer."),
        _c(_feedback, "is_feedback_helpful", "The student's rating of the answer."),
    )),
    Entity("executions", "Programs run against a problem's hidden tests.", _runs, _runs.c.created_at, (
        _c(_runs, "id", "Row id."),
        _c(_runs, "student_id", "The student (empty for an instructor's run).", "student"),
        _c(_runs, "problem_id", "The problem."),
        _c(_runs, "execution_id", "The Problem Handler's execution id (empty if it could not start)."),
        _c(_runs, "created_at", "When it was started (UTC)."),
        _c(_runs, "finished_at", "When its result was recorded (UTC)."),
        _c(_runs, "is_success", "The execution ran (false: it failed, or the upstream did)."),
        _c(_runs, "correctness", "All hidden tests passed."),
        _c(_runs, "buggy_output", "Description of the first failing test."),
        _c(_runs, "elapsed_time", "Seconds the run took (as reported)."),
        _c(_runs, "error_message", "Error of the run or of the upstream."),
        _c(_runs, "student_program", "The program."),
    )),
)


def pseudonymizer(key: str | None) -> Callable[[str, str | None], str | None]:
    if not key:
        raise ConfigError("ORCHESTRATOR_PSEUDONYM_KEY must be set to pseudonymize (a random secret of 16+ characters)")
    secret = key.encode()

    def pseudonym(kind: str, value: str | None) -> str | None:
        if value is None:
            return None
        digest = hmac.new(secret, f"{kind}\x1f{value}".encode(), hashlib.sha256).hexdigest()[:20]
        return f"{kind[0]}_{digest}"

    return pseudonym


def count_rows(db: Database, entity: Entity, since: datetime | None) -> int:
    with db.scope() as session:
        return session.connection().execute(
            select(func.count()).select_from(entity.table).where(_filter(entity, since))).scalar()


def stream_rows(db: Database, entity: Entity, since: datetime | None) -> Iterator[dict[str, Any]]:
    query = select(*(c.expression.label(c.name) for c in entity.columns)).where(_filter(entity, since)) \
        .order_by(entity.time_column, entity.table.c.id)
    with db.engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=BATCH).execute(query)
        for partition in result.mappings().partitions(BATCH):
            yield from partition


def _filter(entity: Entity, since: datetime | None):
    conditions = [true()]
    if entity.where is not None:
        conditions.append(entity.where)
    if since is not None:
        conditions.append(entity.time_column >= since)
    return and_(*conditions)


def export(db: Database, out: Path, *, fmt: str = "csv", since: datetime | None = None,
           pseudonymize_key: str | None = None, progress: Callable[[str, int, int], None] | None = None
           ) -> dict[str, int]:
    """Write every entity to ``out`` and a data dictionary; returns rows written per file."""
    if fmt not in ("csv", "jsonl"):
        raise ValidationError("The format must be csv or jsonl")
    pseudonym = pseudonymizer(pseudonymize_key) if pseudonymize_key is not None else None
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for entity in ENTITIES:
        total = count_rows(db, entity, since)
        path = out / f"{entity.name}.{fmt}"
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = _writer(handle, fmt, [c.name for c in entity.columns])
            count = 0
            for row in stream_rows(db, entity, since):
                writer(_clean(entity, row, pseudonym))
                count += 1
                if progress is not None and count % BATCH == 0:
                    progress(entity.name, count, total)
            if progress is not None:
                progress(entity.name, count, total)
        written[entity.name] = count
    _dictionary(out, fmt, pseudonym is not None, since)
    return written


def _clean(entity: Entity, row, pseudonym) -> dict[str, Any]:
    record = {}
    for column in entity.columns:
        value = row[column.name]
        if pseudonym is not None and column.identifying is not None:
            value = pseudonym(column.identifying, value)
        if isinstance(value, datetime):
            value = value.isoformat()
        record[column.name] = value
    return record


def _writer(handle, fmt: str, names: list[str]):
    if fmt == "jsonl":
        return lambda record: handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    writer = csv.DictWriter(handle, fieldnames=names)
    writer.writeheader()
    return writer.writerow


def _dictionary(out: Path, fmt: str, pseudonymized: bool, since: datetime | None) -> None:
    lines = ["# Data dictionary", "",
             f"Format: {fmt}. Times are ISO 8601 in UTC. Empty/null means unknown or not applicable."]
    if since is not None:
        lines.append(f"Only records since {since.isoformat()}.")
    if pseudonymized:
        lines.append("Student ids (`s_…`) and e-mail addresses (`e_…`) are keyed hashes: the same person has "
                     "the same pseudonym in every file, so files join on them.")
    for entity in ENTITIES:
        lines += ["", f"## {entity.name}.{fmt}", "", entity.description, "", "| column | meaning |", "|---|---|"]
        lines += [f"| `{c.name}` | {c.description} |" for c in entity.columns]
    (out / "data_dictionary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
