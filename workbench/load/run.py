"""LoadRun: one load test, from a notebook or the CLI.

::

    run = LoadRun(HttpTarget(url="http://127.0.0.1:8000", model="mlp"), Poisson(rate=200), duration_s=10)
    with run:                       # start() ... stop()
        run.wait()                  # or watch run.windows grow, or run.subscribe(callback)
    run.summary()["latency_p99_ms"], run.to_frame(), run.record.path

The generator runs in its own spawned process (``processes=N`` spreads the schedule over N), or on
a thread for an in-process ``Server``. Its windows go through a TelemetryHub (its own, or a shared one
passed as ``hub=``, e.g. the dashboard's, which also holds the server's side). Every blocking call
has a timeout and a run never outlives its schedule plus its drain time by more than a few seconds.
When it ends, the run saves a run record (``save=False`` to skip).
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import threading
import time
import weakref
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

from workbench.errors import BackendUnavailable, ConfigError, ServingError, WorkbenchError
from workbench.load.messages import Done, Failed, GeneratorSpec, Go, Ready, Stop
from workbench.load.schedules import Closed, Schedule
from workbench.load.summary import run_context, summarize
from workbench.load.targets import HttpTarget, InProcessTarget
from workbench.telemetry.hub import TelemetryHub
from workbench.telemetry.runs import RunRecord
from workbench.telemetry.window import ClientReport, Window

log = logging.getLogger(__name__)
_LIVE: weakref.WeakSet[LoadRun] = weakref.WeakSet()


class LoadRun:
    """A load test against ``target`` following ``schedule`` for ``duration_s`` seconds."""

    def __init__(self, target: HttpTarget | InProcessTarget, schedule: Schedule, *, duration_s: float,
                 window_ms: float = 500, processes: int = 1, max_connections: int | None = None,
                 max_in_flight: int = 10_000, max_lag_ms: float = 10.0, drain_s: float | None = None,
                 hub: TelemetryHub | None = None, save: bool = True, runs_dir: str | os.PathLike[str] | None = None,
                 context: dict[str, Any] | None = None, start_timeout_s: float = 60.0):
        if not isinstance(target, (HttpTarget, InProcessTarget)):
            raise ConfigError(f"target must be an HttpTarget or InProcessTarget, got {type(target).__name__}")
        if not isinstance(schedule, Schedule):
            raise ConfigError(f"schedule must be a Schedule (Constant, Poisson, ..., Closed), got {schedule!r}")
        if not isinstance(duration_s, (int, float)) or not 0 < duration_s <= 86_400:
            raise ConfigError(f"duration_s must be > 0 and <= 86400, got {duration_s!r}")
        if not isinstance(processes, int) or not 1 <= processes <= 64:
            raise ConfigError(f"processes must be an integer between 1 and 64, got {processes!r}")
        if target.in_process_only and processes != 1:
            raise ConfigError("an in-process target runs on one generator thread: use processes=1")
        if max_in_flight < 1 or (max_connections is not None and max_connections < 1):
            raise ConfigError("max_in_flight and max_connections must be >= 1")
        if max_lag_ms <= 0:
            raise ConfigError(f"max_lag_ms must be > 0, got {max_lag_ms}")
        self.target, self.schedule, self.duration_s = target, schedule, float(duration_s)
        self.window_ms = hub.window_ms if hub is not None else float(window_ms)
        self.processes, self.max_lag_ms, self.max_in_flight = processes, max_lag_ms, max_in_flight
        concurrency = schedule.split(processes) if isinstance(schedule, Closed) else [0] * processes
        self.max_connections = max_connections or (max(concurrency) if isinstance(schedule, Closed) else 256)
        self.drain_s = float(drain_s if drain_s is not None else target.timeout_s + 1.0)
        self.save, self.runs_dir, self.start_timeout_s = save, runs_dir, start_timeout_s
        self.user_context = dict(context or {})
        self._shared_hub = hub
        self.hub: TelemetryHub | None = hub
        self._specs = [GeneratorSpec(source=f"gen{i}-{os.getpid()}-{id(self):x}", target=target, schedule=schedule,
                                     duration_s=self.duration_s, part=i, parts=processes, concurrency=concurrency[i],
                                     max_connections=self.max_connections, max_in_flight=max_in_flight,
                                     drain_s=self.drain_s, start_timeout_s=start_timeout_s)
                       for i in range(processes)]
        self._lock = threading.Lock()
        self._windows: list[Window] = []
        self._subscribers: list[Callable[[Window], None]] = []
        self._ready: dict[str, dict[str, Any]] = {}
        self._dones: dict[str, Done] = {}
        self._failures: list[Failed] = []
        self._ready_event = threading.Event()
        self._finished = threading.Event()
        self._last_window = threading.Event()
        self._workers: list[Any] = []
        self._results: dict[Connection, str] = {}
        self._controls: list[Connection] = []
        self._reader: threading.Thread | None = None
        self._undo: list[Callable[[], None]] = []
        self._summary: dict[str, Any] | None = None
        self.record: RunRecord | None = None
        self.error: WorkbenchError | None = None
        self.first_index = 0
        self.t0: float | None = None
        self.deadline = float("inf")
        self._started = False
        self._started_wall = 0.0

    # -- starting ----------------------------------------------------------------------------
    def start(self) -> LoadRun:
        """Start the generators, wait (up to ``start_timeout_s``) until they are ready, then go."""
        if self._started:
            raise ConfigError("this LoadRun was started already; make a new one for another run")
        self._started = True
        self.deadline = time.monotonic() + self.start_timeout_s + self.duration_s + self.drain_s + 30.0
        _LIVE.add(self)
        thread_mode = self.target.in_process_only
        ctx = multiprocessing.get_context("spawn")
        for spec in self._specs:
            results_r, results_w = ctx.Pipe(duplex=False)
            control_r, control_w = ctx.Pipe(duplex=False)
            if thread_mode:
                from workbench.load.process import start_thread

                self._workers.append(start_thread(spec, results_w, control_r))
            else:
                from workbench.load.process import generator_main

                main_thread = threading.current_thread() is threading.main_thread()
                proc = ctx.Process(target=generator_main, name=f"workbench-loadgen-{spec.part}", daemon=True,
                                   args=(spec, results_w, control_r, os.getpid(), main_thread))
                proc.start()
                results_w.close()
                control_r.close()
                self._workers.append(proc)
            self._results[results_r] = spec.source
            self._controls.append(control_w)
        self._reader = threading.Thread(target=self._read, name="workbench-loadrun", daemon=True)
        self._reader.start()
        if not self._ready_event.wait(self.start_timeout_s) or self._failures:
            failure = self._failures[0] if self._failures else None
            self.stop(timeout_s=5)
            if failure is None:
                raise BackendUnavailable(
                    f"the load generator was not ready within {self.start_timeout_s} s")
            raise failure.to_error()
        try:
            self._go()
        except BaseException:
            self.stop(timeout_s=5)
            raise
        return self

    def _go(self) -> None:
        lead_s = 0.05 + 0.01 * self.processes
        if self._shared_hub is None:
            t0 = time.monotonic() + lead_s
            self.hub = TelemetryHub(window_ms=self.window_ms, origin=t0).start()
            if isinstance(self.target, InProcessTarget):
                self._undo.append(self.hub.attach(self.target.server))
        hub: TelemetryHub = self.hub  # type: ignore[assignment]
        self.first_index = hub.index_at(time.monotonic() + lead_s) + 1 if self._shared_hub else 0
        t0 = hub.window_start(self.first_index)
        self.t0 = t0
        self._started_wall = time.time() + (t0 - time.monotonic())
        self._undo.append(hub.subscribe(self._on_window))
        for spec in self._specs:
            hub.register_source(spec.source, self.first_index)  # windows wait for its report
        self.deadline = t0 + self.duration_s + self.drain_s + 2 * hub.max_wait_s + 10.0
        go = Go(t0=t0, window_origin=hub.origin, window_s=hub.window_s)
        for control in self._controls:
            _send(control, go)

    # -- receiving ---------------------------------------------------------------------------
    def _read(self) -> None:
        stop_sent = False
        try:
            while self._results:
                for conn in wait(list(self._results), timeout=0.2):
                    self._receive(conn)  # type: ignore[arg-type]
                if time.monotonic() > self.deadline and not stop_sent:
                    log.warning("load run passed its deadline; stopping the generators")
                    self.stop_generators("deadline")
                    stop_sent = True
                if time.monotonic() > self.deadline + 10:
                    self._kill()
            self._finish()
        except Exception as exc:  # keep the error for the caller; never leave wait() hanging
            log.exception("load run failed")
            self.error = self.error or ServingError(f"the load run failed: {exc!r}")
        finally:
            self._cleanup()
            self._finished.set()
            self._ready_event.set()

    def _receive(self, conn: Connection) -> None:
        source = self._results[conn]
        try:
            message = conn.recv()
        except (EOFError, OSError):
            del self._results[conn]
            conn.close()
            if source not in self._dones and not any(f.source == source for f in self._failures):
                self._failures.append(Failed(source=source, error_type="ServingError",
                                             message=self._exit_message(source)))
            self._ready_event.set()
            if self.hub is not None:
                self.hub.unregister_source(source)
            return
        if isinstance(message, ClientReport):
            if self.hub is not None:
                self.hub.add_client(message)
        elif isinstance(message, Ready):
            self._ready[source] = message.info
            if len(self._ready) == len(self._specs):
                self._ready_event.set()
        elif isinstance(message, Done):
            self._dones[source] = message
            if self.hub is not None:
                self.hub.unregister_source(source)
        elif isinstance(message, Failed):
            self._failures.append(message)
            self._ready_event.set()
            if self.hub is not None:
                self.hub.unregister_source(source)

    def _exit_message(self, source: str) -> str:
        worker = self._workers[[spec.source for spec in self._specs].index(source)]
        message = f"load generator {source} exited unexpectedly"
        if isinstance(worker, multiprocessing.process.BaseProcess):
            worker.join(2.0)
            message += f" (exit code {worker.exitcode})"
            if source not in self._ready:
                message += ("; if you started the run from a script, put that code under "
                            "`if __name__ == '__main__':` (generators are spawned processes that import it)")
        return message

    def _on_window(self, window: Window) -> None:
        if window.index < self.first_index:
            return
        with self._lock:
            last = max((d.last_index for d in self._dones.values()), default=None)
            if last is not None and len(self._dones) == len(self._specs) and window.index > last:
                return
            self._windows.append(window)
            if last is not None and window.index >= last:
                self._last_window.set()
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(window)
            except Exception:
                log.exception("load run subscriber failed")

    def _finish(self) -> None:
        """All generators ended: close the last windows, summarize, save."""
        hub, dones = self.hub, list(self._dones.values())
        if hub is not None and dones:
            last = max(d.last_index for d in dones)
            if self._shared_hub is None:
                hub.flush(through=last)
            elif hub.next_index <= last:  # the shared hub closes windows on its own thread
                self._last_window.wait(hub.max_wait_s + hub.window_s + 2.0)
        for undo in self._undo:
            undo()
        self._undo.clear()
        if self._shared_hub is None and hub is not None:
            hub.close(flush=False)
        if self._failures and not dones:
            self.error = self._failures[0].to_error()
            return
        if self._failures:
            log.warning("load generator failures: %s", "; ".join(f.message for f in self._failures))
        self._summary = summarize(dones=dones, windows=self.windows, schedule=self.schedule,
                                  duration_s=self.duration_s, max_lag_ms=self.max_lag_ms)
        if self._failures:
            self._summary["generator_failures"] = [f.message for f in self._failures]
        if self.save:
            self.record = RunRecord.create(context=self.context(), windows=self.windows, summary=self._summary,
                                           directory=self.runs_dir)

    # -- control -----------------------------------------------------------------------------
    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the run has finished (summary computed, record saved). False on timeout."""
        if not self._started:
            raise ConfigError("start() the run before waiting for it")
        if timeout_s is None:
            timeout_s = max(0.0, self.deadline + 25 - time.monotonic())
        return self._finished.wait(timeout_s)

    def run(self) -> LoadRun:
        """start(), wait until it ends, and raise if it failed. Returns self."""
        self.start()
        if not self.wait():
            self.stop()
        if self.error is not None:
            raise self.error
        return self

    def stop_generators(self, reason: str = "stopped") -> None:
        for control in self._controls:
            _send(control, Stop(reason))

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop early (if still running) and wait for the run to wrap up; kill what does not stop."""
        if not self._started:
            return
        self.stop_generators()
        if not self._finished.wait(timeout_s):
            self._kill()
            self._finished.wait(5.0)
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(5.0)
        self._cleanup()

    def _kill(self) -> None:
        for worker in self._workers:
            if isinstance(worker, multiprocessing.process.BaseProcess) and worker.is_alive():
                worker.kill()

    def _cleanup(self) -> None:
        for worker in self._workers:
            if isinstance(worker, multiprocessing.process.BaseProcess):
                worker.join(3.0)
                if worker.is_alive():
                    worker.kill()
                    worker.join(3.0)
            else:
                worker.join(3.0)
        for control in self._controls:
            control.close()
        _LIVE.discard(self)

    def __enter__(self) -> LoadRun:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- results -----------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self._finished.is_set()

    @property
    def windows(self) -> list[Window]:
        """The windows of this run so far, in order."""
        with self._lock:
            return sorted(self._windows, key=lambda w: w.index)

    def subscribe(self, callback: Callable[[Window], None]) -> Callable[[], None]:
        """Call ``callback(window)`` for each window of this run as it closes (on the hub's thread)."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)
        return unsubscribe

    def summary(self) -> dict[str, Any]:
        """The run's figures (see ``workbench.load.summary``); available once the run has finished."""
        if self._summary is None:
            if self.error is not None:
                raise self.error
            raise ConfigError("the run has not finished yet: wait() for it first")
        return dict(self._summary)

    def to_frame(self) -> Any:
        """The windows as a pandas DataFrame (one row per window; see ``Window.to_row``)."""
        import pandas as pd

        return pd.DataFrame([w.to_row() for w in self.windows])

    @property
    def generator_info(self) -> dict[str, Any]:
        """What each generator learned while preparing (target metadata, request size)."""
        return dict(self._ready)

    def context(self) -> dict[str, Any]:
        """What a run record keeps about the circumstances of this run."""
        info = next(iter(self._ready.values()), {})
        variants = sorted({v for w in self.windows for v in w.variants})
        return run_context(target=self.target, schedule=self.schedule, info=info, variants=variants,
                           started_wall=self._started_wall, user=self.user_context,
                           settings={"duration_s": self.duration_s, "window_ms": self.window_ms,
                                     "processes": self.processes, "max_connections": self.max_connections,
                                     "max_in_flight": self.max_in_flight})

    def __repr__(self) -> str:
        state = "finished" if self.done else ("running" if self._started else "new")
        return (f"LoadRun({self.target.model!r}, {self.schedule.describe()}, duration_s={self.duration_s:g}, "
                f"processes={self.processes}, {state})")


def _send(conn: Connection, message: Any) -> None:
    try:
        conn.send(message)
    except (OSError, ValueError):
        pass  # that generator is gone already


@atexit.register
def _stop_all() -> None:
    for run in list(_LIVE):
        run.stop(timeout_s=2.0)


__all__ = ["LoadRun"]
