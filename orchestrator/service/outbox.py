"""The transactional outbox and its dispatcher.

An operation that must reach an upstream commits an :class:`OutboxMessage` in the
same transaction as its own rows (:func:`enqueue`), and answers at once. A
:class:`Dispatcher` (one per ``orchestrator serve``, or ``orchestrator worker``;
any number may run against one database) then delivers each message:

1. **Claim** (own transaction): due ``pending`` messages with no lease, or an
   expired one, and no earlier ``pending`` message of the same ordering key; they
   get a lease (owner + expiry) and their attempt is counted. PostgreSQL claims
   with ``FOR UPDATE SKIP LOCKED`` so concurrent dispatchers never take the same
   row; SQLite's ``BEGIN IMMEDIATE`` serialises claims.
2. **Deliver** (no transaction open): the kind's handler calls the upstream.
3. **Record** (own transaction): ``delivered``; or, after a transient failure, due
   again after an exponential backoff with jitter (tenacity's wait strategy); or,
   when the attempts are used up or the failure is permanent, ``failed``: its later
   messages of the same key are cancelled and the kind's give-up hook runs (a hint
   request is then marked failed).

A process that dies mid-delivery leaves a lease that expires; the message is then
claimed again, so delivery is at least once and never lost.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlmodel import Session
from tenacity import RetryCallState, Retrying, wait_exponential, wait_random

from orchestrator.errors import DatabaseUnavailableError, OrchestratorError, UpstreamError
from orchestrator.store.db import Database
from orchestrator.store.models import HintRequest, OutboxMessage, utcnow

log = logging.getLogger("orchestrator.outbox")

_outbox = OutboxMessage.__table__
_hint_requests = HintRequest.__table__

PENDING, DELIVERED, FAILED, CANCELLED = "pending", "delivered", "failed", "cancelled"
STATUSES = (PENDING, DELIVERED, FAILED, CANCELLED)


# How many of the oldest pending messages a claim looks at first (see Dispatcher.claim).
CLAIM_WINDOW = 200


class PermanentDeliveryError(Exception):
    """The upstream refused the message in a way retrying cannot fix."""


class RetryLater(Exception):
    """A failure worth another attempt, whatever status it carries."""


class SkipDelivery(Exception):
    """The message no longer needs delivering (e.g. its hint request has ended)."""


@dataclass(frozen=True)
class DeliveryPolicy:
    max_attempts: int = 10
    backoff_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    lease_seconds: float = 30.0

    def delay_after(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt (exponential, jittered)."""
        state = RetryCallState(retry_object=Retrying(), fn=None, args=(), kwargs={})
        state.attempt_number = attempts
        wait = wait_exponential(multiplier=self.backoff_seconds, max=self.backoff_max_seconds) + wait_random(
            0, self.backoff_seconds
        )
        return min(wait(state), self.backoff_max_seconds)


@dataclass
class Kind:
    """How to deliver one kind of message.

    ``deliver(message)`` calls the upstream; it raises UpstreamError (transient
    unless a 4xx), PermanentDeliveryError, or SkipDelivery. ``on_delivered`` (given
    the Core connection) and ``on_give_up`` (given the session) run inside the
    transaction that records the outcome.
    """

    deliver: Callable[[OutboxMessage], None]
    on_delivered: Callable[[Connection, OutboxMessage, datetime], None] | None = None
    on_give_up: Callable[[Session, OutboxMessage, str, datetime], None] | None = None


def enqueue(
    session: Session, *, kind: str, ordering_key: str, hint_request_id: int | None = None,
    payload: dict[str, Any] | None = None,
) -> OutboxMessage:
    """Add a message to the caller's transaction; it is delivered once that commits."""
    message = OutboxMessage(kind=kind, ordering_key=ordering_key, hint_request_id=hint_request_id, payload=payload)
    session.add(message)
    return message


TABLE = _outbox
# The columns a new message sets (the rest start NULL).
MESSAGE_COLUMNS = ("kind", "ordering_key", "hint_request_id", "payload", "status", "attempts", "created_at",
                   "next_attempt_at")


