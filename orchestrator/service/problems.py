"""The problem catalog, proxied from the Problem Handler through a short-TTL cache."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from orchestrator.clients.problem_handler import ProblemHandlerClient
from orchestrator.errors import UpstreamError, UpstreamRejectedError


class CatalogCache:
    """A small, thread-safe TTL cache of catalog answers, keyed by the exact query.

    The catalog is the same for every student, so each instance may keep it for a
    few seconds; instances never share it and only successful answers are kept, so
    the worst case is a catalog change showing up ``ttl`` seconds late on some
    instances. A TTL of 0 turns caching off.
    """

    def __init__(self, ttl: float, *, max_entries: int = 256, clock: Callable[[], float] = time.monotonic):
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_load(self, key: str, load: Callable[[], Any]) -> Any:
        if self._ttl <= 0:
            return load()
        now = self._clock()
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
        value = load()
        with self._lock:
            self._entries[key] = (self._clock() + self._ttl, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def get_catalog(*, client: ProblemHandlerClient, cache: CatalogCache, query_string: str = "") -> Any:
    """The catalog answer for this exact query string (list, or one problem with ``problem_id``).

    Raises:
        UpstreamRejectedError: the Problem Handler answered 4xx (e.g. 404 unknown problem).
        UpstreamError: it could not be reached, timed out, failed or answered nonsense.
    """
    try:
        return cache.get_or_load(query_string, lambda: client.catalog(query_string))
    except UpstreamError as exc:
        raise passthrough(exc) from exc


def problem_summary(
    *, client: ProblemHandlerClient, cache: CatalogCache, problem_id: str
) -> tuple[str, str | None]:
    """``(name, task_description)`` of a problem, or ``(problem_id, None)`` when the
    catalog cannot say (unreachable, unknown problem): callers degrade gracefully."""
    from urllib.parse import urlencode

    try:
        problem = get_catalog(
            client=client, cache=cache,
            query_string=urlencode({"problem_id": problem_id, "include_description": "true"}),
        )
    except (UpstreamError, UpstreamRejectedError):
        return problem_id, None
    if not isinstance(problem, dict):
        return problem_id, None
    name = problem.get("name") if isinstance(problem.get("name"), str) else problem_id
    description = problem.get("task_description")
    return name, description if isinstance(description, str) else None


def upstream_error_text(exc: UpstreamError) -> str | None:
    body = exc.upstream_body
    if isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"].strip():
        return body["error"].strip()[:500]
    return None


def passthrough(exc: UpstreamError) -> Exception:
    """A Problem Handler failure as our caller should see it.

    Its 4xx answers (unknown problem, unknown execution) keep their status and
    message; its 5xx answers keep their message but become a 502; everything
    else stays as it is (502, or 504 for a timeout).
    """
    text = upstream_error_text(exc)
    if exc.kind == "bad_status" and exc.status is not None and 400 <= exc.status < 500:
        return UpstreamRejectedError(
            text or f"The problem service refused the request (HTTP {exc.status})",
            status=exc.status,
            detail={"upstream": exc.upstream, "upstream_status": exc.status},
        )
    if exc.kind == "bad_status" and text:
        error = UpstreamError(
            f"The problem service reported an error: {text}",
            upstream=exc.upstream, kind=exc.kind, status=exc.status, upstream_body=exc.upstream_body,
            detail={"upstream": exc.upstream, "upstream_status": exc.status},
        )
        return error
    return exc
