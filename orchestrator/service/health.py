"""Liveness and readiness of this process and its database."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from orchestrator.errors import DatabaseUnavailableError, SchemaNotCurrentError
from orchestrator.store.db import Database
from orchestrator.store.schema import schema_status


@dataclass(frozen=True)
class Readiness:
    database: str
    current_revision: str | None
    head_revision: str

    def as_dict(self) -> dict:
        return {
            "database": self.database,
            "migrations": {"current": self.current_revision, "head": self.head_revision},
        }


def check_readiness(db: Database) -> Readiness:
    """Whether the database answers and its schema is at the code's migration head.

    Raises:
        DatabaseUnavailableError: the database cannot be reached.
        SchemaNotCurrentError: the schema is missing or behind (``detail`` tells).
    """
    try:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        status = schema_status(db.engine)
    except OperationalError as exc:
        raise DatabaseUnavailableError(
            "The database is unavailable", detail={"database": "unreachable"}
        ) from exc
    readiness = Readiness("ok", status.current, status.head)
    if not status.is_current:
        raise SchemaNotCurrentError(
            "The database schema is not current; run `orchestrator migrate`",
            detail=readiness.as_dict(),
        )
    return readiness