def message_values(
    *, kind: str, ordering_key: str, hint_request_id: int | None = None, payload: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A new message's row for a Core insert, with the defaults :func:`enqueue` gets from the model."""
    now = now or utcnow()
    return {"kind": kind, "ordering_key": ordering_key, "hint_request_id": hint_request_id, "payload": payload,
            "status": PENDING, "attempts": 0, "created_at": now, "next_attempt_at": now}


def insert_message_for(hint_request_id, *, where=None):
    """An INSERT of one message (its values bound as ``m_<column>``, see
    :func:`message_params`) for the hint request id an enclosing statement produced,
    e.g. a CTE's ``RETURNING id``; ``where`` may make it conditional on that row."""
    values = select(*[
        hint_request_id if c == "hint_request_id" else bindparam(f"m_{c}", type_=TABLE.c[c].type)
        for c in MESSAGE_COLUMNS
    ])
    return insert(TABLE).from_select(MESSAGE_COLUMNS, values if where is None else values.where(where))


def message_params(message: dict[str, Any]) -> dict[str, Any]:
    """The bound values of :func:`insert_message_for` from :func:`message_values`."""
    return {f"m_{k}": v for k, v in message.items()}


def cancel_pending(session: Session, *, hint_request_id: int, reason: str) -> int:
    """Cancel the undelivered messages of a hint request (it ended)."""
    result = session.connection().execute(
        update(_outbox)
        .where(and_(_outbox.c.hint_request_id == hint_request_id, _outbox.c.status == PENDING))
        .values(status=CANCELLED, last_error=reason, lease_owner=None, lease_expires_at=None)
    )
    return result.rowcount


def is_permanent(exc: BaseException) -> bool:
    if isinstance(exc, PermanentDeliveryError):
        return True
    return (
        isinstance(exc, UpstreamError) and exc.kind == "bad_status" and exc.status is not None
        and 400 <= exc.status < 500 and exc.status not in (408, 425, 429)
    )


def describe(exc: BaseException) -> str:
    if isinstance(exc, UpstreamError):
        reason = exc.detail.get("reason") if isinstance(exc.detail, dict) else None
        return f"{exc.upstream} {exc.kind}" + (f" ({reason})" if reason else "")
    return f"{exc.__class__.__name__}: {exc}"[:500]


@dataclass
class Dispatcher:
    """Claims and delivers outbox messages; also runs periodic housekeeping tasks."""

    db: Database
    kinds: dict[str, Kind]
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    threads: int = 4
    periodic: list[tuple[float, Callable[[], Any]]] = field(default_factory=list)
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")

    def __post_init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="outbox")
        self._last_run: dict[int, float] = {}

    # ------------------------------------------------------------------ steps

    def claim(self, limit: int | None = None) -> list[OutboxMessage]:
        """Lease up to ``limit`` due messages to this dispatcher (own transaction).

        The statements are built once (:func:`_claim_statements`); see there for how.
        """
        now = utcnow()
        values = {
            "claim_now": now, "claim_window": CLAIM_WINDOW,
            # Never more than can be delivered at once: a lease must not run out while
            # its message waits for a free thread.
            "claim_limit": limit or self.threads,
            "lease_owner": self.owner, "lease_until": now + timedelta(seconds=self.policy.lease_seconds),
        }
        rows: list = []
        if not self.db.is_sqlite:
            # One statement a search: the lease is taken on the rows its subquery locked
            # (SKIP LOCKED: concurrent dispatchers never take the same one).
            with self.db.statement() as connection:
                for search in _CLAIM_PG:
                    rows = connection.execute(search, values).all()
                    if rows:
                        break
        else:
            with self.db.transaction(immediate=True) as connection:  # BEGIN IMMEDIATE serialises claims
                for search in _CLAIM_SEARCHES:
                    ids = list(connection.execute(search, values).scalars())
                    if ids:
                        connection.execute(_LEASE.where(_outbox.c.id.in_(ids)), values)
                        rows = connection.execute(select(_outbox).where(_outbox.c.id.in_(ids))).all()
                        break
        return sorted((OutboxMessage(**row._mapping) for row in rows), key=lambda m: m.id)

    def deliver(self, message: OutboxMessage) -> str:
        """Deliver one claimed message and record the outcome; returns the new status."""
        kind = self.kinds.get(message.kind)
        started = time.perf_counter()
        try:
            if kind is None:
                raise PermanentDeliveryError(f"no handler for message kind {message.kind!r}")
            kind.deliver(message)
        except SkipDelivery as exc:
            return self._record_end(message, CANCELLED, f"not needed: {exc}", kind)
        except Exception as exc:  # noqa: BLE001 - every failure is recorded, none escapes
            reason = describe(exc)
            if is_permanent(exc) or message.attempts >= self.policy.max_attempts:
                log.warning(
                    "giving up on %s message %s after %d attempts: %s", message.kind, message.id,
                    message.attempts, reason,
                    extra={"event": "outbox_give_up", "message_id": message.id, "kind": message.kind,
                           "attempts": message.attempts},
                )
                return self._record_end(message, FAILED, reason, kind)
            self._record_retry(message, reason)
            log.info(
                "delivery of %s message %s failed (attempt %d): %s", message.kind, message.id,
                message.attempts, reason,
                extra={"event": "outbox_retry", "message_id": message.id, "kind": message.kind,
                       "attempts": message.attempts},
            )
            return PENDING
        status = self._record_end(message, DELIVERED, None, kind)
        log.info(
            "delivered %s message %s", message.kind, message.id,
            extra={"event": "outbox_delivered", "message_id": message.id, "kind": message.kind,
                   "attempts": message.attempts,
                   "duration_ms": round((time.perf_counter() - started) * 1000, 2)},
        )
        return status

    def run_once(self) -> int:
        """One cycle: periodic tasks that are due, then one claimed batch. Returns messages handled."""
        self._run_periodic()
        messages = self.claim()
        if not messages:
            return 0
        list(self._pool.map(self._deliver_safely, messages))
        return len(messages)

    def run_forever(self, stop: threading.Event, *, interval: float = 0.5) -> None:
        """Deliver until ``stop`` is set; a busy cycle goes straight on, an idle one waits."""
        log.info("dispatcher %s started", self.owner, extra={"event": "dispatcher_start"})
        while not stop.is_set():
            try:
                handled = self.run_once()
            except DatabaseUnavailableError:
                log.warning("database unavailable; dispatcher retrying", extra={"event": "dispatcher_db_down"})
                handled = 0
                stop.wait(min(5.0, interval * 4))
            except Exception:  # noqa: BLE001 - the loop must survive anything
                log.exception("dispatcher cycle failed", extra={"event": "dispatcher_error"})
                handled = 0
                stop.wait(interval)
            if not handled:
                stop.wait(interval)
        log.info("dispatcher %s stopped", self.owner, extra={"event": "dispatcher_stop"})

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    # ------------------------------------------------------------------ internals

    def _deliver_safely(self, message: OutboxMessage) -> str | None:
        try:
            return self.deliver(message)
        except OrchestratorError:
            # Recording failed (database down): the lease expires and it is tried again.
            log.warning("could not record delivery of message %s", message.id,
                        extra={"event": "outbox_record_failed", "message_id": message.id})
        except Exception:  # noqa: BLE001 - the lease expires and the message is tried again
            log.exception("could not record delivery of message %s", message.id,
                          extra={"event": "outbox_record_failed", "message_id": message.id})
        return None

    def _run_periodic(self) -> None:
        now = time.monotonic()
        for index, (every, task) in enumerate(self.periodic):
            if now - self._last_run.get(index, -1e9) >= every:
                self._last_run[index] = now
                try:
                    task()
                except Exception:  # noqa: BLE001
                    log.exception("periodic task failed", extra={"event": "dispatcher_task_error"})

    def _record_retry(self, message: OutboxMessage, reason: str) -> None:
        due = utcnow() + timedelta(seconds=self.policy.delay_after(message.attempts))
        with self.db.scope() as session:
            session.connection().execute(
                update(_outbox)
                .where(and_(_outbox.c.id == message.id, _outbox.c.status == PENDING,
                            _outbox.c.lease_owner == self.owner))
                .values(next_attempt_at=due, last_error=reason, lease_owner=None, lease_expires_at=None)
            )

    def _record_end(self, message: OutboxMessage, status: str, reason: str | None, kind: Kind | None) -> str:
        now = utcnow()
        if status == DELIVERED:
            return self._record_delivered(message, kind, now)
        with self.db.scope() as session:
            connection = session.connection()
            _lock_hint_request(connection, message)
            # Only the lease holder may end a message unsuccessfully; a delivery, by
            # whoever made it, always counts (_record_delivered).
            changed = connection.execute(
                update(_outbox)
                .where(and_(_outbox.c.id == message.id, _outbox.c.status == PENDING,
                            _outbox.c.lease_owner == self.owner))
                .values(status=status, last_error=reason, lease_owner=None, lease_expires_at=None)
            ).rowcount
            if not changed:
                return status  # someone else finished it (expired lease taken over); nothing more to do
            if status == FAILED:
                connection.execute(
                    update(_outbox)
                    .where(and_(_outbox.c.ordering_key == message.ordering_key,
                                _outbox.c.id > message.id, _outbox.c.status == PENDING))
                    .values(status=CANCELLED, last_error=f"message {message.id} before it failed")
                )
                if kind is not None and kind.on_give_up is not None:
                    kind.on_give_up(session, message, reason or "delivery failed", now)
        return status

    def _record_delivered(self, message: OutboxMessage, kind: Kind | None, now: datetime) -> str:
        """The common outcome, in Core: a delivery counts whoever made it."""
        with self.db.transaction() as connection:
            _lock_hint_request(connection, message)
            changed = connection.execute(_MARK_DELIVERED, {"done_id": message.id, "done_at": now}).rowcount
            if changed and kind is not None and kind.on_delivered is not None:
                kind.on_delivered(connection, message, now)
        return DELIVERED


