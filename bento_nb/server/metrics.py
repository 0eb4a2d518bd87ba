"""Server metrics: Prometheus text for ``GET /metrics`` and a small ``stats()`` summary.

Each server owns its own :class:`prometheus_client.CollectorRegistry`, so several servers in
one process never mix their numbers. Exposed series::

    bento_nb_requests_total{route, code, version}       every HTTP request answered
    bento_nb_errors_total{route, code, version}         the 4xx/5xx among them
    bento_nb_request_duration_seconds{route, version}   histogram of request latency
    bento_nb_batch_size{api, version}                   histogram of requests per model call
    bento_nb_batch_duration_seconds{api, version}       histogram of model call time
    bento_nb_in_flight_requests                         requests being answered now
    bento_nb_queue_depth{api, version}                  requests waiting for the model

``version`` is the bundle version that answered (``X-Bento-Version``; ``live`` for a model
object never packed), so the versions of a split (``--split 90,10``) or the two sides of a
hot swap are told apart; it is empty on the routes no version answers (health, docs, 404).

The figures are plain counters and bucket arrays, updated without locks on the IOLoop thread
(requests) or under one lock on the model threads (batches), and turned into Prometheus
families only when scraped.

**Several worker processes** (``bento-nb serve --workers N``) share one port, so a scrape
reaches one of them at random. Each worker then writes a snapshot of its figures to a
folder the supervisor made (``shared_dir``) about once a second, and ``/metrics`` reports
the sum over every worker: its own live figures plus the others' latest snapshots
(counters of a worker that died stay counted, so the sums never go down; gauges count live
workers only). Other workers' numbers are at most a second old.

``Metrics.summary()`` is what ``ServerHandle.stats()`` returns and the notebook widget shows
(requests, errors, requests per second averaged over the last ``RATE_WINDOW_SECONDS``, mean
batch size, p50/p99 latency of recent requests, and under ``versions`` the requests,
errors and p50/p99 of each version). It counts **API traffic only**: the
requests to the routes given as ``traffic_routes`` (the ``POST /<api>`` routes). Health
checks, scrapes, docs, metadata, identity probes and 404s stay out of it — the Jupyter
panel's checks must not make an idle server look busy — while the Prometheus families above
keep counting every route.
"""

from __future__ import annotations

import json
import os
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .._processes import pid_alive

LATENCY_BUCKETS = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
CONTENT_TYPE = CONTENT_TYPE_LATEST
_RECENT = 2048  # latencies kept for p50/p99
RATE_WINDOW_SECONDS = 5  # seconds averaged for requests_per_second


def _observe(histograms: dict, key: str, bounds: tuple, value: float) -> None:
    entry = histograms.get(key)
    if entry is None:
        entry = histograms[key] = [[0] * (len(bounds) + 1), 0.0]
    entry[0][bisect_left(bounds, value)] += 1
    entry[1] += value


def _add_histograms(into: dict, more: dict) -> None:
    for key, (counts, total) in more.items():
        entry = into.setdefault(key, [[0] * len(counts), 0.0])
        entry[0] = [a + b for a, b in zip(entry[0], counts)]
        entry[1] += total


def _key(parts: tuple) -> str:
    return "\t".join(parts)


def _histogram_family(name: str, doc: str, label: str, bounds: tuple,
                      histograms: dict) -> HistogramMetricFamily:
    """``histograms`` keyed ``"<label value>\\t<version>"`` (see :func:`_key`)."""
    family = HistogramMetricFamily(name, doc, labels=[label, "version"])
    for key, (counts, total) in sorted(histograms.items()):
        cumulative, buckets = 0, []
        for bound, count in zip((*bounds, float("inf")), counts):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), cumulative))
        family.add_metric(key.split("\t", 1), buckets, sum_value=total)
    return family


