"""The worker pool of one model: starts replicas, watches them, replaces the dead, drains and scales.

The pool keeps ``target`` replicas of its current :class:`ReplicaSpec` running (:meth:`reconcile`):

- a replica that dies (or is killed as hung) hands its in-flight batches to ``hooks.on_lost`` (the
  controller retries them) and is replaced. One whose model cannot load (the worker reports why) marks
  the current spec failed at once (``failed`` holds why) and no more are started for it; one that
  dies while starting for no stated reason is tried again, up to three times in a row;
- scaling down drains: the replica takes no new work, and once its batches are back it is asked to
  stop (``Shutdown``), then its input is closed, then it is killed, each step after a grace period;
- a new spec (another variant, stage count, threads, ...) rolls: one new replica starts; when it is
  ready one old replica drains; and so on, so capacity never drops below ``target``. Old replicas keep
  serving if the new ones cannot start.

A watchdog (:meth:`check`, called by the controller every 100 ms) kills a replica whose oldest batch has
been out longer than the hung deadline, or that takes longer than ``start_timeout_s`` to start.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any, Protocol

from workbench.serving.messages import Result, WorkerError, WorkerReady
from workbench.serving.replica import DRAINING, READY, STARTING, STOPPING, Replica, ReplicaSpec
from workbench.serving.request import Batch

MAX_START_FAILURES = 3
STOP_GRACE_S = 2.0  # after Shutdown: close the input; after twice this: SIGKILL


class PoolHooks(Protocol):
    def on_result(self, replica: Replica, result: Result) -> None: ...

    def on_lost(self, replica: Replica, batches: list[Batch]) -> None: ...

    def on_capacity(self) -> None: ...


class WorkerPool:
    """All replicas of one model. Every method runs on the controller's loop."""

    def __init__(self, model: str, loop: asyncio.AbstractEventLoop, spec: ReplicaSpec, hooks: PoolHooks):
        self.model = model
        self.loop = loop
        self.spec = spec
        self.target = spec.placement.replicas
        self.hooks = hooks
        self.replicas: list[Replica] = []
        self.restarts = 0
        self.start_failures = 0
        self.last_error: str | None = None
        self.failed: str | None = None
        self.closing = False
        self._seq = 0
        self._generations = itertools.count(spec.generation + 1)
        self._changed = asyncio.Event()

    # ----------------------------------------------------------------- views
    def available(self) -> list[Replica]:
        return [r for r in self.replicas if r.can_take()]

    def counts(self) -> dict[str, int]:
        out = {STARTING: 0, READY: 0, DRAINING: 0, STOPPING: 0}
        for r in self.replicas:
            if r.state in out:
                out[r.state] += 1
        return out

    def serving(self) -> bool:
        """True while some replica is ready, or one is starting and the spec has not failed."""
        return any(r.state == READY for r in self.replicas) or (
            self.failed is None and any(r.state == STARTING for r in self.replicas)
        )

    def settled(self) -> bool:
        """``target`` ready replicas of the current spec, and nothing starting, stale or draining."""
        gen = self.spec.generation
        ready = [r for r in self.replicas if r.state == READY and r.spec.generation == gen]
        return len(ready) == self.target and len(self.replicas) == self.target

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """Wait until ``predicate()`` holds (re-checked on every pool change); False on timeout."""
        deadline = time.monotonic() + timeout_s
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                return predicate()
        return True

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # ---------------------------------------------------------------- changes
    def new_generation(self) -> int:
        """A generation number never used before in this pool (replicas of older ones roll away)."""
        return next(self._generations)

    def set_spec(self, spec: ReplicaSpec) -> None:
        """Serve ``spec`` from now on: scale if only the replica count changed, else roll."""
        self.spec = spec
        self.target = spec.placement.replicas
        self.failed = None
        self.start_failures = 0
        self.reconcile()
        self._notify()

    def reconcile(self) -> None:
        if self.closing:
            return
        gen = self.spec.generation
        live = [r for r in self.replicas if r.state in (STARTING, READY) and not r.retiring]
        current = [r for r in live if r.spec.generation == gen]
        for r in live:
            if r.spec.generation != gen and r.state == STARTING:
                self._retire(r)  # never served: stop it now
        stale = [r for r in live if r.spec.generation != gen and r.state == READY]
        starting = [r for r in current if r.state == STARTING]
        ready = [r for r in current if r.state == READY]
        excess = len(current) - self.target
        while excess > 0:
            self._retire(starting.pop() if starting else ready.pop())
            excess -= 1
        current = starting + ready
        if self.failed is None:
            want = (1 if not starting and len(current) < self.target else 0) if stale else self.target - len(current)
            for _ in range(max(0, want)):
                self._spawn()
        surplus = len(ready) + len(stale) - self.target
        for r in stale[:max(0, surplus)]:
            self._retire(r)

    def _spawn(self) -> None:
        name = f"{self.model}/r{self._seq}"
        self._seq += 1
        replica = Replica(name, self.spec, self.loop, self)
        self.replicas.append(replica)
        try:
            replica.start()
        except Exception as exc:  # could not even spawn (out of processes or descriptors)
            self.replicas.remove(replica)
            self._start_failed(f"could not start a worker process: {exc}")

    def _retire(self, replica: Replica) -> None:
        replica.retiring = True
        if replica.state == STARTING:
            replica.kill("stopped before it was ready")
        elif replica.state == READY:
            replica.drain()
            self._stop_if_drained(replica)

    def _stop_if_drained(self, replica: Replica) -> None:
        if replica.state == DRAINING and not replica.inflight:
            replica.stop()

    def _start_failed(self, why: str, *, fatal: bool = False) -> None:
        self.start_failures += 1
        self.last_error = why
        if fatal:
            self.failed = f"model {self.model!r}: its workers cannot load it: {why}"
        elif self.start_failures >= MAX_START_FAILURES:
            self.failed = f"model {self.model!r}: workers failed to start {self.start_failures} times; last: {why}"

    # ---------------------------------------------------------- replica events
    def on_message(self, replica: Replica, message: Any) -> None:
        kind = type(message)
        if kind is Result:
            self.hooks.on_result(replica, message)
            if replica.state == DRAINING and not replica.inflight:
                replica.stop()
        elif kind is WorkerReady:
            if replica.state == READY:
                self.start_failures = 0
                self.reconcile()
                self._notify()
                self.hooks.on_capacity()
        elif kind is WorkerError:
            self.last_error = f"{replica.name} stage {message.stage}: {message.message}"

    def on_exit(self, replica: Replica) -> None:
        if replica in self.replicas:
            self.replicas.remove(replica)
        batches = list(replica.inflight.values())
        replica.inflight.clear()
        replica.outstanding = 0
        if not replica.retiring and not self.closing:
            if replica.ready_at is None:
                self._start_failed(replica.start_error or f"{replica.name} {replica.exit_reason} while starting",
                                   fatal=replica.start_error is not None)
            else:
                self.restarts += 1
                self.last_error = f"{replica.name} {replica.exit_reason}"
        if batches:
            self.hooks.on_lost(replica, batches)
        self.reconcile()
        self._notify()
        self.hooks.on_capacity()

    # -------------------------------------------------------------- watchdog
    def check(self, now: float, hung_after_s: float) -> None:
        """Kill hung or never-starting replicas; move draining and stopping ones along."""
        for r in list(self.replicas):
            if r.state == STARTING and now - r.started_at > r.spec.placement.start_timeout_s:
                r.kill(f"did not start within start_timeout_s={r.spec.placement.start_timeout_s:g}")
            elif r.state in (READY, DRAINING) and r.inflight:
                oldest = r.oldest_dispatch()
                if oldest is not None and now - oldest > hung_after_s:
                    r.kill(f"hung: a batch was computing for over {hung_after_s * 1000:.0f} ms")
            elif r.state == DRAINING:
                self._stop_if_drained(r)
            elif r.state == STOPPING:
                waited = now - r.stopping_since
                if waited > 2 * STOP_GRACE_S:
                    r.kill("did not stop after Shutdown")
                elif waited > STOP_GRACE_S:
                    r.close_input()

    # ------------------------------------------------------------------ close
    async def close(self, timeout_s: float) -> None:
        """Stop every replica: Shutdown, then end-of-file, then SIGKILL; bounded by ``timeout_s``."""
        self.closing = True
        for r in list(self.replicas):
            r.retiring = True
            if r.state == STARTING:
                r.kill("server closing")
            else:
                r.stop()
        gone = lambda: not self.replicas  # noqa: E731
        if not await self.wait_for(gone, timeout_s * 0.5):
            for r in self.replicas:
                r.close_input()
            if not await self.wait_for(gone, timeout_s * 0.3):
                for r in self.replicas:
                    r.kill("did not stop in time")
                await self.wait_for(gone, max(0.5, timeout_s * 0.2))

    def processes(self) -> list[Any]:
        return [p for r in self.replicas for p in r.processes]


__all__ = ["MAX_START_FAILURES", "PoolHooks", "WorkerPool"]
