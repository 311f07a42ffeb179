"""Messages between the controller and worker processes: small frozen dataclasses, never tuples.

Flow of one replica (a pipeline of K stage processes; K = 1 is a plain worker)::

    controller ──WorkItem──► stage 0 ──WorkItem (micro-batches)──► ... ──► stage K-1 ──Result──► controller

Control messages (:class:`WorkerReady`, :class:`WorkerError`) travel the same way: each stage passes
on what it does not compute, so everything reaches the controller through the last stage's pipe.
:class:`Shutdown` goes downstream and stops each stage after the work queued before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class StageSpec:
    """What one stage process needs to start: given at spawn time."""

    replica: str  # e.g. "mlp/r0"
    artifact: Any  # ModelArtifact (picklable: a path + its manifest)
    stage: int
    stages: int
    split: Sequence[int] | None
    threads: int
    device: str
    micro_batch_rows: int | None
    parent_pid: int


@dataclass(frozen=True)
class WorkItem:
    """A batch (``parts == 1``) or one micro-batch ``part`` of ``parts`` of batch ``batch_id``."""

    batch_id: int
    data: np.ndarray | None
    part: int = 0
    parts: int = 1
    compute_start: float | None = None  # set by stage 0 when it starts the batch
    error: str | None = None  # set by a stage that failed this part; later stages pass it on


@dataclass(frozen=True)
class Result:
    """The outputs of a whole batch, rows in the order they were sent, or the error that stopped it."""

    batch_id: int
    data: np.ndarray | None
    compute_start: float
    compute_end: float
    error: str | None = None


@dataclass(frozen=True)
class WorkerReady:
    replica: str
    stage: int
    pid: int
    device: str


@dataclass(frozen=True)
class WorkerError:
    """A stage could not start (its model would not load); the message says why."""

    replica: str
    stage: int
    message: str


@dataclass(frozen=True)
class Shutdown:
    reason: str = ""


__all__ = ["Result", "Shutdown", "StageSpec", "WorkItem", "WorkerError", "WorkerReady"]
