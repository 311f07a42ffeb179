"""The dynamic batcher: a plain unit (no I/O, no threads) with an injectable clock.

Items are anything with ``rows`` (how many batch entries it carries) and ``cancelled`` (True once it
no longer needs computing, e.g. it timed out while queued). Rules:

- a batch is *ready* when the queue holds at least ``max_batch_size`` rows (full) or when its oldest
  item has waited ``max_delay_ms`` (due); ``max_delay_ms = 0`` makes any queued item ready at once;
- a batch takes items in arrival order while their rows fit in ``max_batch_size`` and stops at the
  first that does not fit (no reordering); the first item is always taken, so an item larger than
  ``max_batch_size`` (possible only after the size was lowered live) travels alone;
- with batching disabled, every item is a batch of its own, ready at once;
- cancelled items are dropped when met; a batch is never empty (``None`` is returned instead).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar


class Batchable(Protocol):
    @property
    def rows(self) -> int: ...

    @property
    def cancelled(self) -> bool: ...


T = TypeVar("T", bound=Batchable)


class DynamicBatcher(Generic[T]):
    """Holds waiting items and hands out batches by the rules in the module docstring."""

    def __init__(
        self, *, max_batch_size: int = 32, max_delay_ms: float = 0.0, enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._queue: deque[tuple[float, T]] = deque()
        self._rows = 0
        self.clock = clock
        self.max_batch_size = max_batch_size
        self.max_delay_s = max_delay_ms / 1000.0
        self.enabled = enabled

    def configure(self, *, max_batch_size: int | None = None, max_delay_ms: float | None = None,
                  enabled: bool | None = None) -> None:
        """Change the rules; they apply to the very next batch."""
        if max_batch_size is not None:
            self.max_batch_size = max_batch_size
        if max_delay_ms is not None:
            self.max_delay_s = max_delay_ms / 1000.0
        if enabled is not None:
            self.enabled = enabled

    # ------------------------------------------------------------------ queue
    @property
    def rows(self) -> int:
        """Rows queued (cancelled items count until they are dropped)."""
        return self._rows

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, item: T, now: float | None = None) -> float:
        """Queue ``item``; returns its enqueue time."""
        t = self.clock() if now is None else now
        self._queue.append((t, item))
        self._rows += item.rows
        return t

    def drain(self) -> list[T]:
        """Remove and return every queued item that is not cancelled."""
        items = [item for _, item in self._queue if not item.cancelled]
        self._queue.clear()
        self._rows = 0
        return items

    # ---------------------------------------------------------------- batches
    def oldest_enqueued_at(self) -> float | None:
        return self._queue[0][0] if self._queue else None

    def due_in(self, now: float | None = None) -> float | None:
        """Seconds until a batch is ready (0: ready now); ``None`` when nothing is queued."""
        if not self._queue:
            return None
        if not self.enabled or self._rows >= self.max_batch_size:
            return 0.0
        now = self.clock() if now is None else now
        return max(0.0, self._queue[0][0] + self.max_delay_s - now)

    def ready(self, now: float | None = None) -> bool:
        return self.due_in(now) == 0.0

    def next_batch(self, now: float | None = None) -> list[T] | None:
        """The next batch if one is ready, else ``None``. Never an empty list."""
        if not self.ready(now):
            return None
        queue = self._queue
        while queue and queue[0][1].cancelled:  # drop what no longer needs computing
            self._rows -= queue.popleft()[1].rows
        if not queue:
            return None
        first = queue.popleft()[1]
        self._rows -= first.rows
        batch = [first]
        if not self.enabled:
            return batch
        room = self.max_batch_size - first.rows
        while queue and room > 0:
            item = queue[0][1]
            if item.cancelled:
                queue.popleft()
                self._rows -= item.rows
                continue
            if item.rows > room:
                break
            queue.popleft()
            self._rows -= item.rows
            room -= item.rows
            batch.append(item)
        return batch


__all__ = ["Batchable", "DynamicBatcher"]
