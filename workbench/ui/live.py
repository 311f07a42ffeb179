"""From telemetry windows to what the Live section draws: plot columns, change markers, big numbers.

Only aggregated windows (2 a second at the default 500 ms) ever reach the browser, never
per-request data, however many requests per second the service handles. The functions here are
pure (no panel, no bokeh) so they are tested alone; :class:`LiveFeed` collects the windows a
``TelemetryHub`` closes, on its thread, for the UI thread to :meth:`~LiveFeed.drain`.
"""

from __future__ import annotations

import math
import queue
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from typing import Any

from workbench.telemetry.histogram import LatencyHistogram
from workbench.telemetry.window import Window
from workbench.ui.state import LiveState, set_outputs

NAN = float("nan")

#: the time-series columns every point carries (x is ``t``: seconds since the session's hub started)
SERIES = (
    "t", "p50", "p90", "p99", "server_p50", "server_p99", "queue_p50", "queue_p99", "compute_p50", "compute_p99",
    "rps", "errors_per_s", "queue_depth", "mean_batch_size",
)


class LiveFeed:
    """Windows from a hub, handed from the hub's thread to the UI thread; the recent ones are kept."""

    def __init__(self, hub: Any, *, keep: int = 240):
        self._queue: queue.SimpleQueue[Window] = queue.SimpleQueue()
        self.recent: deque[Window] = deque(maxlen=keep)
        self._unsubscribe = hub.subscribe(self._queue.put)

    def drain(self) -> list[Window]:
        """The windows closed since the last call, oldest first (call on the UI thread)."""
        out: list[Window] = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                break
        self.recent.extend(out)
        return out

    def newer(self, index: int) -> list[Window]:
        """The recent windows after window ``index``, oldest first: a view keeps the last index it drew,
        so several views can share one session whoever drains the feed."""
        return [w for w in self.recent if w.index > index]

    def close(self) -> None:
        self._unsubscribe()


def _client_side(window: Window) -> bool:
    """Whether a load generator reported this window (else the figures come from the server's records)."""
    return bool(window.sent or window.ok or window.errors or window.latency is not None)


def _ms(stats: Any, key: str) -> float:
    return NAN if stats is None else float(getattr(stats, key))


def point(window: Window) -> dict[str, float]:
    """One window as one point of every time series (NaN where there is nothing to show)."""
    client = _client_side(window)
    latency = window.latency if client else window.server_latency
    length = window.length_s or 1.0
    errors = sum(window.errors.values()) if client else sum(window.server_errors.values())
    return {
        "t": float(window.end_s),
        "p50": _ms(latency, "p50_ms"), "p90": _ms(latency, "p90_ms"), "p99": _ms(latency, "p99_ms"),
        "server_p50": _ms(window.server_latency, "p50_ms"), "server_p99": _ms(window.server_latency, "p99_ms"),
        "queue_p50": _ms(window.queue_time, "p50_ms"), "queue_p99": _ms(window.queue_time, "p99_ms"),
        "compute_p50": _ms(window.compute_time, "p50_ms"), "compute_p99": _ms(window.compute_time, "p99_ms"),
        "rps": window.throughput_rps if client else window.server_throughput_rps,
        "errors_per_s": errors / length,
        "queue_depth": float(sum(window.queue_depth.values())),
        "mean_batch_size": window.mean_batch_size or NAN,
    }


def columns(windows: Sequence[Window]) -> dict[str, list[float]]:
    """Points of several windows as ColumnDataSource columns (for ``source.stream``)."""
    points = [point(w) for w in windows]
    return {name: [p[name] for p in points] for name in SERIES}


def change_markers(windows: Iterable[Window]) -> dict[str, list[Any]]:
    """The configuration changes in ``windows`` as marker columns: time, short label, full text."""
    t: list[float] = []
    label: list[str] = []
    text: list[str] = []
    for window in windows:
        for change in window.changes:
            t.append(float(change.get("at_s", window.end_s)))
            description = str(change.get("description", "")) or ", ".join(change.get("changes", {}))
            text.append(description)
            label.append(description if len(description) <= 40 else description[:39] + "…")
    return {"t": t, "label": label, "text": text}


def batch_histogram(windows: Iterable[Window]) -> dict[str, list[Any]]:
    """Batches computed per batch size over ``windows`` (the batch-size distribution)."""
    counts: Counter[int] = Counter()
    for window in windows:
        counts.update(window.batch_sizes)
    sizes = sorted(counts)
    total = sum(counts.values()) or 1
    return {"size": sizes, "batches": [counts[s] for s in sizes], "share": [counts[s] / total for s in sizes]}


def worker_utilization(windows: Sequence[Window]) -> dict[str, list[Any]]:
    """Each worker's busy fraction (compute time / wall time), averaged over ``windows``."""
    busy: dict[str, float] = {}
    for window in windows:
        for worker, fraction in window.worker_busy.items():
            busy[worker] = busy.get(worker, 0.0) + fraction
    n = max(1, len(windows))
    workers = sorted(busy)
    return {"worker": workers, "busy": [busy[w] / n for w in workers], "percent": [100 * busy[w] / n for w in workers]}


def merged_latency(windows: Sequence[Window]) -> LatencyHistogram | None:
    """The latency histogram of ``windows`` together (client-side where a generator reported, else server)."""
    encoded = [w.histograms.get("latency" if _client_side(w) else "server_latency") for w in windows]
    present = [e for e in encoded if e]
    return LatencyHistogram.merged(present) if present else None


def summarize(state: LiveState, recent: Sequence[Window], *, last: int = 2, added: int = 0) -> None:
    """Update the big numbers from the ``last`` windows of ``recent`` (merged, so p99 stays steady)."""
    tail = list(recent)[-last:]
    if not tail:
        return
    hist = merged_latency(tail)
    seconds = sum(w.length_s for w in tail) or 1.0
    points = [point(w) for w in tail]
    new = list(recent)[-added:] if added else []
    errors_new = sum(sum((w.errors if _client_side(w) else w.server_errors).values()) for w in new)
    changes = [c for w in new for c in w.changes]
    values: dict[str, Any] = {
        "p50_ms": None if hist is None else hist.percentile(50) * 1000.0,
        "p99_ms": None if hist is None else hist.percentile(99) * 1000.0,
        "rps": sum(p["rps"] * w.length_s for p, w in zip(points, tail)) / seconds,
        "errors_per_s": sum(p["errors_per_s"] * w.length_s for p, w in zip(points, tail)) / seconds,
        "errors_total": state.errors_total + errors_new,
        "queue_depth": int(points[-1]["queue_depth"]),
        "mean_batch_size": 0.0 if math.isnan(points[-1]["mean_batch_size"]) else points[-1]["mean_batch_size"],
        "windows": state.windows + added,
    }
    if changes:
        values["last_change"] = str(changes[-1].get("description", ""))
    set_outputs(state, **values)


__all__ = ["SERIES", "LiveFeed", "batch_histogram", "change_markers", "columns", "merged_latency", "point",
           "summarize", "worker_utilization"]