def _lock_hint_request(connection: Connection, message: OutboxMessage) -> None:
    """Lock the message's hint request before the message: the lock order is always hint
    request, then its messages (as in save_result and fail_request), so they never deadlock.
    (SQLite: the write lock of the transaction serialises them anyway.)"""
    if message.hint_request_id is not None and connection.dialect.name == "postgresql":
        connection.execute(_LOCK_HINT_REQUEST, {"lock_id": message.hint_request_id})


def _claim_statements():
    """The claim's searches, built once (building them cost more than running them).

    A message is claimable when it is pending, due, not leased (or its lease ran out)
    and no earlier message of its ordering key is still pending. The first search
    looks only among the oldest pending messages: left to itself, PostgreSQL (whose
    statistics lag behind a burst) tested every pending message against the ordering
    condition and then sorted them, 20 ms a claim at 7,000 pending. Only when none of
    those is claimable (all waiting out a backoff, say) does the second search the
    whole queue, so a newer message is never starved.
    """
    now = bindparam("claim_now", type_=_outbox.c.next_attempt_at.type)
    # "No earlier pending message of its key" as "the first pending message of its
    # key": a scalar subquery stays a per-candidate index lookup, where NOT EXISTS
    # became a join that, on stale statistics, read every pending message per candidate.
    same_key = _outbox.alias("same_key")
    first_of_key = (
        select(func.min(same_key.c.id))
        .where(and_(same_key.c.ordering_key == _outbox.c.ordering_key, same_key.c.status == PENDING))
        .scalar_subquery()
    )
    claimable = and_(
        _outbox.c.status == PENDING,
        _outbox.c.next_attempt_at <= now,
        or_(_outbox.c.lease_expires_at.is_(None), _outbox.c.lease_expires_at <= now),
        _outbox.c.id == first_of_key,
    )
    # A derived table with a LIMIT is never flattened: the oldest pending ids come
    # first, and only they are joined and tested, whatever the planner's estimates.
    oldest = select(_outbox.c.id).where(_outbox.c.status == PENDING).order_by(_outbox.c.id) \
        .limit(bindparam("claim_window")).subquery("oldest")
    query = select(_outbox.c.id).where(claimable).order_by(_outbox.c.id).limit(bindparam("claim_limit"))
    searches = (query.select_from(oldest.join(_outbox, _outbox.c.id == oldest.c.id)), query)
    lease = update(_outbox).values(
        lease_owner=bindparam("lease_owner"),
        lease_expires_at=bindparam("lease_until", type_=_outbox.c.lease_expires_at.type),
        attempts=_outbox.c.attempts + 1,
        last_attempt_at=now,
    )
    on_postgresql = tuple(
        lease.where(_outbox.c.id.in_(
            search.with_for_update(skip_locked=True, of=_outbox).correlate(None).scalar_subquery()
        )).returning(*_outbox.c)
        for search in searches
    )
    return searches, lease, on_postgresql


