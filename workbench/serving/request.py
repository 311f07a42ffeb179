"""What the controller holds for each request and each batch while they are in its hands.

A request of R rows travels whole unless R is larger than ``max_batch_size``: then it is cut into
chunks of at most ``max_batch_size`` rows (each a :class:`Request` with a ``parent``), which may go in
different batches and to different replicas; the parent completes when every chunk has, its outputs
reassembled in row order.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class Request:
    """One request (or one chunk of a split request). ``future`` is an ``asyncio.Future`` or a
    ``concurrent.futures.Future``: both have ``done``/``set_result``/``set_exception``."""

    __slots__ = (
        "id", "data", "rows", "future", "received_at", "enqueued_at", "deadline", "retries", "parent",
        "offset", "timer", "finished", "dispatched_at", "compute_start", "compute_end", "worker",
        "batch_size", "remaining", "out", "variant",
    )

    def __init__(self, id: int, data: np.ndarray, future: Any, received_at: float, deadline: float,
                 parent: Request | None = None, offset: int = 0):
        self.id = id
        self.data = data
        self.rows = len(data)
        self.future = future
        self.received_at = received_at
        self.enqueued_at: float | None = None
        self.deadline = deadline
        self.retries = 0
        self.parent = parent
        self.offset = offset  # first row of this chunk in its parent
        self.timer: Any = None
        self.finished = False
        self.dispatched_at: float | None = None
        self.compute_start: float | None = None
        self.compute_end: float | None = None
        self.worker: str | None = None
        self.batch_size = 0
        self.remaining = self.rows  # rows not yet computed (a split parent counts its chunks' rows)
        self.out: np.ndarray | None = None
        self.variant = ""

    @property
    def cancelled(self) -> bool:
        """True once nobody waits for this request's result (done, timed out, or given up)."""
        top = self.parent if self.parent is not None else self
        return top.finished or top.future.done()

    def split(self, size: int) -> list[Request]:
        """Chunks of at most ``size`` rows, sharing this request's deadline."""
        return [Request(self.id, self.data[i:i + size], self.future, self.received_at, self.deadline,
                        parent=self, offset=i) for i in range(0, self.rows, size)]

    def note_batch(self, batch: Batch, compute_start: float | None, compute_end: float | None) -> None:
        """Remember where and when this request (or chunk) was computed, merging into its parent."""
        top = self.parent if self.parent is not None else self
        top.dispatched_at = batch.dispatched_at if top.dispatched_at is None else max(top.dispatched_at, batch.dispatched_at)
        if compute_start is not None:
            top.compute_start = compute_start if top.compute_start is None else min(top.compute_start, compute_start)
        if compute_end is not None:
            top.compute_end = compute_end if top.compute_end is None else max(top.compute_end, compute_end)
        top.worker = batch.worker
        top.variant = batch.variant
        top.batch_size = max(top.batch_size, batch.rows)
        top.retries = max(top.retries, self.retries)


class Batch:
    """Requests computed together on one replica. ``requests`` are in row order."""

    __slots__ = ("id", "requests", "rows", "dispatched_at", "worker", "variant")

    def __init__(self, id: int, requests: list[Request], dispatched_at: float, worker: str, variant: str = ""):
        self.id = id
        self.variant = variant
        self.requests = requests
        self.rows = sum(r.rows for r in requests)
        self.dispatched_at = dispatched_at
        self.worker = worker

    def data(self) -> np.ndarray:
        reqs = self.requests
        return reqs[0].data if len(reqs) == 1 else np.concatenate([r.data for r in reqs])


__all__ = ["Batch", "Request"]
