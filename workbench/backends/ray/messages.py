"""What crosses between the driver (``RayBackend``) and the Serve replicas: small frozen dataclasses.

Times taken on a replica are wall-clock seconds (``time.time()``): replicas may run on other machines,
whose monotonic clocks do not compare with the driver's. The driver converts them with :func:`to_monotonic`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class Reply:
    """One request's answer from a replica: its rows of the batch's output, and how that batch ran."""

    data: np.ndarray
    compute_start: float  # time.time() when the first stage began the batch
    compute_end: float  # time.time() when the last stage finished it
    replica: str  # the first stage's Serve replica id (a pipeline counts as one replica)
    actor_id: str  # its Ray actor id (Ray names a dead actor by it)
    pid: int  # its process id
    batch_rows: int  # rows in the batch this request was computed in


@dataclass(frozen=True, slots=True)
class StageOutput:
    """A whole batch's output from a later pipeline stage, with when the last stage finished it."""

    data: np.ndarray
    compute_end: float


@dataclass(frozen=True, kw_only=True, slots=True)
class ReplicaSettings:
    """The live settings of a model's replicas; Ray Serve delivers them as the deployment's
    ``user_config`` to ``reconfigure()`` on every replica, without restarting it."""

    batching: bool = True
    max_batch_size: int = 32
    max_delay_ms: float = 0.0
    hung_after_s: float = 10.0
    generation: int = 0  # bumped by every change, so replicas can report which settings they run

    def to_dict(self) -> dict[str, Any]:
        return {"batching": self.batching, "max_batch_size": self.max_batch_size, "max_delay_ms": self.max_delay_ms,
                "hung_after_s": self.hung_after_s, "generation": self.generation}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReplicaSettings:
        return cls(batching=bool(data.get("batching", True)), max_batch_size=int(data.get("max_batch_size", 32)),
                   max_delay_ms=float(data.get("max_delay_ms", 0.0)),
                   hung_after_s=float(data.get("hung_after_s", 10.0)), generation=int(data.get("generation", 0)))


def to_monotonic(starts: list[float], ends: list[float], low: float, high: float) -> tuple[float, float]:
    """Replica wall-clock times (``time.time()``) of a request's batches as this process's
    ``time.monotonic()``: the earliest start and the latest end, kept within ``[low, high]`` (when it
    was sent, when it was answered) so that clock skew between machines cannot make them lie outside."""
    shift = time.time() - time.monotonic()
    start = min(max(min(starts) - shift, low), high)
    end = min(max(max(ends) - shift, start), high)
    return start, end


__all__ = ["Reply", "ReplicaSettings", "StageOutput", "to_monotonic"]
