"""The load engine: one asyncio event loop sending on schedule and reporting a ClientReport per window.

Open loop: every request has an intended send time from the schedule. The engine starts each
request when it is due (all of them at once if it fell behind) and measures its latency from the
*intended* time, so neither a slow server nor a slow generator hides a stall (no coordinated
omission). How far behind the schedule it started each request (the lag) is measured too: a
growing lag, or requests still unsent at the end, mean the run was limited by the generator.

Closed loop: ``concurrency`` clients each send, wait for the answer, and send again.

Requests count in the window in which they completed; ``sent`` counts in the window of the intended
send time. Windows are aligned to the hub's grid (``Go.window_origin``, ``Go.window_s``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from workbench.load.messages import Done, GeneratorSpec, Go
from workbench.load.schedules import OpenLoop
from workbench.load.targets import Sender
from workbench.telemetry.histogram import LatencyHistogram
from workbench.telemetry.window import ClientReport

log = logging.getLogger(__name__)

#: how late (beyond the schedule's end) a request may still be sent; later ones count as not sent
LATE_LIMIT_S = 1.0
#: event-loop timers have millisecond resolution (uvloop rounds a 0.4 ms sleep to 0, which spun the
#: loop between close arrivals, burning CPU the server under test needs); a request may thus be
#: sent up to this late, which shows in its lag and, as its latency counts from the intended time,
#: in its latency
TIMER_RESOLUTION_S = 0.001


class _Acc:
    """What happened in one window, while it is open."""

    __slots__ = ("errors", "lag", "lat", "not_sent", "ok", "sent")

    def __init__(self) -> None:
        self.lat: list[float] = []
        self.lag: list[float] = []
        self.sent = 0
        self.ok = 0
        self.not_sent = 0
        self.errors: dict[str, int] = {}


class Engine:
    """Runs one generator's share of a schedule against a sender; ``emit`` receives its reports."""

    def __init__(self, spec: GeneratorSpec, sender: Sender, emit: Callable[[Any], None]):
        self.spec = spec
        self.sender = sender
        self.emit = emit
        schedule = spec.schedule
        self.arrivals: list[float] = (schedule.arrivals(spec.duration_s, part=spec.part, parts=spec.parts).tolist()
                                      if isinstance(schedule, OpenLoop) else [])
        self.in_flight = 0
        self.stop_requested = False
        self._acc: dict[int, _Acc] = {}
        self._next_flush = 0
        self._origin = 0.0
        self._w = 0.5
        self._tasks: set[asyncio.Task[None]] = set()
        self._latency = LatencyHistogram()
        self._lag = LatencyHistogram()
        self._totals: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()
        self._first_send: float | None = None
        self._last_send: float | None = None
        self._last_completion: float | None = None
        self._mark = (0.0, 0.0)
        self._cpu0 = 0.0

    def request_stop(self) -> None:
        self.stop_requested = True

    # -- windows -----------------------------------------------------------------------------
    def _index(self, t: float) -> int:
        return int((t - self._origin) // self._w)

    def _acc_at(self, t: float) -> _Acc:
        k = max(self._index(t), self._next_flush)
        acc = self._acc.get(k)
        if acc is None:
            acc = self._acc[k] = _Acc()
        return acc

    def _flush(self, through: int) -> None:
        if through < self._next_flush:
            return
        now, cpu = time.monotonic(), time.thread_time()
        wall = now - self._mark[0]
        cpu_fraction = round((cpu - self._mark[1]) / wall, 4) if wall > 0 else 0.0
        self._mark = (now, cpu)
        for k in range(self._next_flush, through + 1):
            acc = self._acc.pop(k, None) or _Acc()
            hist = LatencyHistogram()
            hist.record_many(acc.lat)
            self._latency.merge(hist)
            self._lag.record_many(acc.lag)
            self._totals.update(sent=acc.sent, ok=acc.ok, not_sent=acc.not_sent)
            self._errors.update(acc.errors)
            self._next_flush = k + 1
            self.emit(ClientReport(
                source=self.spec.source, index=k, latency=hist.encode(), sent=acc.sent, ok=acc.ok,
                errors=dict(acc.errors), not_sent=acc.not_sent, in_flight=self.in_flight,
                lag_max_ms=round(max(acc.lag, default=0.0) * 1e3, 3), cpu_fraction=cpu_fraction))

    async def _ticker(self) -> None:
        while True:
            now = time.monotonic()
            boundary = self._origin + (self._index(now) + 1) * self._w
            await asyncio.sleep(boundary - now + 0.0005)
            self._flush(self._index(time.monotonic()) - 1)

    # -- sending -----------------------------------------------------------------------------
    def _finish(self, kind: str | None, started: float) -> None:
        done = time.monotonic()
        acc = self._acc_at(done)
        if kind is None:
            acc.ok += 1
            acc.lat.append(done - started)
        else:
            acc.errors[kind] = acc.errors.get(kind, 0) + 1
        self.in_flight -= 1
        self._last_completion = done

    async def _one(self, intended: float) -> None:
        try:
            kind = await self.sender.send()
        except Exception as exc:  # a sender bug must not kill the run; count it
            log.warning("send failed: %r", exc)
            kind = "error"
        self._finish(kind, intended)

    async def _open_loop(self, t0: float) -> None:
        arrivals, n, i = self.arrivals, len(self.arrivals), 0
        issue_deadline = t0 + self.spec.duration_s + LATE_LIMIT_S
        backlog = self.spec.max_in_flight
        while i < n and not self.stop_requested:
            now = time.monotonic()
            due = t0 + arrivals[i]
            if due > now:  # sleep at least the timer's resolution: shorter sleeps would spin the loop
                await asyncio.sleep(min(max(due - now, TIMER_RESOLUTION_S), 0.1))
                continue
            if now > issue_deadline:
                break
            if self._first_send is None:
                self._first_send = now
            while i < n and t0 + arrivals[i] <= now:
                intended = t0 + arrivals[i]
                acc = self._acc_at(intended)
                acc.lag.append(now - intended)
                if self.in_flight >= backlog:
                    acc.not_sent += 1
                else:
                    acc.sent += 1
                    self.in_flight += 1
                    task = asyncio.ensure_future(self._one(intended))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                i += 1
            self._last_send = now
            await asyncio.sleep(0)
        if i < n and not self.stop_requested:  # fell so far behind that the run ended first
            self._acc_at(time.monotonic()).not_sent += n - i

    async def _client(self, t0: float, end: float) -> None:
        think_s = getattr(self.spec.schedule, "think_ms", 0.0) / 1000
        await asyncio.sleep(max(0.0, t0 - time.monotonic()))
        while not self.stop_requested:
            start = time.monotonic()
            if start >= end:
                break
            if self._first_send is None:
                self._first_send = start
            self._last_send = start
            self._acc_at(start).sent += 1
            self.in_flight += 1
            try:
                kind = await self.sender.send()
            except Exception as exc:
                log.warning("send failed: %r", exc)
                kind = "error"
            self._finish(kind, start)
            if think_s:
                await asyncio.sleep(think_s)

    async def _closed_loop(self, t0: float) -> None:
        end = t0 + self.spec.duration_s
        for _ in range(self.spec.concurrency):
            task = asyncio.ensure_future(self._client(t0, end))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        while self._tasks and not self.stop_requested and time.monotonic() < end:
            await asyncio.sleep(min(0.1, max(0.0, end - time.monotonic())))

    async def _drain(self) -> int:
        """Wait for outstanding requests (``drain_s``, or 2 s after a stop); cancel the rest."""
        deadline = time.monotonic() + (min(2.0, self.spec.drain_s) if self.stop_requested else self.spec.drain_s)
        while self._tasks and time.monotonic() < deadline:
            await asyncio.wait(set(self._tasks), timeout=min(0.1, deadline - time.monotonic()))
            if self.stop_requested:
                deadline = min(deadline, time.monotonic() + 2.0)
        unfinished = self.in_flight
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=1.0)
        if unfinished:
            acc = self._acc_at(time.monotonic())
            acc.errors["unfinished"] = acc.errors.get("unfinished", 0) + unfinished
            self.in_flight = 0
        return unfinished

    async def run(self, go: Go) -> Done:
        """Run the schedule from ``go.t0``; report windows as they close; return the totals."""
        self._origin, self._w = go.window_origin, go.window_s
        self._next_flush = self._index(go.t0)
        self._mark = (time.monotonic(), time.thread_time())
        self._cpu0 = self._mark[1]
        ticker = asyncio.ensure_future(self._ticker())
        try:
            if self.arrivals or isinstance(self.spec.schedule, OpenLoop):
                await self._open_loop(go.t0)
            else:
                await self._closed_loop(go.t0)
            unfinished = await self._drain()
        finally:
            ticker.cancel()
        ended = time.monotonic()
        self._flush(self._index(ended))
        return Done(
            source=self.spec.source, t0=go.t0, first_send=self._first_send, last_send=self._last_send,
            last_completion=self._last_completion, ended_at=ended, sent=self._totals["sent"],
            ok=self._totals["ok"], errors=dict(self._errors), not_sent=self._totals["not_sent"],
            unfinished=unfinished, latency=self._latency.encode(), lag=self._lag.encode(),
            cpu_s=round(time.thread_time() - self._cpu0, 4), stopped_early=self.stop_requested,
            last_index=self._next_flush - 1)


__all__ = ["Engine"]
