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
from bisect import bisect_left
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
CONTENT_TYPE = CONTENT_TYPE_LATEST
_RECENT = 2048  # latencies kept for p50/p99
_RATE_WINDOW = 5  # seconds averaged for requests_per_second


class _RequestCollector:
    """Per-request series kept as plain counters on the IOLoop thread (no locks, well under
    a microsecond per request) and turned into Prometheus families only when scraped."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def collect(self):
        m = self.metrics
        requests = CounterMetricFamily("bento_nb_requests", "HTTP requests answered",
                                       labels=["route", "code"])
        errors = CounterMetricFamily("bento_nb_errors", "HTTP requests answered with 4xx/5xx",
                                     labels=["route", "code"])
        for (route, code), count in sorted(m._counts.items()):
            requests.add_metric([route, str(code)], count)
            if code >= 400:
                errors.add_metric([route, str(code)], count)
        latency = HistogramMetricFamily("bento_nb_request_duration_seconds",
                                        "Time from request received to response written",
                                        labels=["route"])
        for route, (counts, total) in sorted(m._latency.items()):
            cumulative, buckets = 0, []
            for bound, count in zip((*LATENCY_BUCKETS, float("inf")), counts):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)),
                                cumulative))
            latency.add_metric([route], buckets, sum_value=total[0])
        return [requests, errors, latency]


class Metrics:
    """Counters of one server. ``observe_request`` runs on the IOLoop thread,
    ``observe_batch`` on model threads; both are cheap."""

    def __init__(self, in_flight: Callable[[], int] | None = None,
                 queue_depths: Callable[[], dict] | None = None):
        self.registry = CollectorRegistry(auto_describe=False)
        self._counts: dict[tuple[str, int], int] = {}
        self._latency: dict[str, tuple[list[int], list[float]]] = {}
        self.registry.register(_RequestCollector(self))
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
        counts = self._counts
        counts[key] = counts.get(key, 0) + 1
        latency = self._latency.get(route)
        if latency is None:
            latency = self._latency[route] = ([0] * (len(LATENCY_BUCKETS) + 1), [0.0])
        latency[0][bisect_left(LATENCY_BUCKETS, seconds)] += 1
        latency[1][0] += seconds
        self.requests += 1
        if code >= 400:
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
