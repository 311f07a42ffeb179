"""Prometheus metrics, derived from the serving runtime's request records.

Records arrive in batches (see ``Server.subscribe``); each batch updates bucket counts with a few
numpy operations, so the request path itself never touches a metric. The exposition is built at
scrape time by ``prometheus_client`` from those counts and from the server's live stats.

Series (every one labelled by ``model``):

- ``workbench_requests_total{outcome}``: requests by outcome (ok, overloaded, timeout, ...);
- ``workbench_request_latency_seconds``, ``workbench_queue_seconds``, ``workbench_compute_seconds``:
  histograms with 10 buckets a decade from 10 µs to 100 s, fine enough to read a p99 at any scale;
- ``workbench_batch_size``: rows per batch a worker computed (each batch counted once);
- ``workbench_queue_depth`` (requests), ``workbench_queue_rows``, ``workbench_in_flight_rows``,
  ``workbench_replicas_ready``, ``workbench_worker_restarts_total``: from the server's live stats;
- ``workbench_http_responses_total{code}``: what the HTTP layer answered, rejections included.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from workbench.serving.records import RequestRecord

#: Upper bounds (seconds) of the latency buckets: 1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times each power of ten.
LATENCY_BUCKETS_S: tuple[float, ...] = tuple(
    float(f"{m}e{e}") for e in range(-5, 2) for m in (1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8)) + (100.0,)
#: Upper bounds of the batch-size buckets.
BATCH_BUCKETS: tuple[float, ...] = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 512, 1024)

#: Gauges read from ``Server.stats()[model]`` at scrape time: metric name, stats key, help.
_GAUGES = (
    ("workbench_queue_depth", "queue_requests", "Requests waiting in the model's queue."),
    ("workbench_queue_rows", "queue_rows", "Rows waiting in the model's queue."),
    ("workbench_in_flight_rows", "in_flight", "Rows sent to workers and not yet answered."),
)


class BucketCounts:
    """One histogram's cumulative state: counts per bucket (plus +Inf) and the sum of observations."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]):
        self.bounds = np.asarray(bounds, dtype=np.float64)
        self.counts = np.zeros(len(bounds) + 1, dtype=np.int64)
        self.total = 0.0

    def observe(self, values: np.ndarray) -> None:
        if values.size:
            index = np.searchsorted(self.bounds, values, side="left")  # le semantics: value <= bound
            self.counts += np.bincount(index, minlength=len(self.counts))
            self.total += float(values.sum())

    def buckets(self) -> list[tuple[str, float]]:
        cumulative = np.cumsum(self.counts)
        labels = [_format_bound(b) for b in self.bounds] + ["+Inf"]
        return list(zip(labels, cumulative.tolist()))


def _format_bound(value: float) -> str:
    return repr(float(value))


class _ModelSeries:
    __slots__ = ("outcomes", "latency", "queue", "compute", "batch", "last_batches")

    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.latency = BucketCounts(LATENCY_BUCKETS_S)
        self.queue = BucketCounts(LATENCY_BUCKETS_S)
        self.compute = BucketCounts(LATENCY_BUCKETS_S)
        self.batch = BucketCounts(BATCH_BUCKETS)
        self.last_batches: set[tuple[str | None, float]] = set()  # a batch split over two deliveries counts once


def _values(records: Sequence[RequestRecord], get: Callable[[RequestRecord], float | None]) -> np.ndarray:
    values = [v for v in map(get, records) if v is not None]
    return np.asarray(values, dtype=np.float64)