class _Collector:
    """Builds every family from :meth:`Metrics.merged` at scrape time."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def collect(self):
        snap = self.metrics.merged()
        requests = CounterMetricFamily("bento_nb_requests", "HTTP requests answered",
                                       labels=["route", "code", "version"])
        errors = CounterMetricFamily("bento_nb_errors", "HTTP requests answered with 4xx/5xx",
                                     labels=["route", "code", "version"])
        for route, code, version, count in sorted(snap["counts"]):
            requests.add_metric([route, str(code), version], count)
            if code >= 400:
                errors.add_metric([route, str(code), version], count)
        in_flight = GaugeMetricFamily("bento_nb_in_flight_requests", "Requests being answered",
                                      value=snap["in_flight"])
        queue = GaugeMetricFamily("bento_nb_queue_depth", "Requests waiting for the model",
                                  labels=["api", "version"])
        for key, depth in sorted(snap["queue"].items()):
            queue.add_metric(key.split("\t", 1), depth)
        return [
            requests, errors,
            _histogram_family("bento_nb_request_duration_seconds",
                              "Time from request received to response written", "route",
                              LATENCY_BUCKETS, snap["latency"]),
            _histogram_family("bento_nb_batch_size", "Requests per model call", "api",
                              BATCH_BUCKETS, snap["batch_size"]),
            _histogram_family("bento_nb_batch_duration_seconds", "Model call time", "api",
                              LATENCY_BUCKETS, snap["batch_time"]),
            in_flight, queue,
        ]


class Metrics:
    """Counters of one server. ``observe_request`` runs on the IOLoop thread,
    ``observe_batch`` on model threads; both are cheap. ``shared_dir``: see the module
    docstring (workers of one ``bento-nb serve``). ``queue_depths()`` returns
    ``{"<api>\\t<version>": depth}``."""

    def __init__(self, in_flight: Callable[[], int] | None = None,
                 queue_depths: Callable[[], dict] | None = None,
                 shared_dir: str | os.PathLike | None = None,
                 traffic_routes: Iterable[str] | None = None):
        """``traffic_routes``: the route labels :meth:`summary` counts (None: every
        route)."""
        self._traffic = frozenset(traffic_routes) if traffic_routes is not None else None
        self._in_flight = in_flight
        self._queue_depths = queue_depths
        self.shared_dir = Path(shared_dir) if shared_dir is not None else None
        self._counts: dict[tuple[str, int, str], int] = {}
        # histograms keyed (route or api, version); "\t"-joined in snapshots
        self._latency: dict[tuple[str, str], list] = {}
        self._batch_size: dict[tuple[str, str], list] = {}
        self._batch_time: dict[tuple[str, str], list] = {}
        self._versions: dict[str, _VersionFigures] = {}
        self._lock = threading.Lock()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))
        self.started = time.time()
        self.requests = 0
        self.errors = 0
        self.batches = 0
        self.batched = 0
        self._recent = [0.0] * _RECENT
        self._recent_n = 0
        self._slot_second = [0] * (RATE_WINDOW_SECONDS + 2)
        self._per_second = [0] * (RATE_WINDOW_SECONDS + 2)

    # -- recording --------------------------------------------------------------------

    def observe_request(self, route: str, code: int, seconds: float,
                        version: str = "") -> None:
        """One answered request; ``version``: the bundle version that answered it."""
        key = (route, code, version)
        counts = self._counts
        counts[key] = counts.get(key, 0) + 1
        _observe(self._latency, (route, version), LATENCY_BUCKETS, seconds)
        if self._traffic is not None and route not in self._traffic:
            return  # operational (health, scrape, docs): in /metrics, not in summary()
        self.requests += 1
        if code >= 400:
            self.errors += 1
        figures = self._versions.get(version)
        if figures is None:
            figures = self._versions[version] = _VersionFigures()
        figures.observe(code, seconds)
        self._recent[self._recent_n % _RECENT] = seconds
        self._recent_n += 1
        second = int(time.monotonic())
        slot = second % len(self._per_second)
        if self._slot_second[slot] != second:
            self._slot_second[slot] = second
            self._per_second[slot] = 0
        self._per_second[slot] += 1

    def observe_batch(self, api: str, size: int, seconds: float, version: str = "") -> None:
        with self._lock:
            _observe(self._batch_size, (api, version), BATCH_BUCKETS, size)
            _observe(self._batch_time, (api, version), LATENCY_BUCKETS, seconds)
            self.batches += 1
            self.batched += size

    # -- reading ----------------------------------------------------------------------

    def snapshot(self) -> dict:
        """This process's figures as plain JSON-able data (call on the IOLoop thread)."""
        with self._lock:
            batch_size = {_key(k): [list(c), t] for k, (c, t) in self._batch_size.items()}
            batch_time = {_key(k): [list(c), t] for k, (c, t) in self._batch_time.items()}
        return {
            "pid": os.getpid(),
            "counts": [[route, code, version, n]
                       for (route, code, version), n in self._counts.items()],
            "latency": {_key(k): [list(c), t] for k, (c, t) in self._latency.items()},
            "batch_size": batch_size,
            "batch_time": batch_time,
            "in_flight": self._in_flight() if self._in_flight is not None else 0,
            "queue": dict(self._queue_depths()) if self._queue_depths is not None else {},
        }

    def write_snapshot(self) -> None:
        """Publish :meth:`snapshot` for the other workers (atomic: temp file + rename)."""
        if self.shared_dir is None:
            return
        path = self.shared_dir / f"{os.getpid()}.json"
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            tmp.write_text(json.dumps(self.snapshot()), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:  # the folder went away (shutting down): nothing to publish to
            pass

    def merged(self) -> dict:
        """This process's live figures plus the other workers' latest snapshots."""
        own = self.snapshot()
        if self.shared_dir is None:
            return own
        counts = {(route, code, version): n for route, code, version, n in own["counts"]}
        for path in self.shared_dir.glob("*.json"):
            try:
                other = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if other.get("pid") == own["pid"]:
                continue
            for route, code, version, n in other["counts"]:
                key = (route, code, version)
                counts[key] = counts.get(key, 0) + n
            for key in ("latency", "batch_size", "batch_time"):
                _add_histograms(own[key], other[key])
            if pid_alive(other["pid"]):  # gauges: live workers only
                own["in_flight"] += other["in_flight"]
                for api, depth in other["queue"].items():
                    own["queue"][api] = own["queue"].get(api, 0) + depth
        own["counts"] = [[route, code, version, n]
                         for (route, code, version), n in counts.items()]
        return own

    def traffic_totals(self) -> tuple[int, int]:
        """``(requests, errors)`` of API traffic (as :meth:`summary` counts it) over every
        worker: this one's live counts plus the others' latest snapshots (:meth:`merged`)."""
        requests = errors = 0
        for route, code, _version, n in self.merged()["counts"]:
            if self._traffic is None or route in self._traffic:
                requests += n
                errors += n if code >= 400 else 0
        return requests, errors

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def summary(self) -> dict:
        n = min(self._recent_n, _RECENT)
        recent = sorted(self._recent[:n])
        second = int(time.monotonic())
        window = sum(count for count, at in zip(self._per_second, self._slot_second)
                     if second - RATE_WINDOW_SECONDS <= at < second)
        return {
            "requests": self.requests,
            "errors": self.errors,
            "requests_per_second": round(window / RATE_WINDOW_SECONDS, 1),
            "rate_window_seconds": RATE_WINDOW_SECONDS,
            "mean_batch_size": round(self.batched / self.batches, 2) if self.batches else 0.0,
            "p50_ms": round(_percentile(recent, 0.50) * 1000, 2),
            "p99_ms": round(_percentile(recent, 0.99) * 1000, 2),
            "versions": {version: figures.summary()
                         for version, figures in list(self._versions.items())},
        }


class _VersionFigures:
    """Requests, errors and recent latencies of one version (API traffic only)."""

    __slots__ = ("errors", "n", "recent", "requests")
    SIZE = 512

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.recent = [0.0] * self.SIZE
        self.n = 0

    def observe(self, code: int, seconds: float) -> None:
        self.requests += 1
        if code >= 400:
            self.errors += 1
        self.recent[self.n % self.SIZE] = seconds
        self.n += 1

    def summary(self) -> dict:
        recent = sorted(self.recent[:min(self.n, self.SIZE)])
        return {"requests": self.requests, "errors": self.errors,
                "p50_ms": round(_percentile(recent, 0.50) * 1000, 2),
                "p99_ms": round(_percentile(recent, 0.99) * 1000, 2)}


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
