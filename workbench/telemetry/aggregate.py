"""Turn one window's raw inputs (RequestRecords, ClientReports) into Window fields, in bulk.

The work per window is a handful of list comprehensions and numpy passes over the records, never a
per-record histogram update, so a hub keeps up with tens of thousands of records per second.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.telemetry.histogram import LatencyHistogram
from workbench.telemetry.window import ClientReport

if TYPE_CHECKING:
    from workbench.serving.records import ConfigChange, RequestRecord


def server_fields(records: Sequence[RequestRecord], window_s: float) -> dict[str, Any]:
    """Window fields from the RequestRecords that completed in one window of ``window_s`` seconds."""
    if not records:
        return {}
    outcomes = Counter(r.outcome for r in records)
    ok = [r for r in records if r.outcome == "ok"]
    latency = LatencyHistogram()
    queue = LatencyHistogram()
    compute = LatencyHistogram()
    histograms = {}
    if ok:
        latency.record_many([r.completed_at - r.received_at for r in ok])
        histograms["server_latency"] = latency
        queued = [r.dispatched_at - r.received_at for r in ok if r.dispatched_at is not None]
        if queued:
            queue.record_many(queued)
            histograms["queue_time"] = queue
    # a batch is computed once for all its requests: count each (worker, start, end) once
    batches = {(r.worker, r.compute_start, r.compute_end): r.batch_size for r in records
               if r.compute_start is not None and r.compute_end is not None}
    busy: dict[str, float] = {}
    if batches:
        keys = list(batches)
        durations = np.array([end - start for (_, start, end) in keys], dtype=np.float64)
        compute.record_many(durations)
        histograms["compute_time"] = compute
        for (worker, _, _), seconds in zip(keys, durations, strict=True):
            name = worker or "?"
            busy[name] = busy.get(name, 0.0) + float(seconds)
    return {
        "server_requests": len(records),
        "server_errors": {k: v for k, v in outcomes.items() if k != "ok"},
        "batch_sizes": dict(sorted(Counter(batches.values()).items())),
        "worker_busy": {w: round(min(1.0, s / window_s), 4) for w, s in sorted(busy.items())},
        "variants": tuple(sorted({r.variant for r in records if r.variant})),
        "_histograms": histograms,
    }


def client_fields(reports: Sequence[ClientReport]) -> dict[str, Any]:
    """Window fields from the load generators' reports for one window (any number of processes)."""
    if not reports:
        return {}
    errors: Counter[str] = Counter()
    for report in reports:
        errors.update(report.errors)
    latency = LatencyHistogram.merged(r.latency for r in reports)
    return {
        "sent": sum(r.sent for r in reports),
        "ok": sum(r.ok for r in reports),
        "errors": dict(sorted(errors.items())),
        "not_sent": sum(r.not_sent for r in reports),
        "in_flight": sum(r.in_flight for r in reports),
        "generator_lag_ms": round(max(r.lag_max_ms for r in reports), 3),
        "generator_cpu": round(max(r.cpu_fraction for r in reports), 4),
        "_histograms": {"latency": latency} if latency.count else {},
    }


def change_dict(change: ConfigChange, origin: float) -> dict[str, Any]:
    return {"model": change.model, "at_s": round(change.at - origin, 6), "wall_time": change.wall_time,
            "changes": change.changes, "description": change.description}


def queue_depths(stats: Any) -> dict[str, int]:
    """Queue depth per model from ``Server.stats()`` (per model: ``queue_requests``, or ``queue_depth``)."""
    out: dict[str, int] = {}
    if not isinstance(stats, dict):
        return out
    for model, entry in stats.items():
        if isinstance(entry, dict):
            for key in ("queue_requests", "queue_depth", "queued"):
                value = entry.get(key)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    out[str(model)] = int(value)
                    break
    return out


__all__ = ["change_dict", "client_fields", "queue_depths", "server_fields"]