_CLAIM_SEARCHES, _LEASE, _CLAIM_PG = _claim_statements()

# Built once: the dispatcher runs these for every message it delivers.
_LOCK_HINT_REQUEST = select(_hint_requests.c.id).where(_hint_requests.c.id == bindparam("lock_id")).with_for_update()
_MARK_DELIVERED = (
    update(_outbox).where(and_(_outbox.c.id == bindparam("done_id"), _outbox.c.status == PENDING))
    .values(status=DELIVERED, last_error=None, lease_owner=None, lease_expires_at=None,
            delivered_at=bindparam("done_at", type_=_outbox.c.delivered_at.type))
)


# ---------------------------------------------------------------------- operator views


def list_messages(session: Session, *, statuses: tuple[str, ...] = (PENDING, FAILED), limit: int = 100
                  ) -> list[OutboxMessage]:
    query = select(OutboxMessage).where(OutboxMessage.status.in_(statuses)).order_by(OutboxMessage.id).limit(limit)
    return list(session.exec(query).scalars())


def messages_for_hint(session: Session, hint_request_id: int) -> list[OutboxMessage]:
    query = select(OutboxMessage).where(OutboxMessage.hint_request_id == hint_request_id).order_by(OutboxMessage.id)
    return list(session.exec(query).scalars())


