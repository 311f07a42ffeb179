"""Slow work off the UI thread, with its progress reported into a :class:`~workbench.ui.state.TaskState`.

Panel documents (and param watchers that update widgets) must only change on the session's own
thread. So background threads never touch state directly: they :meth:`Updates.post` a function,
and the UI's periodic callback :meth:`Updates.drain`\\ s them on its thread. Without a UI attached
(plain Python, tests) posted functions run at once.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from workbench.errors import ConfigError, WorkbenchError
from workbench.ui.state import TaskState, set_outputs

log = logging.getLogger("workbench.ui")
T = TypeVar("T")

#: ``progress(fraction in [0, 1], message)``: what a task calls to report how far it is
Progress = Callable[[float, str], None]


class Updates:
    """State changes from any thread, applied on the UI thread once a UI is attached."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.RLock()  # an update may post another (e.g. a step starting the next)
        self.attached = False

    def attach(self) -> None:
        """From now on, posted functions wait for :meth:`drain` (call it on the UI thread)."""
        self.attached = True

    def post(self, fn: Callable[[], None]) -> None:
        if self.attached:
            self._queue.put(fn)
            return
        with self._lock:  # no UI: apply at once, one at a time
            _run_update(fn)

    def drain(self, limit: int = 10_000) -> int:
        """Apply the posted functions (at most ``limit``); returns how many ran."""
        done = 0
        while done < limit:
            try:
                fn = self._queue.get_nowait()
            except queue.Empty:
                break
            _run_update(fn)
            done += 1
        return done


def _run_update(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception:  # one broken update must not stop the others
        log.exception("a state update failed")


def error_text(exc: BaseException) -> str:
    """What the user reads: a WorkbenchError's own words; anything else with its type (and logged)."""
    if isinstance(exc, (WorkbenchError, ConfigError)):
        return str(exc)
    if isinstance(exc, ValueError):  # param's bound checks and the like
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class TaskRunner:
    """Runs tasks on a small thread pool; each section runs at most one task at a time."""

    def __init__(self, updates: Updates, *, max_workers: int = 3):
        self.updates = updates
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="workbench-ui-task")
        self._running: dict[int, Future[Any]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, task: TaskState, label: str, fn: Callable[[Progress], T],
               on_done: Callable[[T], None] | None = None, *, before: Callable[[], None] | None = None) -> Future[T]:
        """Run ``fn(progress)`` in the background; ``task`` shows its progress and outcome, and
        ``on_done(result)`` runs on the UI thread when it succeeds. ``before()`` (a state update) is posted
        once the task is accepted, ahead of any of its updates. The future holds the result or error."""
        with self._lock:
            if self._closed:
                raise ConfigError("this workbench session is closed")
            current = self._running.get(id(task))
            if current is not None and not current.done():
                raise ConfigError(f"{task.task!r} is still running; wait for it to finish")
            self.updates.post(lambda: set_outputs(task, busy=True, task=label, progress=0, message=f"{label}...",
                                                  error=""))
            if before is not None:
                self.updates.post(before)
            future = self._pool.submit(self._run, task, label, fn, on_done)
            self._running[id(task)] = future
        return future

    def _run(self, task: TaskState, label: str, fn: Callable[[Progress], T], on_done: Callable[[T], None] | None) -> T:
        def progress(fraction: float, message: str = "") -> None:
            percent = int(round(100 * min(1.0, max(0.0, fraction))))
            self.updates.post(lambda: set_outputs(task, progress=percent, message=message or task.message))

        try:
            result = fn(progress)
        except BaseException as exc:
            if not isinstance(exc, (WorkbenchError, ValueError)):
                log.exception("%s failed", label)
            text = error_text(exc)
            self.updates.post(lambda: set_outputs(task, busy=False, message=f"{label} failed", error=text))
            raise

        def finish() -> None:
            set_outputs(task, busy=False, progress=100, message=f"{label}: done")
            if on_done is not None:
                on_done(result)

        self.updates.post(finish)
        return result

    def busy(self) -> bool:
        return any(not f.done() for f in self._running.values())

    def close(self, timeout_s: float = 30.0) -> None:
        """Refuse new tasks and wait (bounded) for the running ones."""
        with self._lock:
            self._closed = True
            futures = list(self._running.values())
        for f in futures:
            f.cancel()
        done = threading.Event()

        def wait() -> None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            done.set()

        threading.Thread(target=wait, name="workbench-ui-task-shutdown", daemon=True).start()
        if not done.wait(timeout_s):
            log.warning("background tasks still running after %.0f s; leaving them", timeout_s)


__all__ = ["Progress", "TaskRunner", "Updates", "error_text"]
