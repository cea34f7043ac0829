"""The one chokepoint every upstream HTTP call goes through.

Each client owns a pooled ``requests.Session`` and calls with a ``(connect, read)``
timeout. Idempotent calls (GETs) are retried by tenacity with exponential backoff and
jitter on connection errors, timeouts and 502/503/504 (honouring ``Retry-After``);
POSTs are never retried here (the outbox retries hint deliveries, and a repeated
program execution would run twice). Every failure becomes one
:class:`~orchestrator.errors.UpstreamError` with a ``kind``, and every attempt is
logged with its duration and outcome (never its body).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from orchestrator import metrics
from orchestrator.errors import UpstreamError

log = logging.getLogger("orchestrator.upstream")

RETRYABLE_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently idempotent calls are retried."""

    retries: int = 2
    backoff_base: float = 0.2
    backoff_max: float = 2.0

    @classmethod
    def none(cls) -> "RetryPolicy":
        return cls(retries=0)


@dataclass(frozen=True)
class UpstreamResponse:
    status: int
    body: Any
    elapsed_ms: float


def is_transient(exc: BaseException) -> bool:
    """Worth another try for an idempotent call."""
    if not isinstance(exc, UpstreamError):
        return False
    if exc.kind in ("unreachable", "timeout"):
        return True
    return exc.kind == "bad_status" and exc.status in RETRYABLE_STATUSES