def counts(session: Session) -> dict[str, int]:
    from sqlalchemy import func

    rows = session.connection().execute(select(_outbox.c.status, func.count()).group_by(_outbox.c.status))
    result = {status: 0 for status in STATUSES}
    result.update({status: count for status, count in rows})
    return result


def requeue(session: Session, message_id: int) -> list[int]:
    """Make a failed (or cancelled) message and the messages cancelled after it due again.

    Returns the ids re-queued. Raises NotFoundError / ConflictError.
    """
    from orchestrator.errors import ConflictError, NotFoundError

    message = session.get(OutboxMessage, message_id)
    if message is None:
        raise NotFoundError(f"No outbox message with id {message_id}")
    if message.status not in (FAILED, CANCELLED):
        raise ConflictError(f"Message {message_id} is {message.status}; only failed or cancelled messages can be retried")
    later = session.exec(
        select(OutboxMessage).where(and_(OutboxMessage.ordering_key == message.ordering_key,
                                         OutboxMessage.id > message.id,
                                         OutboxMessage.status == CANCELLED))
    ).scalars()
    requeued = []
    for item in [message, *later]:
        item.status, item.attempts, item.next_attempt_at = PENDING, 0, utcnow()
        item.lease_owner = item.lease_expires_at = None
        item.last_error = None
        session.add(item)
        requeued.append(item.id)
    return requeued
