"""What both simulators have in common: JSON errors, body parsing, control routes.

Every simulator is a :class:`Simulator`: a WSGI callable around a Falcon app
that answers errors as ``{"error": "..."}`` (the upstreams' error shape),
applies fault injection to its protocol paths, and serves the control API:

- ``GET/PUT /_sim/faults`` — read or change the fault settings (``faults.py``);
- ``GET/PUT /_sim/config`` — read or change the simulator's own options;
- ``GET /_sim/stats`` — request and fault counts plus what the simulator received.

Nothing here (or anywhere in ``orchestrator.simulators``) imports the rest of
the orchestrator package: the simulators must not share the code they test.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Iterable, Mapping

import falcon

from .faults import FaultInjector, Faults, RequestStats, droppable


def serialize_error(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError) -> None:
    """Render every Falcon error as ``{"error": "<sentence>"}`` in JSON."""
    resp.content_type = falcon.MEDIA_JSON
    resp.data = json.dumps({"error": exc.description or exc.title}).encode()


def bad_request(message: str) -> falcon.HTTPBadRequest:
    return falcon.HTTPBadRequest(description=message)


def not_found(message: str) -> falcon.HTTPNotFound:
    return falcon.HTTPNotFound(description=message)


def json_object(req: falcon.Request) -> dict[str, Any]:
    """Return the request body, which must be a JSON object.

    Raises:
        falcon.HTTPBadRequest: empty body, malformed JSON, or not an object.
    """
    try:
        body = req.get_media()
    except falcon.MediaNotFoundError:
        raise bad_request("request body must be a JSON object") from None
    except falcon.MediaMalformedError:
        raise bad_request("request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object")
    return body


def require(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str = "") -> Any:
    """Return ``obj[key]`` if present and of type ``kind`` (bools are not ints).

    Raises:
        falcon.HTTPBadRequest: naming the missing or ill-typed field.
    """
    label = f"{where}.{key}" if where else key
    if key not in obj:
        raise bad_request(f"missing field: {label}")
    value = obj[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise bad_request(f"{label} must be {_type_names(kinds)}")
    if not isinstance(value, kinds):
        raise bad_request(f"{label} must be {_type_names(kinds)}")
    return value


def _type_names(kinds: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", dict: "an object", float: "a number", bool: "a boolean"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def option_number(name: str, value: Any, *, low: float, high: float) -> float:
    """Validate a numeric option for ``PUT /_sim/config``.

    Raises:
        ValueError: not a number (bools excluded), or outside ``[low, high]``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}")
    return float(value)


class _FaultsResource:
    def __init__(self, faults: Faults) -> None:
        self._faults = faults

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self._faults.as_dict()

    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            self._faults.update(json_object(req))
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        resp.media = self._faults.as_dict()


class _ConfigResource:
    def __init__(self, simulator: "Simulator") -> None:
        self._simulator = simulator

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self._simulator.config()

    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            resp.media = self._simulator.configure(json_object(req))
        except ValueError as exc:
            raise bad_request(str(exc)) from None


class _StatsResource:
    def __init__(self, simulator: "Simulator") -> None:
        self._simulator = simulator

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self._simulator.stats()


class Simulator:
    """Base class: a WSGI app with JSON errors, fault injection and control routes.

    Subclasses add their protocol routes in :meth:`add_routes`, report what they
    received in :meth:`received_stats`, and expose their options through
    :meth:`config` / :meth:`configure`. :meth:`close` stops background work.
    """

    name = "simulator"

    def __init__(self, *, faults: Faults | Mapping[str, Any] | None = None) -> None:
        self.faults = Faults.coerce(faults)
        self.request_stats = RequestStats()
        app = falcon.App(middleware=[FaultInjector(self.faults, self.request_stats)])
        app.set_error_serializer(serialize_error)
        app.add_route("/_sim/faults", _FaultsResource(self.faults))
        app.add_route("/_sim/config", _ConfigResource(self))
        app.add_route("/_sim/stats", _StatsResource(self))
        self.add_routes(app)
        self.app = app
        self._wsgi = droppable(app)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        return self._wsgi(environ, start_response)

    def add_routes(self, app: falcon.App) -> None:
        raise NotImplementedError

    def received_stats(self) -> dict[str, Any]:
        return {}

    def config(self) -> dict[str, Any]:
        return {}

    def configure(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Replace the given options and return all of them.

        Raises:
            ValueError: an unknown option or a bad value; nothing changes then.
        """
        if fields:
            raise ValueError(f"unknown option(s): {', '.join(sorted(fields))}")
        return self.config()

    def stats(self) -> dict[str, Any]:
        return {**self.request_stats.as_dict(), **self.received_stats()}

    def close(self) -> None:
        """Stop background work; the simulator answers nothing useful afterwards."""
