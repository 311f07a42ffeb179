"""Delivery of request records and configuration changes to subscribers.

Records are delivered in lists, on the server's loop thread, once per loop iteration that completed
some: one call per subscriber per iteration, however many requests finished in it. Callbacks must be
quick and must not block (hand the list to a queue to do more); they must not change the list. A
callback that raises is logged and kept.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from workbench.serving.records import ConfigChange, RequestRecord

log = logging.getLogger("workbench.serving")


class Hub:
    """Subscribers of request records and of configuration changes; keeps every change in ``changes``."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.changes: list[ConfigChange] = []
        self._records: list[RequestRecord] = []
        self._record_subscribers: list[Callable[[list[RequestRecord]], None]] = []
        self._change_subscribers: list[Callable[[ConfigChange], None]] = []
        self._flush_scheduled = False

    def subscribe(self, callback: Callable[[list[RequestRecord]], None]) -> Callable[[], None]:
        self._record_subscribers.append(callback)
        return lambda: self._remove(self._record_subscribers, callback)

    def subscribe_changes(self, callback: Callable[[ConfigChange], None]) -> Callable[[], None]:
        self._change_subscribers.append(callback)
        return lambda: self._remove(self._change_subscribers, callback)

    @staticmethod
    def _remove(subscribers: list[Any], callback: Any) -> None:
        if callback in subscribers:
            subscribers.remove(callback)

    def record(self, record: RequestRecord) -> None:
        """Queue a record for this iteration's delivery (called on the loop thread)."""
        if not self._record_subscribers or self.loop is None:
            return
        self._records.append(record)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        records, self._records = self._records, []
        self._flush_scheduled = False
        for callback in list(self._record_subscribers):
            try:
                callback(records)
            except Exception:
                log.exception("a request-record subscriber failed")

    def change(self, model: str, changes: dict[str, list[Any]], description: str) -> ConfigChange:
        """Record a configuration change with its time and tell the change subscribers."""
        change = ConfigChange(model=model, at=time.monotonic(), wall_time=time.time(), changes=changes,
                              description=description)
        self.changes.append(change)
        for callback in list(self._change_subscribers):
            try:
                callback(change)
            except Exception:
                log.exception("a config-change subscriber failed")
        return change


__all__ = ["Hub"]
