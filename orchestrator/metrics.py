"""Prometheus metrics (prometheus-client), correct with several processes.

``orchestrator serve`` gives gunicorn's workers and the dispatcher one
``PROMETHEUS_MULTIPROC_DIR``; each process writes its own files there and a scrape
sums them (prometheus-client's multiprocess mode). Without that variable (tests,
a single process) the default registry is used.

State that lives in the database (outbox depth, the escalation queue) is read at
scrape time by :class:`DatabaseCollector`, so every instance reports the same truth.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

HTTP_REQUESTS = Counter(
    "orchestrator_http_requests_total", "HTTP requests answered, by route and status.",
    ["method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "orchestrator_http_request_duration_seconds", "Time to answer an HTTP request, by route.",
    ["method", "route"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
UPSTREAM_CALLS = Counter(
    "orchestrator_upstream_calls_total", "Calls to the upstreams, by upstream and outcome.",
    ["upstream", "outcome"],
)
UPSTREAM_SECONDS = Histogram(
    "orchestrator_upstream_call_duration_seconds", "Duration of upstream calls, by upstream.",
    ["upstream"], buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
QUOTA_REJECTIONS = Counter(
    "orchestrator_quota_rejections_total", "Hint requests refused by the quota, by the limit reached.",
    ["limit"],
)


def observe_upstream(upstream: str, outcome: str, seconds: float) -> None:
    UPSTREAM_CALLS.labels(upstream, outcome).inc()
    UPSTREAM_SECONDS.labels(upstream).observe(seconds)


class DatabaseCollector(Collector):
    """Gauges read from the database when scraped: outbox depth and oldest age by kind,
    the escalation queue's length and its oldest waiting request."""

    def __init__(self, read_state) -> None:
        self._read_state = read_state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        state = self._read_state()
        depth = GaugeMetricFamily("orchestrator_outbox_pending", "Undelivered outbox messages, by kind.",
                                  labels=["kind"])
        oldest = GaugeMetricFamily("orchestrator_outbox_oldest_pending_seconds",
                                   "Age of the oldest undelivered outbox message, by kind.", labels=["kind"])
        failed = GaugeMetricFamily("orchestrator_outbox_failed", "Outbox messages given up on, by kind.",
                                   labels=["kind"])
        for kind, (count, age, given_up) in sorted(state["outbox"].items()):
            depth.add_metric([kind], count)
            oldest.add_metric([kind], age)
            failed.add_metric([kind], given_up)
        yield depth
        yield oldest
        yield failed
        queue = GaugeMetricFamily("orchestrator_escalations", "Escalations by queue state.", labels=["state"])
        for name in ("waiting", "assigned"):
            queue.add_metric([name], state["queue"][name])
        yield queue
        yield GaugeMetricFamily("orchestrator_escalation_oldest_waiting_seconds",
                                "Age of the oldest escalation waiting for an instructor.",
                                value=state["queue"]["oldest_waiting_seconds"])


def render(extra: Collector | None = None) -> tuple[bytes, str]:
    """The exposition text of every process's metrics (plus ``extra``) and its content type."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        text = generate_latest(registry)
    else:
        text = generate_latest(REGISTRY)
    if extra is not None:
        database = CollectorRegistry()
        database.register(extra)
        text += generate_latest(database)
    return text, CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)
