"""Server metrics: Prometheus text for ``GET /metrics`` and a small ``stats()`` summary.

Each server owns its own :class:`prometheus_client.CollectorRegistry`, so several servers in
one process never mix their numbers. Exposed series::

    bento_nb_requests_total{route, code}            every HTTP request answered
    bento_nb_errors_total{route, code}              the 4xx/5xx among them
    bento_nb_request_duration_seconds{route}        histogram of request latency
    bento_nb_batch_size{api}                        histogram of requests per model call
    bento_nb_batch_duration_seconds{api}            histogram of model call time
    bento_nb_in_flight_requests                     requests being answered now
    bento_nb_queue_depth{api}                       requests waiting for the model

``Metrics.summary()`` is what ``ServerHandle.stats()`` returns (requests, errors, requests
per second over the last seconds, mean batch size, p50/p99 latency of recent requests).
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
CONTENT_TYPE = CONTENT_TYPE_LATEST
_RECENT = 2048  # latencies kept for p50/p99
_RATE_WINDOW = 5  # seconds averaged for requests_per_second


class Metrics:
    """Counters of one server. ``observe_request`` runs on the IOLoop thread,
    ``observe_batch`` on model threads; both are cheap (a few microseconds)."""

    def __init__(self, in_flight: Callable[[], int] | None = None,
                 queue_depths: Callable[[], dict] | None = None):
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter("bento_nb_requests", "HTTP requests answered",
                                 ["route", "code"], registry=self.registry)
        self._errors = Counter("bento_nb_errors", "HTTP requests answered with 4xx/5xx",
                               ["route", "code"], registry=self.registry)
        self._latency = Histogram("bento_nb_request_duration_seconds",
                                  "Time from request received to response finished",
                                  ["route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self._batch_size = Histogram("bento_nb_batch_size", "Requests per model call",
                                     ["api"], buckets=BATCH_BUCKETS, registry=self.registry)
        self._batch_time = Histogram("bento_nb_batch_duration_seconds", "Model call time",
                                     ["api"], buckets=LATENCY_BUCKETS, registry=self.registry)
        gauge = Gauge("bento_nb_in_flight_requests", "Requests being answered",
                      registry=self.registry)
        if in_flight is not None:
            gauge.set_function(in_flight)
        self._queue_gauge = Gauge("bento_nb_queue_depth", "Requests waiting for the model",
                                  ["api"], registry=self.registry)
        self._queue_depths = queue_depths
        self._children: dict = {}
        self._batch_children: dict = {}
        self._lock = threading.Lock()
        self.started = time.time()
        self.requests = 0
        self.errors = 0
        self.batches = 0
        self.batched = 0
        self._recent = [0.0] * _RECENT
        self._recent_n = 0
        self._slot_second = [0] * (_RATE_WINDOW + 2)
        self._per_second = [0] * (_RATE_WINDOW + 2)

    # -- recording --------------------------------------------------------------------

    def observe_request(self, route: str, code: int, seconds: float) -> None:
        key = (route, code)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self._requests.labels(route, str(code)),
                self._errors.labels(route, str(code)) if code >= 400 else None,
                self._latency.labels(route),
            )
        total, errors, latency = children
        total.inc()
        latency.observe(seconds)
        self.requests += 1
        if errors is not None:
            errors.inc()
            self.errors += 1
        self._recent[self._recent_n % _RECENT] = seconds
        self._recent_n += 1
        second = int(time.monotonic())
        slot = second % len(self._per_second)
        if self._slot_second[slot] != second:
            self._slot_second[slot] = second
            self._per_second[slot] = 0
        self._per_second[slot] += 1

    def observe_batch(self, api: str, size: int, seconds: float) -> None:
        children = self._batch_children.get(api)
        if children is None:
            with self._lock:
                children = self._batch_children[api] = (
                    self._batch_size.labels(api), self._batch_time.labels(api))
        children[0].observe(size)
        children[1].observe(seconds)
        with self._lock:
            self.batches += 1
            self.batched += size

    # -- reading ----------------------------------------------------------------------

    def render(self) -> bytes:
        if self._queue_depths is not None:
            for api, depth in self._queue_depths().items():
                self._queue_gauge.labels(api).set(depth)
        return generate_latest(self.registry)

    def summary(self) -> dict:
        n = min(self._recent_n, _RECENT)
        recent = sorted(self._recent[:n])
        second = int(time.monotonic())
        window = sum(count for count, at in zip(self._per_second, self._slot_second)
                     if second - _RATE_WINDOW <= at < second)
        return {
            "requests": self.requests,
            "errors": self.errors,
            "requests_per_second": round(window / _RATE_WINDOW, 1),
            "mean_batch_size": round(self.batched / self.batches, 2) if self.batches else 0.0,
            "p50_ms": round(_percentile(recent, 0.50) * 1000, 2),
            "p99_ms": round(_percentile(recent, 0.99) * 1000, 2),
        }


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
