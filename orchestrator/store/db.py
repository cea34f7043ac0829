"""Engine and unit-of-work scope.

One engine per process (built from Settings, never at import time). A session
scope commits on success, rolls back on any error (a failed commit included) and
always closes, in the manner of falcon-sqla's ``Manager.session_scope``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, ProgrammingError
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, create_engine

from orchestrator.errors import DatabaseUnavailableError, SchemaNotCurrentError

def make_engine(database_url: str, *, pool_size: int = 2, max_overflow: int = 3) -> Engine:
    """Build the engine for ``database_url`` (SQLite file or PostgreSQL)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_pre_ping=False,
            # Errors must never carry students' programs into logs.
            hide_parameters=True,
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    if url.drivername == "postgresql":
        # NOTE: SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; we ship psycopg2.
        url = url.set(drivername="postgresql+psycopg2")
    return create_engine(
        url,
        # No ping before each use (a round trip per request): a connection the server
        # dropped fails its statement with a disconnect error, which invalidates the
        # pool, answers that one request with 503, and the next ones reconnect.
        pool_pre_ping=False,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_recycle=1800,
        hide_parameters=True,
        # A dead database must fail a request quickly, not hang it.
        connect_args={"connect_timeout": 5, "application_name": "orchestrator"},
    )


def _sqlite_on_connect(dbapi_connection, _record) -> None:
    # NOTE: pysqlite's own transaction handling is switched off so that BEGIN is
    # ours (see _sqlite_on_begin); WAL lets readers run beside one writer.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_on_begin(connection) -> None:
    # IMMEDIATE takes the write lock at BEGIN, so read-then-write transactions
    # (quota checks, queue assignment) serialise instead of failing on upgrade.
    connection.exec_driver_sql(connection.get_execution_options().get("sqlite_begin", "BEGIN"))


class Database:
    """The engine plus a session factory; ``scope()`` is the unit of work."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, class_=Session, expire_on_commit=False)
        self._relaxed: Engine | None = None
        self._autocommit: Engine | None = None

    def _secondary(self, name: str, *, relaxed: bool) -> Engine:
        # Autocommit for the whole engine: no isolation level set and reset per checkout
        # (measured: that reset cost more than the statement itself).
        engine = create_engine(self.engine.url, pool_pre_ping=False, pool_size=1, max_overflow=2,
                               pool_recycle=1800, hide_parameters=True, isolation_level="AUTOCOMMIT",
                               connect_args={"connect_timeout": 5, "application_name": name})
        if relaxed:
            event.listen(engine, "connect", _relaxed_commit)
        return engine

    @property
    def autocommit_engine(self) -> Engine:
        """An autocommit engine for single statements (PostgreSQL; SQLite: the same engine)."""
        if self.is_sqlite:
            return self.engine
        if self._autocommit is None:
            self._autocommit = self._secondary("orchestrator", relaxed=False)
        return self._autocommit

    @property
    def relaxed_engine(self) -> Engine:
        """An engine whose commits do not wait for the WAL flush (``synchronous_commit =
        off``), for analytics writes only (poll statistics): a database crash may lose
        their last fraction of a second, never a hint request. SQLite: the same engine."""
        if self.is_sqlite:
            return self.engine
        if self._relaxed is None:
            self._relaxed = self._secondary("orchestrator-stats", relaxed=True)
        return self._relaxed

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def scope(self, *, immediate: bool = False) -> Iterator[Session]:
        """A session that commits on success, rolls back on error and always closes.

        ``immediate=True`` takes SQLite's write lock when the transaction begins
        (``BEGIN IMMEDIATE``), for read-then-write units that must not interleave;
        on PostgreSQL such units use row or advisory locks instead.

        Raises:
            DatabaseUnavailableError: the database could not be reached.
        """
        session = self._sessions()
        try:
            if immediate and self.is_sqlite:
                session.connection(execution_options={"sqlite_begin": "BEGIN IMMEDIATE"})
            yield session
            session.commit()
        except DBAPIError as exc:
            _quiet_rollback(session)
            translated = _translated(exc)
            if translated is exc:
                raise
            raise translated from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def statement(self, *, relaxed: bool = False) -> Iterator[Connection]:
        """A connection for one statement that needs no transaction of its own (a read,
        or a single UPDATE): autocommit on PostgreSQL, so it costs one round trip
        instead of BEGIN, statement, COMMIT. Hot paths use it (PERFORMANCE_NOTES.md).
        ``relaxed`` uses :attr:`relaxed_engine` (analytics writes only).

        Raises:
            DatabaseUnavailableError, SchemaNotCurrentError: as :meth:`scope`.
        """
        with _translated_errors():
            if self.is_sqlite:
                # One short transaction that may read and then write: take the write
                # lock at BEGIN so it never has to be upgraded (which SQLite refuses).
                with self.engine.connect().execution_options(sqlite_begin="BEGIN IMMEDIATE") as connection:
                    with connection.begin():
                        yield connection
            else:
                with (self.relaxed_engine if relaxed else self.autocommit_engine).connect() as connection:
                    yield connection

    @contextmanager
    def transaction(self, *, immediate: bool = False) -> Iterator[Connection]:
        """A Core connection in a transaction that commits on success and rolls back on
        error: :meth:`scope` without the ORM, for hot paths of several statements.
        ``immediate`` as in :meth:`scope`.

        Raises:
            DatabaseUnavailableError, SchemaNotCurrentError: as :meth:`scope`.
        """
        with _translated_errors():
            connection = self.engine.connect()
            if immediate and self.is_sqlite:
                connection = connection.execution_options(sqlite_begin="BEGIN IMMEDIATE")
            with connection, connection.begin():
                yield connection

    def dispose(self) -> None:
        self.engine.dispose()
        for engine in (self._relaxed, self._autocommit):
            if engine is not None:
                engine.dispose()


def _relaxed_commit(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("SET synchronous_commit TO off")
    cursor.close()


@contextmanager
def _translated_errors() -> Iterator[None]:
    try:
        yield
    except DBAPIError as exc:
        translated = _translated(exc)
        if translated is exc:
            raise
        raise translated from exc


def _translated(exc: DBAPIError) -> Exception:
    """The domain error a database failure means, or the failure itself."""
    if isinstance(exc, InterfaceError) or exc.connection_invalidated or (
            isinstance(exc, OperationalError) and is_connection_error(exc)):
        return DatabaseUnavailableError("The database is unavailable; try again shortly")
    if isinstance(exc, (OperationalError, ProgrammingError)) and is_missing_table(exc):
        return SchemaNotCurrentError("The database is not migrated; run `orchestrator migrate`")
    return exc


def _quiet_rollback(session: Session) -> None:
    # Rolling back on a dead connection fails too; the connection is discarded anyway.
    try:
        session.rollback()
    except DBAPIError:
        pass


def is_missing_table(exc: DBAPIError) -> bool:
    text = str(exc.orig).lower() if exc.orig is not None else ""
    return "no such table" in text or ("relation" in text and "does not exist" in text)


def is_connection_error(exc: OperationalError) -> bool:
    """Whether an OperationalError means "cannot talk to the database" (vs. a bad statement)."""
    if exc.connection_invalidated:
        return True
    text = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
    markers = (
        "could not connect", "connection refused", "server closed the connection",
        "terminating connection", "connection to server", "the database system is",
        "unable to open database", "no route to host", "timeout expired",
        "ssl connection has been closed", "could not translate host name",
    )
    return any(marker in text for marker in markers)
