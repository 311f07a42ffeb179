"""One replica, seen from the controller: a pipeline of K stage processes (K = 1 is a plain worker).

::

    controller ──pipe──► stage 0 ──pipe──► stage 1 ── ... ──► stage K-1 ──pipe──► controller

The controller writes batches into the first pipe and reads results from the last, both without
blocking its loop (:mod:`workbench.serving.pipes`); it watches every stage's ``process.sentinel``. When
any stage ends, the others are killed and, once all are gone and reaped, the listener hears of it
once. A replica holds at most ``stages + 1`` batches in flight: one per stage computing plus one
waiting, so no stage idles between batches while the rest wait in the controller's batcher.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from workbench.serving.config import PlacementConfig
from workbench.serving.messages import Shutdown, StageSpec, WorkerError, WorkerReady, WorkItem
from workbench.serving.pipes import FrameReader, PipeWriter, enlarge
from workbench.serving.request import Batch
from workbench.serving.worker import worker_main

# replica states
STARTING, READY, DRAINING, STOPPING, GONE = "starting", "ready", "draining", "stopping", "gone"


@dataclass(frozen=True)
class ReplicaSpec:
    """What a replica runs: the artifact and placement, and the generation they belong to (a replica
    of an older generation is replaced by a rolling update)."""

    artifact: Any  # ModelArtifact
    placement: PlacementConfig
    generation: int = 0
    variant: str = field(default="", compare=False)


class Listener(Protocol):
    def on_message(self, replica: Replica, message: Any) -> None: ...

    def on_exit(self, replica: Replica) -> None: ...


class Replica:
    """Controller-side handle of one replica. All methods run on the controller's loop."""

    def __init__(self, name: str, spec: ReplicaSpec, loop: asyncio.AbstractEventLoop, listener: Listener):
        self.name = name
        self.spec = spec
        self.loop = loop
        self.listener = listener
        self.state = STARTING
        self.inflight: dict[int, Batch] = {}
        self.outstanding = 0  # requests (or chunks) in flight: what routing policies compare
        self.capacity = spec.placement.stages + 1
        self.started_at = time.monotonic()
        self.ready_at: float | None = None
        self.exit_reason: str | None = None
        self.start_error: str | None = None
        self.pids: list[int] = []
        self._ready_stages: set[int] = set()
        self._processes: list[Any] = []
        self._writer: PipeWriter | None = None
        self._reader: FrameReader | None = None
        self._input: Any = None
        self._output: Any = None
        self._alive: set[int] = set()  # sentinels still open
        self._exiting = False
        self.retiring = False  # the pool chose to stop it: its exit is not a failure
        self._first_exit: int | None = None  # sentinel of the first stage that ended
        self.stopping_since = 0.0

    def __repr__(self) -> str:
        return f"Replica({self.name!r}, {self.state}, inflight={len(self.inflight)})"

    # ------------------------------------------------------------------ start
    def start(self) -> None:
        """Spawn the stage processes and wire their pipes."""
        ctx = mp.get_context("spawn")
        placement, stages = self.spec.placement, self.spec.placement.stages
        pipes = [ctx.Pipe(duplex=False) for _ in range(stages + 1)]  # (reader, writer); stage i: pipes[i] → pipes[i+1]
        for reader, _ in pipes:
            enlarge(reader.fileno())
        for i in range(stages):
            spec = StageSpec(
                replica=self.name, artifact=self.spec.artifact, stage=i, stages=stages, split=placement.split,
                threads=placement.threads_per_worker, device=placement.device,
                micro_batch_rows=placement.micro_batch_rows, parent_pid=os.getpid(),
            )
            proc = ctx.Process(target=worker_main, args=(spec, pipes[i][0], pipes[i + 1][1]),
                               name=f"workbench:{self.name}:s{i}", daemon=True)
            proc.start()
            self._processes.append(proc)
            self.pids.append(int(proc.pid or 0))
        self._input, self._output = pipes[0][1], pipes[stages][0]
        for i, (reader, writer) in enumerate(pipes):  # close the ends the children own
            if i > 0:
                writer.close()
            if i < stages:
                reader.close()
        self._writer = PipeWriter(self.loop, self._input.fileno(), self._on_broken_pipe)
        self._reader = FrameReader(self._output.fileno())
        self.loop.add_reader(self._output.fileno(), self._on_readable)
        for proc in self._processes:
            self._alive.add(proc.sentinel)
            self.loop.add_reader(proc.sentinel, self._on_sentinel, proc.sentinel)

    # ------------------------------------------------------------------- work
    def can_take(self) -> bool:
        return self.state == READY and len(self.inflight) < self.capacity and not self._exiting

    def dispatch(self, batch: Batch) -> None:
        self.inflight[batch.id] = batch
        self.outstanding += len(batch.requests)
        assert self._writer is not None
        self._writer.send(WorkItem(batch_id=batch.id, data=batch.data()))

    def take(self, batch_id: int) -> Batch | None:
        """Remove and return an in-flight batch (its result came back)."""
        batch = self.inflight.pop(batch_id, None)
        if batch is not None:
            self.outstanding -= len(batch.requests)
        return batch

    def oldest_dispatch(self) -> float | None:
        return min((b.dispatched_at for b in self.inflight.values()), default=None)

    # ------------------------------------------------------------------- stop
    def drain(self) -> None:
        """Take no new work; the pool stops it once its in-flight batches are back."""
        if self.state in (STARTING, READY):
            self.state = DRAINING

    def stop(self) -> None:
        """Ask every stage to finish what it holds and exit (the pool kills it if it does not)."""
        if self.state == GONE:
            return
        self.state = STOPPING
        self.stopping_since = time.monotonic()
        if self._writer is not None:
            self._writer.send(Shutdown(reason="stop"))

    def kill(self, reason: str | None) -> None:
        """SIGKILL every stage that is still running (``reason`` becomes the exit reason if none is set).
        Only stages whose sentinel is still open are signalled: their pid cannot have been reused."""
        if self.exit_reason is None and reason is not None:
            self.exit_reason = reason
        for proc in self._processes:
            if proc.sentinel in self._alive and proc.pid is not None:
                try:
                    os.kill(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    @property
    def alive(self) -> bool:
        return bool(self._alive)

    @property
    def processes(self) -> list[Any]:
        return list(self._processes)

    # ----------------------------------------------------------------- events
    def _on_readable(self) -> None:
        assert self._reader is not None and self._output is not None
        try:
            messages = self._reader.read()
        except (EOFError, OSError):
            self.loop.remove_reader(self._output.fileno())
            self._begin_exit("its result pipe closed")
            return
        self._handle(messages)

    def _handle(self, messages: list[Any]) -> None:
        for message in messages:
            if type(message) is WorkerReady:
                self._ready_stages.add(message.stage)
                if len(self._ready_stages) == self.spec.placement.stages and self.state == STARTING \
                        and not self._exiting:
                    self.state = READY
                    self.ready_at = time.monotonic()
            elif type(message) is WorkerError:
                self.start_error = f"stage {message.stage}: {message.message}"
            self.listener.on_message(self, message)

    def _on_broken_pipe(self) -> None:
        self._begin_exit("its input pipe broke")

    def _on_sentinel(self, sentinel: int) -> None:
        self.loop.remove_reader(sentinel)
        self._alive.discard(sentinel)
        if self._first_exit is None:
            self._first_exit = sentinel
        self._begin_exit(None)
        if not self._alive:
            self._finish_exit()

    def _begin_exit(self, why: str | None) -> None:
        if self._exiting:
            return
        self._exiting = True
        if self._reader is not None and self._output is not None:  # results sent before the exit still count
            try:
                self._on_readable_once()
            except Exception:
                pass
        if self.exit_reason is None and why is not None:
            self.exit_reason = why
        self.kill(None)

    def _on_readable_once(self) -> None:
        assert self._reader is not None
        self._handle(self._reader.read())

    def _finish_exit(self) -> None:
        for proc in self._processes:  # every sentinel is closed: each process has exited, reap it
            proc.join()
        if self.exit_reason is None:
            first = next((p for p in self._processes if p.sentinel == self._first_exit), self._processes[0])
            code = first.exitcode
            self.exit_reason = (f"killed by signal {signal.Signals(-code).name}" if code is not None and code < 0
                                else f"exited with code {code}")
        self._release()
        self.state = GONE
        self.listener.on_exit(self)

    def _release(self) -> None:
        if self._writer is not None:
            self._writer.close()
        for conn in (self._input, self._output):
            if conn is not None and not conn.closed:
                if conn is self._output:
                    try:
                        self.loop.remove_reader(conn.fileno())
                    except (ValueError, OSError):
                        pass
                conn.close()

    def close_input(self) -> None:
        """Close the pipe into stage 0: every stage sees end-of-file and exits at once."""
        if self._writer is not None:
            self._writer.close()
        if self._input is not None and not self._input.closed:
            self._input.close()


__all__ = ["DRAINING", "GONE", "READY", "STARTING", "STOPPING", "Replica", "ReplicaSpec"]
