"""Messages between a LoadRun and its generator processes (small frozen dataclasses over pipes).

Parent → generator: ``Go`` (start at this monotonic time, on this window grid), ``Stop``.
Generator → parent: ``Ready`` (prepared), ``ClientReport`` per window (telemetry.window), ``Done``
(totals and whole-run histograms), ``Failed`` (an error to show the user).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import workbench.errors as errors
from workbench.errors import WorkbenchError
from workbench.load.schedules import Schedule


@dataclass(frozen=True, kw_only=True)
class GeneratorSpec:
    """Everything one generator needs; picklable so it crosses into a spawned process."""

    source: str
    target: Any  # HttpTarget, or InProcessTarget on a thread
    schedule: Schedule
    duration_s: float
    part: int = 0
    parts: int = 1
    concurrency: int = 0  # closed loop: this generator's clients
    max_connections: int = 256
    max_in_flight: int = 10_000
    drain_s: float = 10.0
    start_timeout_s: float = 60.0
    use_uvloop: bool = True


@dataclass(frozen=True, kw_only=True)
class Go:
    t0: float  # time.monotonic() at which the schedule starts
    window_origin: float
    window_s: float


@dataclass(frozen=True)
class Stop:
    reason: str = "stopped"


@dataclass(frozen=True, kw_only=True)
class Ready:
    source: str
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Failed:
    source: str
    error_type: str  # the WorkbenchError class name, to raise the same kind in the parent
    message: str

    def to_error(self) -> WorkbenchError:
        """The same kind of error in the parent (a ServingError for anything unexpected)."""
        cls = getattr(errors, self.error_type, None)
        if isinstance(cls, type) and issubclass(cls, WorkbenchError):
            try:
                return cls(self.message)
            except TypeError:
                pass
        return errors.ServingError(f"the load generator failed: {self.error_type}: {self.message}")


@dataclass(frozen=True, kw_only=True)
class Done:
    """One generator's totals for the whole run."""

    source: str
    t0: float
    first_send: float | None
    last_send: float | None
    last_completion: float | None
    ended_at: float
    sent: int
    ok: int
    errors: dict[str, int]
    not_sent: int
    unfinished: int  # still outstanding when the drain time ran out (counted in errors too)
    latency: str  # HDR-encoded, every successful request, from intended send time
    lag: str  # HDR-encoded lag behind the schedule at each send
    cpu_s: float  # CPU time of the generator's event-loop thread during the run
    stopped_early: bool
    last_index: int  # the last window it reported


__all__ = ["Done", "Failed", "GeneratorSpec", "Go", "Ready", "Stop"]
