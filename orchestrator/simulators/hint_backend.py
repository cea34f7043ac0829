"""AI Hint backend simulator: accepts hint work and calls the orchestrator back.

Paths are those of the old deployment (``http://backend-hint:8001``):

``POST /ai_hint/add_request/``
    ``{"request_id": int, "type": "add_request", "data": {problem_id,
    student_program, hint_type, student_notebook?}}`` → ``200 {"status": "ok"}``.
    ``hint_type`` is one of plan, debug, optimize; ``student_notebook`` may be
    absent, null or an object.
``POST /ai_hint/add_reflection/``
    ``{"request_id": int, "type": "add_reflection", "data":
    {reflection_question, reflection_answer}}`` → ``200 {"status": "ok"}``.

Malformed bodies (not an object, a missing or ill-typed field, a wrong
``type``, an unknown hint type) get ``400 {"error": ...}``. Fields beyond
those listed are accepted and counted in ``/_sim/stats`` (``unexpected_fields``).

The simulator records two mistakes the orchestrator must never make: a
reflection that arrives before its request (``out_of_order``) and the same
message delivered twice (``duplicates``, per request id). Both are still
answered 200, the way a lenient real backend would, so that only the stats
tell. A duplicate never triggers a second callback.

Callback: with ``callback_when="reflection"`` (the default, the real
backend's flow) the hint is "generated" once both the request and its
reflection have arrived; with ``callback_when="request"`` the request alone is
enough. After ``hint_delay`` seconds the result is POSTed to ``callback_url``::

    {"request_id": 7, "hint": "...", "job_finished_successfully": true,
     "generation_error_message": null,
     "other_hint_data": {"model": "simulator", ...}}

With probability ``generation_failure_rate`` it is a failure instead
(``hint: null``, ``job_finished_successfully: false`` and a
``generation_error_message``). With ``callback_token`` set, the POST carries
``Authorization: Bearer <token>``. Connection errors, timeouts and 5xx answers
are retried with a doubling backoff (``callback_backoff`` up to
``callback_backoff_max``) for at most ``callback_attempts`` attempts; any 2xx,
3xx or 4xx answer ends the delivery (a 409 is a final answer).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Mapping

import falcon
import requests

from .common import Simulator, bad_request, json_object, option_number, require

ADD_REQUEST_PATH = "/ai_hint/add_request/"
ADD_REFLECTION_PATH = "/ai_hint/add_reflection/"
DEFAULT_CALLBACK_URL = "http://127.0.0.1:8000/ai_hint/save/"
HINT_TYPES = ("plan", "debug", "optimize")
CALLBACK_WHEN = ("reflection", "request")

RECEIVED_KEPT = 1000
"""How many received messages and callback records ``/_sim/stats`` keeps (newest)."""

GENERATION_ERROR = "simulated hint generation failure"


def compose_hint(hint_type: str, problem_id: str, student_program: str) -> str:
    """The simulator's "generated" hint: the same inputs always give the same text."""
    lines = len([line for line in student_program.splitlines() if line.strip()])
    advice = {
        "plan": (
            "Split the task into steps: read the input, compute the answer in a "
            "small function, then print it. Write each step as a comment first."
        ),
        "debug": (
            f"Run your {lines}-line program on the example input and compare its "
            "output line by line with the expected output; check how the input is "
            "read and converted."
        ),
        "optimize": (
            "Look for work repeated inside loops and for lists built only to be "
            "scanned once; a single pass over the input is usually enough."
        ),
    }[hint_type]
    return f"[simulated {hint_type} hint for problem {problem_id}] {advice}"


@dataclass
class _Job:
    request_id: int
    request: dict[str, Any] | None = None
    reflection: dict[str, Any] | None = None
    scheduled: bool = False


