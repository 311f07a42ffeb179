"""The worker process: one pipeline stage (a whole model when ``stages == 1``).

Each stage process:

- rebuilds its part of the model from the artifact (``artifact.build_runner(stage=, stages=, split=,
  threads=)``), sets ``torch.set_num_threads(threads_per_worker)``, warms up, and says
  :class:`WorkerReady` (or :class:`WorkerError` with the reason, then exits);
- runs a small receiver thread that drains its input pipe into a queue, so whoever sends to it never
  blocks long while it computes;
- computes :class:`WorkItem` s in order. Stage 0 of a pipeline cuts each batch into micro-batches of
  ``micro_batch_rows`` rows (default ``ceil(rows / stages)``) and passes each on as soon as it is done,
  so the stages work at the same time; the last stage joins the parts and sends one :class:`Result`.
  A model error fails that batch only (the error travels with it) and the worker carries on;
- passes on any other message (readiness and errors of upstream stages) and stops on :class:`Shutdown`.

It never outlives the controller: it exits when its input pipe reaches end-of-file (at the latest
``EOF_GRACE_S`` later, even if stuck in compute), Linux kills it
when its parent dies (``PR_SET_PDEATHSIG``), and a watcher thread checks ``os.getppid()`` twice a
second. Ctrl-C (SIGINT) is ignored: the controller decides when workers stop.
"""

from __future__ import annotations

import math
import os
import queue
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from workbench.serving.messages import Result, Shutdown, StageSpec, WorkerError, WorkerReady, WorkItem

_EOF = object()  # the input pipe closed
EOF_GRACE_S = 1.0


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies; on every OS, watch ``getppid()``."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        tick = threading.Event()
        while True:
            if os.getppid() != parent_pid:
                os._exit(0)
            tick.wait(0.5)

    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(0)
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _receive(inbox: Connection, inq: queue.SimpleQueue) -> None:
    """Drain the input pipe into ``inq``. End-of-file is queued as ``_EOF`` (so messages before it are
    still passed on); if the main thread has not exited a second later (stuck in compute), exit anyway."""
    while True:
        try:
            msg = inbox.recv()
        except (EOFError, OSError):
            inq.put(_EOF)
            threading.Event().wait(EOF_GRACE_S)
            os._exit(0)
        except Exception as exc:  # an unreadable message: nothing sane to do but stop
            sys.stderr.write(f"workbench worker: unreadable message ({exc}); exiting\n")
            os._exit(3)
        inq.put(msg)


def micro_batches(item: WorkItem, spec: StageSpec, started: float) -> list[WorkItem]:
    data = item.data
    if data is None:
        return [item]
    rows = len(data)
    size = spec.micro_batch_rows or max(1, math.ceil(rows / spec.stages))
    parts = max(1, math.ceil(rows / size))
    return [WorkItem(batch_id=item.batch_id, data=data[i * size:(i + 1) * size], part=i, parts=parts,
                     compute_start=started) for i in range(parts)]


def _compute(runner: Any, item: WorkItem, started: float) -> WorkItem:
    start = item.compute_start if item.compute_start is not None else started
    if item.error is not None:
        return item
    try:
        out = runner(item.data)
    except Exception as exc:  # the model failed on this input: fail this batch, keep serving
        return WorkItem(batch_id=item.batch_id, data=None, part=item.part, parts=item.parts,
                        compute_start=start, error=f"{type(exc).__name__}: {exc}")
    return WorkItem(batch_id=item.batch_id, data=out, part=item.part, parts=item.parts, compute_start=start)


class Joiner:
    """The last stage's assembly of micro-batch outputs back into whole batches."""

    def __init__(self) -> None:
        self.parts: dict[int, list[WorkItem]] = {}

    def add(self, item: WorkItem) -> Result | None:
        if item.parts == 1:
            done = [item]
        else:
            got = self.parts.setdefault(item.batch_id, [])
            got.append(item)
            if len(got) < item.parts:
                return None
            done = sorted(self.parts.pop(item.batch_id), key=lambda p: p.part)
        error = next((p.error for p in done if p.error is not None), None)
        data = None if error else (done[0].data if len(done) == 1 else np.concatenate([p.data for p in done]))
        start = done[0].compute_start
        return Result(batch_id=item.batch_id, data=data, compute_start=start if start is not None else 0.0,
                      compute_end=time.monotonic(), error=error)


def _serve(spec: StageSpec, runner: Any, inq: queue.SimpleQueue, outbox: Connection) -> None:
    first, last = spec.stage == 0, spec.stage == spec.stages - 1
    joiner = Joiner()
    while True:
        msg = inq.get()
        if type(msg) is WorkItem:
            started = time.monotonic()
            items = micro_batches(msg, spec, started) if first and spec.stages > 1 else [msg]
            for item in items:
                out = _compute(runner, item, started)
                if last:
                    result = joiner.add(out)
                    if result is not None:
                        outbox.send(result)
                else:
                    outbox.send(out)
        elif msg is _EOF:
            return
        elif isinstance(msg, Shutdown):
            if not last:
                outbox.send(msg)
            return
        else:
            outbox.send(msg)  # an upstream stage's WorkerReady / WorkerError


def worker_main(spec: StageSpec, inbox: Connection, outbox: Connection) -> None:
    """Entry point of a stage process (started with the ``spawn`` context)."""
    _die_with_parent(spec.parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    inq: queue.SimpleQueue = queue.SimpleQueue()
    threading.Thread(target=_receive, args=(inbox, inq), name="receiver", daemon=True).start()
    try:
        from workbench.models.runner import pick_device

        device = pick_device(spec.device)
        runner = spec.artifact.build_runner(stage=spec.stage, stages=spec.stages, split=spec.split,
                                            device=device, threads=spec.threads)
        if spec.stages == 1:  # warm up: the first real request should not pay for lazy init
            runner(spec.artifact.example()[:1])
    except BaseException as exc:
        try:
            outbox.send(WorkerError(replica=spec.replica, stage=spec.stage, message=f"{type(exc).__name__}: {exc}"))
        finally:
            os._exit(1)
    outbox.send(WorkerReady(replica=spec.replica, stage=spec.stage, pid=os.getpid(), device=device))
    try:
        _serve(spec, runner, inq, outbox)
    except (BrokenPipeError, EOFError, OSError):
        pass  # the next stage or the controller is gone: nothing left to serve
    os._exit(0)


__all__ = ["worker_main"]
