"""What one telemetry window holds, and the part a load generator reports for each window.

A window is ``window_ms`` long and aligned to its hub's origin: window ``k`` covers
``[origin + k·w, origin + (k+1)·w)``. Requests count in the window in which they completed.
Client-side figures come from load generators (latency measured from each request's *intended*
send time); server-side figures come from the server's RequestRecords. Histograms travel along,
HDR-encoded, so windows from several processes, or a whole run, merge exactly later.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from workbench.telemetry.histogram import LatencyStats

#: Names of the histograms a window may carry (in ``Window.histograms``).
HISTOGRAMS = ("latency", "server_latency", "queue_time", "compute_time")
_STATS_FIELDS = HISTOGRAMS


@dataclass(frozen=True, kw_only=True)
class ClientReport:
    """One load generator's figures for one window (a message from the generator process)."""

    source: str
    index: int
    latency: str  # HDR-encoded latencies (from intended send time) of the requests that succeeded
    sent: int  # requests whose intended send time fell in this window
    ok: int
    errors: dict[str, int]
    not_sent: int  # requests due in this window that the generator could not send
    in_flight: int  # requests outstanding when the window closed
    lag_max_ms: float  # the most the generator was behind its schedule in this window
    cpu_fraction: float  # the generator's event-loop thread CPU time / window length


@dataclass(frozen=True, kw_only=True)
class Window:
    """Aggregated telemetry of one window. Plain fields; ``to_dict()`` gives JSON-ready data."""

    index: int
    start_s: float  # since the hub's origin
    end_s: float
    wall_time: float  # time.time() at the window's end
    # client side: what the load generators saw
    sent: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    not_sent: int = 0
    in_flight: int = 0
    latency: LatencyStats | None = None
    generator_lag_ms: float = 0.0
    generator_cpu: float = 0.0
    # server side: from RequestRecords
    server_requests: int = 0
    server_errors: dict[str, int] = field(default_factory=dict)
    server_latency: LatencyStats | None = None
    queue_time: LatencyStats | None = None
    compute_time: LatencyStats | None = None
    queue_depth: dict[str, int] = field(default_factory=dict)  # per model, sampled at the window's end
    batch_sizes: dict[int, int] = field(default_factory=dict)  # batch size -> batches computed
    worker_busy: dict[str, float] = field(default_factory=dict)  # worker -> compute time / window length
    variants: tuple[str, ...] = ()
    changes: tuple[dict[str, Any], ...] = ()  # ConfigChanges that happened in this window
    histograms: dict[str, str] = field(default_factory=dict)  # name (HISTOGRAMS) -> HDR base64

    @property
    def length_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def throughput_rps(self) -> float:
        """Successful responses per second the clients received in this window."""
        return self.ok / self.length_s if self.length_s > 0 else 0.0

    @property
    def server_throughput_rps(self) -> float:
        ok = self.server_requests - sum(self.server_errors.values())
        return ok / self.length_s if self.length_s > 0 else 0.0

    @property
    def mean_batch_size(self) -> float:
        batches = sum(self.batch_sizes.values())
        return sum(k * v for k, v in self.batch_sizes.items()) / batches if batches else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["batch_sizes"] = {str(k): v for k, v in self.batch_sizes.items()}
        data["variants"] = list(self.variants)
        data["changes"] = list(self.changes)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Window:
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        for name in _STATS_FIELDS:
            if kwargs.get(name) is not None:
                kwargs[name] = LatencyStats.from_dict(kwargs[name])
        kwargs["batch_sizes"] = {int(k): int(v) for k, v in kwargs.get("batch_sizes", {}).items()}
        kwargs["variants"] = tuple(kwargs.get("variants", ()))
        kwargs["changes"] = tuple(kwargs.get("changes", ()))
        return cls(**kwargs)

    def to_row(self) -> dict[str, Any]:
        """A flat row for a DataFrame: latency stats spread into columns such as ``latency_p99_ms``."""
        row: dict[str, Any] = {
            "index": self.index, "start_s": self.start_s, "end_s": self.end_s, "wall_time": self.wall_time,
            "sent": self.sent, "ok": self.ok, "errors": sum(self.errors.values()), "not_sent": self.not_sent,
            "in_flight": self.in_flight, "throughput_rps": self.throughput_rps,
            "generator_lag_ms": self.generator_lag_ms, "generator_cpu": self.generator_cpu,
            "server_requests": self.server_requests, "server_errors": sum(self.server_errors.values()),
            "server_throughput_rps": self.server_throughput_rps,
            "queue_depth": sum(self.queue_depth.values()), "mean_batch_size": self.mean_batch_size,
            "changes": len(self.changes),
        }
        for name in _STATS_FIELDS:
            stats = getattr(self, name)
            for key in ("count", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"):
                row[f"{name}_{key}"] = getattr(stats, key) if stats is not None else None
        for kind, n in self.errors.items():
            row[f"error_{kind}"] = n
        for worker, busy in self.worker_busy.items():
            row[f"busy_{worker}"] = busy
        return row


__all__ = ["HISTOGRAMS", "ClientReport", "Window"]