class BaseClient:
    """Shared behaviour of the upstream clients; subclasses name their upstream."""

    upstream = "upstream"

    def __init__(
        self,
        *,
        connect_timeout: float,
        read_timeout: float,
        retry: RetryPolicy | None = None,
        pool_size: int = 10,
        session: requests.Session | None = None,
    ) -> None:
        self._timeout = (connect_timeout, read_timeout)
        self._retry = retry or RetryPolicy()
        self._session = session or requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._adapter = adapter
        self._session.headers.update({"Accept": "application/json", "User-Agent": "orchestrator"})
        # With trust_env, requests reads the proxy variables again on every call (profiled:
        # most of a proxied call's own CPU time, walking os.environ). Read them once per
        # upstream host instead (_proxies_for), and the CA bundle variables once here.
        self._session.trust_env = False
        self._proxies: dict[str, dict[str, str]] = {}
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            self._session.verify = bundle

    def close(self) -> None:
        self._session.close()

    def get_json(self, url: str, *, params: Any = None, headers: dict | None = None) -> UpstreamResponse:
        """GET with retries of transient failures.

        Raises:
            UpstreamError: unreachable, timeout, bad_status (any non-2xx), non_json.
        """
        # The first attempt runs outside tenacity: it almost always succeeds, and on the
        # hot polling paths the retry machinery cost more than a tenth of the request.
        try:
            return self._send("GET", url, params=params, headers=headers)
        except UpstreamError as exc:
            if self._retry.retries == 0 or not is_transient(exc):
                raise
            first_failure: UpstreamError | None = exc

        def attempt() -> UpstreamResponse:
            # tenacity sees the failed first attempt as its own attempt 1, so waits,
            # Retry-After, logging and the stop condition are exactly as if it had run it.
            nonlocal first_failure
            if first_failure is not None:
                failure, first_failure = first_failure, None
                raise failure
            return self._send("GET", url, params=params, headers=headers)

        retrying = Retrying(
            retry=retry_if_exception(is_transient),
            stop=stop_after_attempt(self._retry.retries + 1),
            wait=self._wait,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        return retrying(attempt)

    def post_json(
        self, url: str, payload: Any, *, headers: dict | None = None, expect_json: bool = True
    ) -> UpstreamResponse:
        """POST once; the caller decides whether a failure may be retried.

        With ``expect_json=False`` a 2xx with an empty body is success too (``body`` is
        then None); a non-empty body that is not JSON is still a failure (an HTML page
        with 200 is a proxy's error page, not the upstream's acknowledgement).

        Raises:
            UpstreamError: unreachable, timeout, bad_status (any non-2xx), non_json.
        """
        return self._send("POST", url, json=payload, headers=headers, expect_json=expect_json)

    # ----------------------------------------------------------------- internals

    def _send(self, method: str, url: str, *, expect_json: bool = True, **kwargs: Any) -> UpstreamResponse:
        started = time.perf_counter()
        try:
            target = _loggable(url)
            response = self._request(method, url, **kwargs)
        except ValueError as exc:  # a URL requests cannot use (e.g. a port out of range)
            raise UpstreamError(f"The {self.display_name} URL is not usable", upstream=self.upstream,
                                kind="unreachable", detail={"upstream": self.upstream, "reason": str(exc)}) from None
        except requests.Timeout as exc:
            raise self._failed(method, target, started, "timeout", f"timed out ({exc.__class__.__name__})")
        except requests.RequestException as exc:
            raise self._failed(method, target, started, "unreachable", exc.__class__.__name__)
        elapsed_ms = _ms(started)

        body = _decode_json(response)
        if not 200 <= response.status_code < 300:
            error = self._failed(
                method, target, started, "bad_status", f"HTTP {response.status_code}",
                status=response.status_code, body=None if body is _NOT_JSON else body,
            )
            error.retry_after = _retry_after(response)
            raise error
        if body is _NOT_JSON and not expect_json and not response.content.strip():
            body = None
        if body is _NOT_JSON:
            raise self._failed(method, target, started, "non_json", "the body is not JSON",
                               status=response.status_code)
        metrics.observe_upstream(self.upstream, "ok", elapsed_ms / 1000)
        log.info(
            "%s %s %s", method, target, response.status_code,
            extra={"event": "upstream", "upstream": self.upstream, "method": method, "url": target,
                   "status": response.status_code, "outcome": "ok", "duration_ms": elapsed_ms},
        )
        return UpstreamResponse(response.status_code, body, elapsed_ms)

    def _request(self, method: str, url: str, *, params: Any = None, headers: dict | None = None,
                 json: Any = None) -> requests.Response:
        """One HTTP exchange through the session's adapter (its connection pool).

        ``Session.request`` merges cookies, hooks and environment settings and walks
        redirects on every call: profiled, that was a third of a proxied poll's CPU
        time, for features these JSON APIs never use (and cookies collected from an
        upstream would be state shared by every student). A redirect, should an
        upstream send one, still goes through the session and is followed.
        """
        merged = dict(self._session.headers)
        if headers:
            merged.update({k: v for k, v in headers.items() if v is not None})
        prepared = requests.PreparedRequest()
        prepared.prepare(method=method, url=url, headers=merged, params=params, json=json)
        response = self._adapter.send(prepared, timeout=self._timeout, proxies=self._proxies_for(url),
                                      verify=self._session.verify, stream=False)
        if response.is_redirect:
            response.close()
            response = self._session.request(method, url, params=params, headers=headers, json=json,
                                             timeout=self._timeout, proxies=self._proxies_for(url))
        return response

    def _failed(self, method, target, started, kind, reason, *, status=None, body=None) -> UpstreamError:
        duration = _ms(started)
        metrics.observe_upstream(self.upstream, kind, duration / 1000)
        log.warning(
            "%s %s failed: %s", method, target, reason,
            extra={"event": "upstream", "upstream": self.upstream, "method": method, "url": target,
                   "status": status, "outcome": kind, "duration_ms": duration},
        )
        return UpstreamError(
            _MESSAGES[kind].format(upstream=self.display_name),
            upstream=self.upstream, kind=kind, status=status, upstream_body=body,
            detail={"upstream": self.upstream, "reason": reason},
        )

    def _proxies_for(self, url: str) -> dict[str, str]:
        """The proxies the environment sets for this URL's host (honouring NO_PROXY), read once."""
        parts = urlsplit(url)
        key = f"{parts.scheme}://{parts.netloc}"
        proxies = self._proxies.get(key)
        if proxies is None:
            proxies = self._proxies[key] = requests.utils.get_environ_proxies(key)
        return proxies

    @property
    def display_name(self) -> str:
        return self.upstream.replace("_", " ")

    def _wait(self, state: RetryCallState) -> float:
        backoff = wait_random_exponential(
            multiplier=self._retry.backoff_base, max=self._retry.backoff_max
        )(state)
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(max(retry_after, backoff), self._retry.backoff_max)
        return backoff

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.info(
            "retrying %s call (attempt %d failed: %s)", self.upstream, state.attempt_number,
            getattr(exc, "kind", exc),
            extra={"event": "upstream_retry", "upstream": self.upstream, "attempt": state.attempt_number},
        )


_MESSAGES = {
    "unreachable": "The {upstream} cannot be reached right now; try again shortly",
    "timeout": "The {upstream} did not answer in time; try again shortly",
    "bad_status": "The {upstream} failed to answer the request",
    "non_json": "The {upstream} sent an answer that is not JSON",
    "bad_response": "The {upstream} sent an answer of an unexpected shape",
}

_NOT_JSON = object()


def _decode_json(response: requests.Response) -> Any:
    if not response.content:
        return _NOT_JSON
    try:
        return response.json()
    except ValueError:
        return _NOT_JSON


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _loggable(url: str) -> str:
    """The URL without query string or credentials: query values may identify students."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