class Metrics(Collector):
    """The metrics of one HTTP API. ``observe(records)`` from the loop thread; ``render()`` at scrape time.

    ``stats`` returns the server's per-model stats (queue depth, restarts); it is called at scrape time.
    """

    def __init__(self, stats: Callable[[], dict[str, Any]] | None = None):
        self._stats = stats
        self._models: dict[str, _ModelSeries] = {}
        self._responses: Counter[tuple[str, int]] = Counter()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    # --------------------------------------------------------------- feeding
    def observe(self, records: Iterable[RequestRecord]) -> None:
        """Fold a batch of request records into the counts."""
        by_model: dict[str, list[RequestRecord]] = {}
        for record in records:
            by_model.setdefault(record.model, []).append(record)
        for model, recs in by_model.items():
            series = self._models.get(model)
            if series is None:
                series = self._models[model] = _ModelSeries()
            series.outcomes.update(r.outcome for r in recs)
            series.latency.observe(_values(recs, lambda r: r.completed_at - r.received_at))
            series.queue.observe(_values(recs, lambda r: r.queue_s))
            series.compute.observe(_values(recs, lambda r: r.compute_s))
            batches = {(r.worker, r.compute_start): r.batch_size for r in recs
                       if r.compute_start is not None and r.batch_size > 0}
            sizes = [size for key, size in batches.items() if key not in series.last_batches]
            series.batch.observe(np.asarray(sizes, dtype=np.float64))
            series.last_batches = set(batches)

    def count_response(self, model: str, status: int) -> None:
        """Count one HTTP answer of the inference route (``model`` is "" when the name is unknown)."""
        self._responses[(model, status)] += 1

    # -------------------------------------------------------------- exposing
    def render(self) -> bytes:
        """The Prometheus text exposition (format 0.0.4)."""
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("workbench_requests", "Requests by model and outcome.",
                                       labels=["model", "outcome"])
        hists = {
            "latency": HistogramMetricFamily("workbench_request_latency_seconds",
                                             "End-to-end latency, from arrival to answer.", labels=["model"]),
            "queue": HistogramMetricFamily("workbench_queue_seconds",
                                           "Time from arrival until the request's batch left for a worker.",
                                           labels=["model"]),
            "compute": HistogramMetricFamily("workbench_compute_seconds",
                                             "Model compute time of the request's batch on its worker.",
                                             labels=["model"]),
            "batch": HistogramMetricFamily("workbench_batch_size", "Rows in each batch a worker computed.",
                                           labels=["model"]),
        }
        for model, series in sorted(self._models.items()):
            for outcome, count in sorted(series.outcomes.items()):
                requests.add_metric([model, outcome], count)
            for key, family in hists.items():
                counts: BucketCounts = getattr(series, key)
                family.add_metric([model], counts.buckets(), counts.total)
        yield requests
        yield from hists.values()
        yield from self._stat_gauges()
        responses = CounterMetricFamily("workbench_http_responses", "HTTP answers of the inference route.",
                                        labels=["model", "code"])
        for (model, status), count in sorted(self._responses.items()):
            responses.add_metric([model, str(status)], count)
        yield responses

    def _stat_gauges(self) -> Iterator[Metric]:
        stats = self._stats() if self._stats is not None else {}
        gauges = [(GaugeMetricFamily(name, doc, labels=["model"]), key) for name, key, doc in _GAUGES]
        ready = GaugeMetricFamily("workbench_replicas_ready", "Replicas ready to take work.", labels=["model"])
        restarts = CounterMetricFamily("workbench_worker_restarts", "Workers restarted after a crash or hang.",
                                       labels=["model"])
        for model, values in sorted(stats.items()):
            for family, key in gauges:
                if isinstance(values.get(key), (int, float)):
                    family.add_metric([model], float(values[key]))
            if isinstance(values.get("restarts"), (int, float)):
                restarts.add_metric([model], float(values["restarts"]))
            replicas = values.get("replicas")
            if isinstance(replicas, dict) and isinstance(replicas.get("ready"), (int, float)):
                ready.add_metric([model], float(replicas["ready"]))
        for family, _ in gauges:
            yield family
        yield ready
        yield restarts


__all__ = ["BATCH_BUCKETS", "LATENCY_BUCKETS_S", "BucketCounts", "Metrics"]