class HintBackend(Simulator):
    """The AI Hint backend simulator as a WSGI app (serve it with ``server.py``).

    Args:
        callback_url: where results are POSTed (the orchestrator's ``/ai_hint/save/``).
        callback_token: if set, sent as ``Authorization: Bearer <token>``.
        hint_delay: seconds between "ready to generate" and the first callback attempt.
        generation_failure_rate: share (0..1) of hints that fail to generate.
        callback_when: "reflection" (request and reflection needed) or "request".
        callback_attempts: attempts per callback before giving up.
        callback_backoff, callback_backoff_max: first retry wait and its cap (doubling).
        callback_timeout: read timeout of one callback attempt, in seconds.
        seed: seed for the generation-failure draws (deterministic tests).
        faults: initial fault settings (a ``Faults`` or a mapping of its fields).
    """

    name = "AI Hint backend"

    def __init__(
        self,
        *,
        callback_url: str = DEFAULT_CALLBACK_URL,
        callback_token: str | None = None,
        hint_delay: float = 1.0,
        generation_failure_rate: float = 0.0,
        callback_when: str = "reflection",
        callback_attempts: int = 8,
        callback_backoff: float = 0.2,
        callback_backoff_max: float = 5.0,
        callback_timeout: float = 10.0,
        seed: int | None = None,
        faults: Any = None,
    ) -> None:
        self._lock = threading.Condition()
        self._random = random.Random(seed)
        self._closed = threading.Event()
        self._options: dict[str, Any] = {}
        self._jobs: dict[int, _Job] = {}
        self._messages: deque[dict[str, Any]] = deque(maxlen=RECEIVED_KEPT)
        self._received: Counter[str] = Counter()
        self._unexpected: Counter[str] = Counter()
        self._out_of_order: list[int] = []
        self._duplicates: dict[int, Counter[str]] = {}
        self._callbacks: deque[dict[str, Any]] = deque(maxlen=RECEIVED_KEPT)
        self._scheduled = 0
        self._finished = 0
        self._attempts = 0
        self._statuses: Counter[str] = Counter()
        self.configure(
            {
                "callback_url": callback_url,
                "callback_token": callback_token,
                "hint_delay": hint_delay,
                "generation_failure_rate": generation_failure_rate,
                "callback_when": callback_when,
                "callback_attempts": callback_attempts,
                "callback_backoff": callback_backoff,
                "callback_backoff_max": callback_backoff_max,
                "callback_timeout": callback_timeout,
            }
        )
        super().__init__(faults=faults)

    # -- options and stats ---------------------------------------------------

    _OPTION_NAMES = (
        "callback_url",
        "callback_token",
        "hint_delay",
        "generation_failure_rate",
        "callback_when",
        "callback_attempts",
        "callback_backoff",
        "callback_backoff_max",
        "callback_timeout",
    )

    def config(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._options)

    def configure(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(fields) - set(self._OPTION_NAMES))
        if unknown:
            raise ValueError(f"unknown option(s): {', '.join(unknown)}")
        clean: dict[str, Any] = {}
        for name, value in fields.items():
            if name == "callback_url":
                if not isinstance(value, str) or not value.startswith(("http://", "https://")):
                    raise ValueError("callback_url must be an http(s) URL")
            elif name == "callback_token":
                if value is not None and (not isinstance(value, str) or not value):
                    raise ValueError("callback_token must be a non-empty string or null")
            elif name == "callback_when":
                if value not in CALLBACK_WHEN:
                    raise ValueError(f"callback_when must be one of: {', '.join(CALLBACK_WHEN)}")
            elif name == "callback_attempts":
                if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
                    raise ValueError("callback_attempts must be an integer between 1 and 100")
            elif name == "generation_failure_rate":
                value = option_number(name, value, low=0, high=1)
            elif name == "callback_timeout":
                value = option_number(name, value, low=0.01, high=600)
            else:  # hint_delay, callback_backoff, callback_backoff_max
                value = option_number(name, value, low=0, high=3600)
            clean[name] = value
        with self._lock:
            self._options.update(clean)
            return dict(self._options)

    def received_stats(self) -> dict[str, Any]:
        with self._lock:
            by_id = {
                str(request_id): {kind: counts.get(kind, 0) for kind in ("add_request", "add_reflection")}
                for request_id, counts in self._duplicates.items()
            }
            return {
                "received": {
                    "add_request": self._received["add_request"],
                    "add_reflection": self._received["add_reflection"],
                    "messages": [dict(m) for m in self._messages],
                    "unexpected_fields": dict(self._unexpected),
                },
                "out_of_order": {"count": len(self._out_of_order), "request_ids": list(self._out_of_order)},
                "duplicates": {
                    "count": sum(sum(c.values()) for c in self._duplicates.values()),
                    "by_request_id": by_id,
                },
                "callbacks": {
                    "scheduled": self._scheduled,
                    "pending": self._scheduled - self._finished,
                    "sent": self._finished,
                    "attempts": self._attempts,
                    "statuses": dict(self._statuses),
                    "log": [dict(c) for c in self._callbacks],
                },
            }

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every scheduled callback has finished; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: self._scheduled == self._finished, timeout)

    def close(self) -> None:
        self._closed.set()

    # -- routes ----------------------------------------------------------------

    def add_routes(self, app: falcon.App) -> None:
        app.add_route(ADD_REQUEST_PATH, _MessageResource(self, "add_request"))
        app.add_route(ADD_REFLECTION_PATH, _MessageResource(self, "add_reflection"))

    def receive(self, kind: str, body: Mapping[str, Any]) -> None:
        """Validate and record one message; schedule the callback when it is due.

        Raises:
            falcon.HTTPBadRequest: the message is malformed.
        """
        request_id, data = self._validate(kind, body)
        extra = [name for name in body if name not in ("request_id", "type", "data")]
        extra += [f"data.{name}" for name in data if name not in _DATA_FIELDS[kind]]
        with self._lock:
            self._received[kind] += 1
            self._unexpected.update(extra)
            self._messages.append({"type": kind, "request_id": request_id, "data": data})
            job = self._jobs.setdefault(request_id, _Job(request_id))
            slot = "request" if kind == "add_request" else "reflection"
            if getattr(job, slot) is not None:
                self._duplicates.setdefault(request_id, Counter())[kind] += 1
                return
            if kind == "add_reflection" and job.request is None:
                self._out_of_order.append(request_id)
            setattr(job, slot, data)
            due = job.request is not None and (
                self._options["callback_when"] == "request" or job.reflection is not None
            )
            if not due or job.scheduled:
                return
            job.scheduled = True
            self._scheduled += 1
            delay = self._options["hint_delay"]
        threading.Thread(
            target=self._run_callback,
            args=(request_id, delay),
            name=f"sim-hint-callback-{request_id}",
            daemon=True,
        ).start()

    @staticmethod
    def _validate(kind: str, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        request_id = require(body, "request_id", int)
        message_type = require(body, "type", str)
        if message_type != kind:
            raise bad_request(f'type must be "{kind}"')
        data = require(body, "data", dict)
        if kind == "add_request":
            require(data, "problem_id", str, "data")
            require(data, "student_program", str, "data")
            hint_type = require(data, "hint_type", str, "data")
            if hint_type not in HINT_TYPES:
                raise bad_request(f"data.hint_type must be one of: {', '.join(HINT_TYPES)}")
            notebook = data.get("student_notebook")
            if notebook is not None and not isinstance(notebook, dict):
                raise bad_request("data.student_notebook must be an object or null")
        else:
            require(data, "reflection_question", str, "data")
            require(data, "reflection_answer", str, "data")
        return request_id, data

    # -- callbacks ---------------------------------------------------------------

    def _run_callback(self, request_id: int, delay: float) -> None:
        record: dict[str, Any] = {"request_id": request_id, "attempts": 0, "status": None, "outcome": "stopped"}
        try:
            if not self._closed.wait(delay):
                self._deliver(request_id, record)
        except Exception as exc:  # noqa: BLE001 - a broken callback must not kill quietly
            record.update(outcome="crashed", error=f"{type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._finished += 1
                self._callbacks.append(record)
                status = record["status"]
                if record["attempts"]:
                    self._statuses["none" if status is None else str(status)] += 1
                self._lock.notify_all()

    def _deliver(self, request_id: int, record: dict[str, Any]) -> None:
        with self._lock:
            job = self._jobs[request_id]
            options = dict(self._options)
            failed = self._random.random() < options["generation_failure_rate"]
        body = self._result_body(job, failed)
        record["job_finished_successfully"] = not failed
        headers = {}
        if options["callback_token"]:
            headers["Authorization"] = f"Bearer {options['callback_token']}"
        wait = options["callback_backoff"]
        while True:
            record["attempts"] += 1
            with self._lock:
                self._attempts += 1
            try:
                response = requests.post(
                    options["callback_url"],
                    json=body,
                    headers=headers,
                    timeout=(5.0, options["callback_timeout"]),
                    allow_redirects=False,
                )
                record["status"] = response.status_code
                response.close()
                if response.status_code < 500:
                    record["outcome"] = "delivered" if response.status_code < 300 else "rejected"
                    return
                record["error"] = f"HTTP {response.status_code}"
            except requests.RequestException as exc:
                record["status"] = None
                record["error"] = f"{type(exc).__name__}: {exc}"
            if record["attempts"] >= options["callback_attempts"]:
                record["outcome"] = "gave_up"
                return
            if self._closed.wait(wait):
                record["outcome"] = "stopped"
                return
            wait = min(wait * 2, options["callback_backoff_max"])

    @staticmethod
    def _result_body(job: _Job, failed: bool) -> dict[str, Any]:
        request = job.request or {}
        hint_type = request.get("hint_type", "plan")
        problem_id = request.get("problem_id", "")
        other = {
            "model": "simulator",
            "hint_type": hint_type,
            "problem_id": problem_id,
            "reflection_received": job.reflection is not None,
            "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if failed:
            return {
                "request_id": job.request_id,
                "hint": None,
                "job_finished_successfully": False,
                "generation_error_message": GENERATION_ERROR,
                "other_hint_data": other,
            }
        return {
            "request_id": job.request_id,
            "hint": compose_hint(hint_type, problem_id, request.get("student_program", "")),
            "job_finished_successfully": True,
            "generation_error_message": None,
            "other_hint_data": other,
        }


_DATA_FIELDS = {
    "add_request": ("problem_id", "student_program", "hint_type", "student_notebook"),
    "add_reflection": ("reflection_question", "reflection_answer"),
}


class _MessageResource:
    def __init__(self, backend: HintBackend, kind: str) -> None:
        self._backend = backend
        self._kind = kind

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._backend.receive(self._kind, json_object(req))
        resp.media = {"status": "ok"}


__all__ = [
    "ADD_REFLECTION_PATH",
    "ADD_REQUEST_PATH",
    "CALLBACK_WHEN",
    "DEFAULT_CALLBACK_URL",
    "HINT_TYPES",
    "HintBackend",
    "compose_hint",
]
