"""TelemetryHub: gathers client and server timings into windows and hands each closed window out.

Inputs arrive from any thread and cost almost nothing on arrival (a list append under a lock):

- ``add_records(records)``: server RequestRecords, the callback for ``Server.subscribe``;
- ``add_client(report)``: a load generator's ClientReport for one window;
- ``add_change(change)``: a ConfigChange (``Server.subscribe_changes``);
- gauges (``add_gauge``): called once per window at its end, e.g. the queue depth from ``Server.stats()``.

Window ``k`` closes ``grace_ms`` after its end, once every registered load source has reported it
(or, at the latest, ``max_wait_ms`` after its end); then the subscribers receive it, on the hub's
thread. A report or record that arrives after its window closed counts in the next window to close,
so nothing is lost. ``tick(now)`` does one round of that work; tests drive it with their own clock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from workbench.errors import ConfigError
from workbench.telemetry.aggregate import change_dict, client_fields, queue_depths, server_fields
from workbench.telemetry.histogram import LatencyHistogram
from workbench.telemetry.window import ClientReport, Window

if TYPE_CHECKING:
    from workbench.serving.records import ConfigChange, RequestRecord

log = logging.getLogger(__name__)

Subscriber = Callable[[Window], None]


class TelemetryHub:
    """Aggregates timings into ``window_ms`` windows; ``subscribe(cb)`` to receive each closed window."""

    def __init__(self, *, window_ms: float = 500, grace_ms: float = 100, max_wait_ms: float | None = None,
                 history: int = 1200, origin: float | None = None,
                 clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time):
        if not 10 <= window_ms <= 60_000:
            raise ConfigError(f"window_ms must be between 10 and 60000, got {window_ms}")
        if grace_ms < 0:
            raise ConfigError(f"grace_ms must be >= 0, got {grace_ms}")
        self.window_ms = float(window_ms)
        self.window_s = self.window_ms / 1000
        self.grace_s = grace_ms / 1000
        self.max_wait_s = max(self.grace_s, (max_wait_ms if max_wait_ms is not None else 2 * window_ms) / 1000)
        self._clock = clock
        self._wall_clock = wall_clock
        self.origin = clock() if origin is None else float(origin)
        self.windows: deque[Window] = deque(maxlen=history)  # the most recent closed windows
        self._lock = threading.Lock()
        self._tick_lock = threading.Lock()
        self._records: list[RequestRecord] = []
        self._changes: list[ConfigChange] = []
        self._client: dict[int, list[ClientReport]] = {}
        self._sources: dict[str, int] = {}  # name -> first window it reports
        self._gauges: list[Callable[[], dict[str, int]]] = []
        self._sampled: dict[int, dict[str, int]] = {}
        self._subscribers: list[Subscriber] = []
        self._next_index = 0
        self._closed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- time grid ---------------------------------------------------------------------------
    def index_at(self, t: float) -> int:
        """The window that holds monotonic time ``t``."""
        return int((t - self.origin) // self.window_s)

    def window_start(self, index: int) -> float:
        return self.origin + index * self.window_s

    @property
    def next_index(self) -> int:
        """The next window to close."""
        return self._next_index

    # -- inputs (any thread) -----------------------------------------------------------------
    def add_records(self, records: Iterable[RequestRecord]) -> None:
        if self._closed:
            return
        with self._lock:
            self._records.extend(records)

    def add_change(self, change: ConfigChange) -> None:
        if self._closed:
            return
        with self._lock:
            self._changes.append(change)

    def add_client(self, report: ClientReport) -> None:
        if self._closed:
            return
        with self._lock:
            index = max(report.index, self._next_index)  # a late report counts in the next window
            self._client.setdefault(index, []).append(report)

    def register_source(self, name: str, from_index: int = 0) -> None:
        """A load source that reports every window from ``from_index`` on: those windows wait for its
        report (up to ``max_wait_ms`` past their end)."""
        with self._lock:
            self._sources[name] = from_index

    def unregister_source(self, name: str) -> None:
        with self._lock:
            self._sources.pop(name, None)

    def add_gauge(self, gauge: Callable[[], dict[str, int]]) -> Callable[[], None]:
        """``gauge()`` is called at each window's end; its ``{model: depth}`` becomes ``queue_depth``."""
        with self._lock:
            self._gauges.append(gauge)
        return lambda: self._remove(self._gauges, gauge)

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(window)`` for every window that closes from now on. Returns an unsubscribe."""
        with self._lock:
            self._subscribers.append(callback)
        return lambda: self._remove(self._subscribers, callback)

    def attach(self, server: Any) -> Callable[[], None]:
        """Feed this hub from a ``Server``: its records, its config changes and its queue depths (each
        where the server offers it). Returns a function that detaches the hub again."""
        undo: list[Callable[[], None]] = []
        for method, callback in (("subscribe", self.add_records), ("subscribe_changes", self.add_change)):
            if hasattr(server, method):
                result = getattr(server, method)(callback)
                if callable(result):
                    undo.append(result)
        if hasattr(server, "stats"):
            undo.append(self.add_gauge(lambda: queue_depths(server.stats())))

        def detach() -> None:
            for fn in undo:
                fn()
        return detach

    def _remove(self, items: list[Any], item: Any) -> None:
        with self._lock:
            if item in items:
                items.remove(item)

    # -- closing windows ---------------------------------------------------------------------
    def tick(self, now: float | None = None, *, through: int | None = None) -> list[Window]:
        """Close every window that is due at ``now`` (and, if given, every window up to ``through``)."""
        now = self._clock() if now is None else now
        with self._tick_lock:
            current = self.index_at(now)
            self._sample_gauges(current - 1)
            closed = []
            while True:
                k = self._next_index
                end = self.window_start(k + 1)
                if through is None or k > through:
                    if now < end + self.grace_s:
                        break
                    with self._lock:
                        reported = {r.source for r in self._client.get(k, ())}
                        waiting = any(s not in reported for s, first in self._sources.items() if k >= first)
                    if waiting and now < end + self.max_wait_s:
                        break
                closed.append(self._close(k, now))
        for window in closed:
            self._publish(window)
        return closed

    def _sample_gauges(self, index: int) -> None:
        if index < 0 or index in self._sampled or index < self._next_index:
            return
        depths: dict[str, int] = {}
        for gauge in list(self._gauges):
            try:
                depths.update(gauge())
            except Exception:  # a gauge must not stop the telemetry
                log.exception("telemetry gauge failed")
        self._sampled[index] = depths

    def _close(self, k: int, now: float) -> Window:
        start, end = self.window_start(k), self.window_start(k + 1)
        with self._lock:
            records = [r for r in self._records if r.completed_at < end]
            self._records = [r for r in self._records if r.completed_at >= end]
            changes = [c for c in self._changes if c.at < end]
            self._changes = [c for c in self._changes if c.at >= end]
            reports = self._client.pop(k, [])
            self._next_index = k + 1
        records = [r for r in records if r.completed_at >= self.origin]
        fields: dict[str, Any] = {}
        histograms: dict[str, LatencyHistogram] = {}
        for part in (client_fields(reports), server_fields(records, self.window_s)):
            histograms.update(part.pop("_histograms", {}))
            fields.update(part)
        return Window(
            index=k, start_s=round(start - self.origin, 6), end_s=round(end - self.origin, 6),
            wall_time=round(self._wall_clock() - (now - end), 6),
            latency=histograms["latency"].stats() if "latency" in histograms else None,
            server_latency=histograms["server_latency"].stats() if "server_latency" in histograms else None,
            queue_time=histograms["queue_time"].stats() if "queue_time" in histograms else None,
            compute_time=histograms["compute_time"].stats() if "compute_time" in histograms else None,
            queue_depth=self._sampled.pop(k, {}),
            changes=tuple(change_dict(c, self.origin) for c in changes),
            histograms={name: h.encode() for name, h in histograms.items()},
            **fields,
        )

    def _publish(self, window: Window) -> None:
        self.windows.append(window)
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(window)
            except Exception:  # one failing subscriber must not starve the others
                log.exception("telemetry subscriber %r failed", callback)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> TelemetryHub:
        """Close windows on a background thread until ``close()``."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="workbench-telemetry", daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("telemetry tick failed")
            now = self._clock()
            next_boundary = self.window_start(self.index_at(now) + 1)
            next_close = self.window_start(self._next_index + 1) + self.grace_s
            self._stop.wait(max(0.001, min(next_boundary, next_close) - now))

    def flush(self, through: int | None = None) -> list[Window]:
        """Close every window up to ``through`` (default: the one in progress) now, without grace."""
        now = self._clock()
        return self.tick(now, through=self.index_at(now) if through is None else through)

    def close(self, *, flush: bool = True, timeout_s: float = 5.0) -> None:
        """Stop the thread; by default close the window in progress too. Safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        if flush and not self._closed:
            self.flush()
        self._closed = True

    def __enter__(self) -> TelemetryHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TelemetryHub(window_ms={self.window_ms:g}, next_index={self._next_index}, sources={sorted(self._sources)})"


__all__ = ["TelemetryHub"]
