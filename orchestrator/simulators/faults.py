"""Fault injection for the simulators.

A :class:`Faults` object holds what should go wrong, and how often:

``latency``
    seconds to wait before answering (every request).
``error_rate``
    share of requests (0..1) answered ``500 {"error": "simulated failure"}``.
``non_json_rate``
    share of requests answered ``200`` with an HTML body that is not JSON, the
    way a misconfigured proxy or an error page would answer.
``refuse_rate``
    share of requests whose connection is closed without any answer; an HTTP
    client sees the connection drop (``requests`` raises ``ConnectionError``).
``seed``
    optional seed for the random draws, so that a sequence of faults repeats
    exactly; setting it again restarts the sequence.

:class:`FaultInjector` is the Falcon middleware that applies a ``Faults`` to
every request except the simulator's own control paths (``/_sim/...``), and
counts what it did in a :class:`RequestStats`.

Dropping a connection cannot be expressed inside Falcon (it always answers),
so the middleware only marks the request; :func:`droppable` wraps the WSGI
application and turns the mark into :class:`ConnectionDropped`, an exception
that the bundled wsgiref server (see ``server.py``) ends by closing the socket
without writing a byte.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Mapping

import falcon

CONTROL_PREFIX = "/_sim/"
"""Paths under this prefix are never delayed, failed or counted."""

DROP_KEY = "orchestrator.simulators.drop_connection"
"""WSGI environ key that marks a request whose connection must be dropped."""

NON_JSON_BODY = (
    "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>"
    "<body><h1>Bad Gateway</h1><p>simulated non-JSON answer</p></body></html>\n"
)

_RATES_IN_ORDER = ("refuse", "error", "non_json")
"""Fault kinds in the order their rates are drawn."""


class ConnectionDropped(ConnectionAbortedError):
    """Raised out of the WSGI app to make the server hang up without answering.

    wsgiref's handler treats ``ConnectionAbortedError`` as "the peer went away"
    and returns without writing anything, after which the socket is closed.
    """


@dataclass(frozen=True)
class FaultConfig:
    """A snapshot of the fault settings (what ``GET /_sim/faults`` answers)."""

    latency: float = 0.0
    error_rate: float = 0.0
    non_json_rate: float = 0.0
    refuse_rate: float = 0.0
    seed: int | None = None


def validate_fault_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Check a partial fault configuration and return it with floats normalised.

    Raises:
        ValueError: an unknown field, a value of the wrong type, or out of range.
    """
    known = set(FaultConfig.__dataclass_fields__)
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"unknown fault field(s): {', '.join(unknown)}")
    clean: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "seed":
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise ValueError("seed must be an integer or null")
            clean[name] = value
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number")
        value = float(value)
        if name == "latency":
            if not 0.0 <= value <= 600.0:
                raise ValueError("latency must be between 0 and 600 seconds")
        elif not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1")
        clean[name] = value
    return clean


class Faults:
    """Thread-safe, changeable fault settings plus the random source they draw from."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        error_rate: float = 0.0,
        non_json_rate: float = 0.0,
        refuse_rate: float = 0.0,
        seed: int | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._config = FaultConfig()
        self._random = random.Random(seed)
        self.update(
            latency=latency,
            error_rate=error_rate,
            non_json_rate=non_json_rate,
            refuse_rate=refuse_rate,
            seed=seed,
        )

    @classmethod
    def coerce(cls, value: "Faults | Mapping[str, Any] | None") -> "Faults":
        """Accept a ``Faults``, a mapping of fields, or None (no faults)."""
        if isinstance(value, Faults):
            return value
        return cls(**dict(value or {}))

    def snapshot(self) -> FaultConfig:
        with self._lock:
            return self._config

    def as_dict(self) -> dict[str, Any]:
        return asdict(self.snapshot())

    def update(self, fields: Mapping[str, Any] | None = None, /, **more: Any) -> FaultConfig:
        """Replace the given fields, keep the others, and return the new settings.

        Passing ``seed`` (even the same value again) restarts the random sequence.

        Raises:
            ValueError: see :func:`validate_fault_fields`; nothing changes then.
        """
        clean = validate_fault_fields({**dict(fields or {}), **more})
        with self._lock:
            self._config = FaultConfig(**{**asdict(self._config), **clean})
            if "seed" in clean:
                self._random = random.Random(clean["seed"])
            return self._config

    def draw(self) -> tuple[float, str | None]:
        """Decide the fate of one request: ``(latency, fault)``.

        ``fault`` is ``"refuse"``, ``"error"``, ``"non_json"`` or None. Each rate
        is an independent draw, checked in that order, so a rate of 1 always
        wins over the ones after it.
        """
        with self._lock:
            config = self._config
            for name in _RATES_IN_ORDER:
                rate = getattr(config, f"{name}_rate")
                # NOTE: draw even for rate 0 so that changing one rate does not
                # shift the sequence the other rates see for a given seed.
                if self._random.random() < rate:
                    return config.latency, name
            return config.latency, None



class RequestStats:
    """Counts of requests per path and of injected faults (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paths: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()

    def count_request(self, path: str) -> None:
        with self._lock:
            self._paths[path] += 1

    def count_fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            faults = {kind: self._faults.get(kind, 0) for kind in ("latency", *_RATES_IN_ORDER)}
            return {"requests": dict(self._paths), "faults": faults}


class FaultInjector:
    """Falcon middleware: count each request and apply the current faults to it."""

    def __init__(
        self,
        faults: Faults,
        stats: RequestStats,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._faults = faults
        self._stats = stats
        self._sleep = sleep

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.path.startswith(CONTROL_PREFIX):
            return
        self._stats.count_request(req.path)
        latency, fault = self._faults.draw()
        if latency > 0:
            self._stats.count_fault("latency")
            self._sleep(latency)
        if fault is None:
            return
        self._stats.count_fault(fault)
        if fault == "refuse":
            req.env[DROP_KEY] = True
            resp.status = falcon.HTTP_500  # never sent; the connection is dropped
        elif fault == "error":
            resp.status = falcon.HTTP_500
            resp.media = {"error": "simulated failure"}
        else:
            resp.status = falcon.HTTP_200
            resp.content_type = "text/html; charset=utf-8"
            resp.text = NON_JSON_BODY
        resp.complete = True


def droppable(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """Wrap a WSGI app so that requests marked by :class:`FaultInjector` hang up."""

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        result = app(environ, start_response)
        if environ.get(DROP_KEY):
            close = getattr(result, "close", None)
            if close is not None:
                close()
            raise ConnectionDropped("simulated refused connection")
        return result

    return wsgi


__all__ = [
    "CONTROL_PREFIX",
    "ConnectionDropped",
    "FaultConfig",
    "FaultInjector",
    "Faults",
    "RequestStats",
    "droppable",
    "validate_fault_fields",
]
