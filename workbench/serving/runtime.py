"""The controller's side of one served model: admission, batching, routing, results, retries, records.

Runs entirely on the server's event loop. A request's life::

    admit ──► batcher ──(a replica can take work and a batch is ready)──► router ──► replica
      │ refused: Overloaded / ConfigError / BackendUnavailable, at once
      └─ deadline timer: RequestTimeout if not done by then, wherever it is

Results go back to their requests by row offset. A replica that dies hands back its batches: each
request not yet retried ``retries`` times is sent again, ahead of the queue, to another replica (or
the replacement), and *alone*, so an input that kills or hangs its worker cannot take the requests it
was batched with down a second time; the others end with ``WorkerCrashed``. Batches that were only
waiting behind the computing ones are sent again without using up a retry. Every request ends exactly once, with a result or
an error, and leaves a :class:`~workbench.serving.records.RequestRecord`.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

import numpy as np

from workbench.errors import BackendUnavailable, ConfigError, Overloaded, RequestTimeout, ServingError, WorkerCrashed
from workbench.serving.batcher import DynamicBatcher
from workbench.serving.config import RESTART_FIELDS, ServeConfig
from workbench.serving.messages import Result
from workbench.serving.pool import WorkerPool
from workbench.serving.records import RequestRecord
from workbench.serving.replica import Replica, ReplicaSpec
from workbench.serving.request import Batch, Request
from workbench.serving.routing import make_router


class ModelRuntime:
    """One model's queue, router and worker pool. Every method runs on the server's loop."""

    def __init__(self, name: str, artifact: Any, config: ServeConfig, loop: asyncio.AbstractEventLoop,
                 sink: Callable[[RequestRecord], None]):
        self.name = name
        self.loop = loop
        self.config = config
        self.artifact = artifact
        self.signature = artifact.signature
        self._dtype = np.dtype(self.signature.input.dtype)
        self.sink = sink
        b = config.batching
        self.batcher: DynamicBatcher[Request] = DynamicBatcher(
            max_batch_size=b.max_batch_size, max_delay_ms=b.max_delay_ms, enabled=b.enabled)
        self.router = make_router(config.routing)
        self.pool = WorkerPool(name, loop, ReplicaSpec(artifact, config.placement, 0, artifact.variant), self)
        self.outcomes: Counter[str] = Counter()
        self.peak_queue_rows = 0
        self.closed = False
        self._retries: deque[Request] = deque()  # sent again, one per batch, before the queue
        self._batch_ids = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._pump_soon = False
        self._done_rows = 0
        self._rate_samples: deque[tuple[float, int]] = deque(maxlen=21)

    @property
    def variant(self) -> str:
        return self.pool.spec.variant

    def start(self) -> None:
        self.pool.reconcile()

    # -------------------------------------------------------------- admission
    def admit(self, request_id: int, data: Any, timeout_ms: float | None, future: Any, received_at: float) -> Request:
        """Queue a request or raise at once (ConfigError, Overloaded, BackendUnavailable)."""
        try:
            spec = self.signature.input
            if type(data) is not np.ndarray:
                try:
                    data = np.asarray(data, dtype=spec.dtype)
                except (ValueError, TypeError) as exc:
                    raise ConfigError(f"input {spec.name!r} cannot be read as {spec.dtype}: {exc}") from None
            if timeout_ms is not None and not (isinstance(timeout_ms, (int, float)) and timeout_ms > 0):
                raise ConfigError(f"timeout_ms must be a number > 0, got {timeout_ms!r}")
            if data.ndim == 0 or data.dtype != self._dtype or data.shape[1:] != spec.shape or not data.shape[0]:
                spec.check_batch(data)  # raises the clear error
            if self.closed:
                raise BackendUnavailable(f"model {self.name!r} is shutting down", model=self.name,
                                         request_id=request_id)
            if not self.pool.serving():
                raise BackendUnavailable(
                    f"model {self.name!r} has no running workers: {self.pool.failed or self.pool.last_error}",
                    model=self.name, request_id=request_id)
            rows = len(data)
            limit = self.config.admission.max_queue
            if self.batcher.rows + rows > limit:
                too_big = rows > limit
                raise Overloaded(
                    f"model {self.name!r}: a request of {rows} rows can never fit max_queue={limit} rows"
                    if too_big else
                    f"model {self.name!r} is overloaded: {self.batcher.rows} rows queued, max_queue={limit}; "
                    "retry later",
                    retry_after_s=self.retry_after_s(), model=self.name, request_id=request_id)
        except Exception as exc:
            outcome = "overloaded" if isinstance(exc, Overloaded) else (
                "bad_request" if isinstance(exc, ValueError) else "error")
            now = time.monotonic()
            rows = len(data) if isinstance(data, np.ndarray) and data.ndim else 0
            self.outcomes[outcome] += 1
            self.sink(RequestRecord(request_id=request_id, model=self.name, outcome=outcome, rows=rows,
                                    received_at=received_at, completed_at=now, variant=self.variant))
            raise
        timeout_s = (self.config.admission.timeout_ms if timeout_ms is None else timeout_ms) / 1000.0
        req = Request(request_id, data, future, received_at, received_at + timeout_s)
        now = time.monotonic()
        size = self.batcher.max_batch_size
        if self.batcher.enabled and rows > size:
            for chunk in req.split(size):
                chunk.enqueued_at = self.batcher.add(chunk, now)
            req.enqueued_at = now
        else:
            req.enqueued_at = self.batcher.add(req, now)
        if self.batcher.rows > self.peak_queue_rows:
            self.peak_queue_rows = self.batcher.rows
        req.timer = self.loop.call_at(req.deadline, self._expire, req)
        if not self._pump_soon:  # at the end of this loop iteration: requests admitted together batch together
            self._pump_soon = True
            self.loop.call_soon(self.pump)
        return req

    def cancel(self, request: Request) -> None:
        """The caller stopped waiting (e.g. its HTTP client went away): end it as ``cancelled``."""
        self._end(request, "cancelled", None)

    def retry_after_s(self) -> float:
        """How long the queue takes to drain at the recent completion rate (0.05–30 s; 1 s if unknown)."""
        rate = self.rows_per_s()
        if rate <= 0:
            return 1.0
        return min(30.0, max(0.05, self.batcher.rows / rate))

    def rows_per_s(self) -> float:
        s = self._rate_samples
        if len(s) < 2 or s[-1][0] <= s[0][0]:
            return 0.0
        return (s[-1][1] - s[0][1]) / (s[-1][0] - s[0][0])

    # --------------------------------------------------------------- dispatch
    def pump(self) -> None:
        """Send every ready batch to a replica that can take it."""
        self._pump_soon = False
        retries = self._retries
        while retries:
            r = retries[0]
            if r.cancelled:
                retries.popleft()
                continue
            replicas = self.pool.available()
            if not replicas:
                return
            retries.popleft()
            self._dispatch(replicas, [r], time.monotonic())
        batcher = self.batcher
        while len(batcher):
            replicas = self.pool.available()
            if not replicas:
                return
            now = time.monotonic()
            requests = batcher.next_batch(now)
            if requests is None:
                wait = batcher.due_in(now)
                if wait is not None:
                    self._arm_timer(now + wait)
                return
            self._dispatch(replicas, requests, now)

    def _dispatch(self, replicas: list[Replica], requests: list[Request], now: float) -> None:
        replica = replicas[0] if len(replicas) == 1 else self.router.choose(replicas, requests)
        for r in requests:  # where it is, for a timeout's message
            top = r.parent if r.parent is not None else r
            top.dispatched_at, top.worker = now, replica.name
        replica.dispatch(Batch(next(self._batch_ids), requests, now, replica.name, replica.spec.variant))

    def _arm_timer(self, at: float) -> None:
        if self._timer is not None:
            if self._timer_at <= at:
                return
            self._timer.cancel()
        self._timer_at = at
        self._timer = self.loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.pump()

    # ---------------------------------------------------------------- results
    def on_result(self, replica: Replica, result: Result) -> None:
        batch = replica.take(result.batch_id)
        if batch is None:
            return
        out = result.data
        if result.error is None and (out is None or len(out) != batch.rows):
            result = Result(batch_id=result.batch_id, data=None, compute_start=result.compute_start,
                            compute_end=result.compute_end,
                            error=f"the model returned {0 if out is None else len(out)} rows for {batch.rows}")
        if result.error is not None:
            for r in batch.requests:
                r.note_batch(batch, result.compute_start, result.compute_end)
                self._end(r, "error", ServingError(f"model {self.name!r} failed on this input: {result.error}",
                                                   model=self.name, request_id=r.id))
        else:
            offset = 0
            for r in batch.requests:
                n = r.rows
                if not r.cancelled:
                    r.note_batch(batch, result.compute_start, result.compute_end)
                    self._part_done(r, out[offset:offset + n])  # type: ignore[index]
                offset += n
            self._done_rows += batch.rows
        self.pump()

    def _part_done(self, r: Request, out: np.ndarray) -> None:
        top = r.parent
        if top is None:
            self._end(r, "ok", out)
            return
        if top.out is None:
            top.out = np.empty((top.rows, *out.shape[1:]), dtype=out.dtype)
        top.out[r.offset:r.offset + r.rows] = out
        top.remaining -= r.rows
        if top.remaining == 0:
            self._end(top, "ok", top.out)

    def _end(self, r: Request, outcome: str, value: Any) -> None:
        """End a request (or a chunk's parent) exactly once: resolve its future, count, record."""
        top = r.parent if r.parent is not None else r
        if top.finished:
            return
        top.finished = True
        if top.timer is not None:
            top.timer.cancel()
        future = top.future
        if not future.done():
            if outcome == "ok":
                future.set_result(value)
            elif outcome == "cancelled":
                future.cancel()
            else:
                future.set_exception(value)
        self.outcomes[outcome] += 1
        self.sink(RequestRecord(
            request_id=top.id, model=self.name, outcome=outcome, rows=top.rows, received_at=top.received_at,
            completed_at=time.monotonic(), enqueued_at=top.enqueued_at, dispatched_at=top.dispatched_at,
            compute_start=top.compute_start, compute_end=top.compute_end, worker=top.worker,
            batch_size=top.batch_size, retries=top.retries, variant=top.variant or self.variant))

    def _expire(self, r: Request) -> None:
        r.timer = None
        if r.finished:
            return
        where = "waiting in the queue" if r.dispatched_at is None else f"on worker {r.worker or '?'}"
        waited_ms = (r.deadline - r.received_at) * 1000
        self._end(r, "timeout", RequestTimeout(
            f"request {r.id} to model {self.name!r} did not complete within its deadline of {waited_ms:.0f} ms "
            f"(last seen {where}); raise timeout_ms or lower the load", model=self.name, request_id=r.id))

    def on_lost(self, replica: Replica, batches: list[Batch]) -> None:
        """A replica died holding ``batches`` (in dispatch order). The oldest ``stages`` of them may have
        been computing: their requests use up one of their ``retries`` (or fail with WorkerCrashed once
        none is left). The later ones were only waiting behind them, so they are sent again for free."""
        now = time.monotonic()
        may_have_run = replica.spec.placement.stages
        for i, batch in enumerate(batches):
            for r in batch.requests:
                if r.cancelled:
                    continue
                attempted = i < may_have_run
                if not self.closed and now < r.deadline and (not attempted or r.retries < self.config.admission.retries):
                    r.retries += attempted
                    self._retries.append(r)
                else:
                    self._end(r, "crashed", WorkerCrashed(
                        f"request {r.id} to model {self.name!r} was lost: worker {replica.name} "
                        f"{replica.exit_reason} (tried {r.retries + 1} time(s))", model=self.name, request_id=r.id))

    def on_capacity(self) -> None:
        if (len(self.batcher) or self._retries) and not self.pool.serving():
            why = self.pool.failed or self.pool.last_error or "no replica is running"
            for r in self._drain():
                self._end(r, "error", BackendUnavailable(f"model {self.name!r} has no running workers: {why}",
                                                         model=self.name, request_id=r.id))
        self.pump()

    # ------------------------------------------------------------ management
    def tick(self, now: float) -> None:
        """Every 100 ms: the pool's watchdog and the completion-rate sample."""
        self.pool.check(now, self.config.admission.hung_after_s)
        self._rate_samples.append((now, self._done_rows))

    def apply(self, config: ServeConfig, artifact: Any = None) -> None:
        """Make ``config`` (and, if given, a new artifact) the served one. Batching, routing and admission
        apply at once; replica count scales; other placement changes and a new artifact roll."""
        old = self.config
        self.config = config
        b = config.batching
        self.batcher.configure(max_batch_size=b.max_batch_size, max_delay_ms=b.max_delay_ms, enabled=b.enabled)
        if config.routing != old.routing:
            self.router = make_router(config.routing)
        changed = old.diff(config)
        spec = self.pool.spec
        if artifact is not None or any(k in changed for k in RESTART_FIELDS):
            artifact = artifact if artifact is not None else spec.artifact
            self.artifact, self.signature = artifact, artifact.signature
            self.pool.set_spec(ReplicaSpec(artifact, config.placement, self.pool.new_generation(), artifact.variant))
        elif config.placement != old.placement:
            self.pool.set_spec(ReplicaSpec(spec.artifact, config.placement, spec.generation, spec.variant))
        self.pump()

    def restore(self, config: ServeConfig, spec: ReplicaSpec) -> None:
        """Go back to a previous config and replica spec (a change whose new workers failed to start)."""
        self.config = config
        b = config.batching
        self.batcher.configure(max_batch_size=b.max_batch_size, max_delay_ms=b.max_delay_ms, enabled=b.enabled)
        self.router = make_router(config.routing)
        self.artifact, self.signature = spec.artifact, spec.artifact.signature
        self.pool.set_spec(spec)
        self.pump()

    def _drain(self) -> list[Request]:
        out = [r for r in self._retries if not r.cancelled] + self.batcher.drain()
        self._retries.clear()
        return out

    def idle(self) -> bool:
        return not len(self.batcher) and not self._retries and not any(r.inflight for r in self.pool.replicas)

    async def stop(self, timeout_s: float, why: str) -> None:
        """Refuse new requests; give queued and in-flight ones 40 % of ``timeout_s`` to finish, end the
        rest with BackendUnavailable(``why``); then stop the workers within the remaining time."""
        self.closed = True
        deadline = time.monotonic() + timeout_s * 0.4
        while time.monotonic() < deadline and not self.idle():
            await asyncio.sleep(0.01)
        for r in self._drain():
            self._end(r, "error", BackendUnavailable(why, model=self.name, request_id=r.id))
        await self.pool.close(timeout_s * 0.6)

    def stats(self) -> dict[str, Any]:
        replicas = self.pool.counts()
        return {
            "model": self.name, "variant": self.variant, "ready": replicas["ready"] > 0,
            "queue_rows": self.batcher.rows, "queue_requests": len(self.batcher), "retrying": len(self._retries),
            "peak_queue_rows": self.peak_queue_rows,
            "in_flight": sum(r.outstanding for r in self.pool.replicas),
            "in_flight_batches": sum(len(r.inflight) for r in self.pool.replicas),
            "replicas": {**replicas, "target": self.pool.target},
            "workers": {r.name: {"state": r.state, "pids": list(r.pids), "outstanding": r.outstanding,
                                 "variant": r.spec.variant} for r in self.pool.replicas},
            "outcomes": dict(self.outcomes), "restarts": self.pool.restarts,
            "start_failures": self.pool.start_failures, "last_error": self.pool.last_error,
            "failed": self.pool.failed, "rows_per_s": round(self.rows_per_s(), 1),
            "config": self.config.to_dict(),
        }


__all__ = ["ModelRuntime"]
