"""Timing records: every request leaves one. All metrics, plots and Prometheus series derive from them.

Times are ``time.monotonic()`` seconds. On Linux that clock is system-wide, so times taken in worker
processes (compute start and end) are comparable with the controller's.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Outcomes a request can end with.
OUTCOMES = ("ok", "overloaded", "timeout", "crashed", "error", "bad_request", "cancelled")


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What happened to one request, from arrival to answer."""

    request_id: int
    model: str
    outcome: str  # one of OUTCOMES
    rows: int  # rows (batch entries) this request carried
    received_at: float
    completed_at: float
    enqueued_at: float | None = None
    dispatched_at: float | None = None  # its batch left the controller for a worker
    compute_start: float | None = None  # on the worker (first pipeline stage)
    compute_end: float | None = None  # on the worker (last pipeline stage)
    worker: str | None = None  # e.g. "mlp/r0" (replica 0); a pipeline is one replica
    batch_size: int = 0  # rows in the batch this request was computed in
    retries: int = 0
    variant: str = ""

    @property
    def latency_s(self) -> float:
        return self.completed_at - self.received_at

    @property
    def queue_s(self) -> float | None:
        """Time from arrival until its batch left for a worker."""
        return None if self.dispatched_at is None else self.dispatched_at - self.received_at

    @property
    def compute_s(self) -> float | None:
        if self.compute_start is None or self.compute_end is None:
            return None
        return self.compute_end - self.compute_start


@dataclass(frozen=True, slots=True)
class ConfigChange:
    """A live change of a model's serving configuration, with its time (plots mark these)."""

    model: str
    at: float  # time.monotonic()
    wall_time: float  # time.time(), for run records and plots
    changes: dict  # field -> [old, new]
    description: str


__all__ = ["OUTCOMES", "ConfigChange", "RequestRecord"]
