"""Load runs started from the UI: one at a time, over HTTP when the API runs (else in process), with
their windows going into the session's hub. "Until stopped" runs back-to-back segments (a schedule's
arrival times are computed up front, so one endless run would not fit in memory); each segment
leaves a run record."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from functools import partial
from typing import Any

from workbench.errors import ConfigError
from workbench.ui.state import set_outputs
from workbench.ui.tasks import Progress, error_text

log = logging.getLogger("workbench.ui")

#: arrivals one segment of an "until stopped" run may hold (its length adapts to the rate)
SEGMENT_ARRIVALS = 300_000


def segment_s(schedule: Any) -> float:
    """How long each segment of an "until stopped" run lasts: 1 min to 1 h, ≈ SEGMENT_ARRIVALS requests."""
    from workbench.load.schedules import OpenLoop

    if not isinstance(schedule, OpenLoop):
        return 3600.0
    rate = schedule.mean_rate(60.0)
    return float(min(3600.0, max(60.0, SEGMENT_ARRIVALS / max(rate, 1.0))))


class LoadController:
    """Starts, watches and stops the session's load runs. ``run`` is the current ``LoadRun``."""

    def __init__(self, session: Any):
        self.session = session
        self.run: Any = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._lock = threading.Lock()
        self.segment_for = segment_s  # how long each "until stopped" segment lasts, per schedule

    @property
    def running(self) -> bool:
        return self._watcher is not None and self._watcher.is_alive()

    def target(self) -> Any:
        """Where load goes: the session's HTTP API if it runs, else its server in process."""
        from workbench.load.targets import HttpTarget, InProcessTarget

        session = self.session
        model = session.model
        name = session.served_model
        example = model.example[:1].copy()
        if session.http is not None:
            return HttpTarget(url=session.http.url, model=name, example=example)
        return InProcessTarget(server=session.server, model=name, example=example)

    def start(self) -> Future[Any]:
        """Start load as the Load section says; returns the future of the start (ready to send)."""
        session, load = self.session, self.session.state.load
        if session.server is None:
            raise ConfigError("start serving first (Serve section): load needs a served model")
        if self.running:
            raise ConfigError("load is running already; stop it first")
        schedule = load.to_schedule()
        until_stopped = bool(load.until_stopped)
        duration = self.segment_for(schedule) if until_stopped else float(load.duration_s)
        target = self.target()
        self._stop.clear()

        def work(progress: Progress) -> str:
            progress(0.2, "starting the load generator")
            run = self._new_run(target, schedule, duration)
            with self._lock:
                self.run = run
                self._watcher = threading.Thread(target=self._watch, args=(target, schedule, duration, until_stopped),
                                                 name="workbench-ui-load", daemon=True)
                self._watcher.start()
            how = "over HTTP" if session.http is not None else "in process"
            return f"{schedule.describe()} {how}" + (" until stopped" if until_stopped else f" for {duration:g} s")

        def done(text: str) -> None:
            set_outputs(load, status=f"running {text}")

        def failed(f: Future[Any]) -> None:
            if f.cancelled() or f.exception() is not None:
                why = "cancelled" if f.cancelled() else error_text(f.exception())  # type: ignore[arg-type]
                session.updates.post(lambda: set_outputs(load, running=False, status=f"failed: {why}"))

        future = session.tasks.submit(load.task, "starting load", work, done,
                                      before=lambda: set_outputs(load, running=True, status=f"starting {schedule.describe()}"))
        future.add_done_callback(failed)
        return future

    def _new_run(self, target: Any, schedule: Any, duration: float) -> Any:
        from workbench.load.run import LoadRun

        s = self.session.state.serve
        session = self.session
        served = session.served_variant
        try:
            config = session.server.model_info(session.served_model)["config"]
        except Exception:  # the run record then lacks it; the run itself goes on
            config = None
        context = {"source": "dashboard", "serve_config": config,
                   "variant": getattr(served, "variant", None), "backend": s.backend}
        run = LoadRun(target, schedule, duration_s=duration, hub=self.session.hub, runs_dir=self.session.runs_dir,
                      context=context)
        return run.start()

    def _watch(self, target: Any, schedule: Any, duration: float, until_stopped: bool) -> None:
        """Wait for each run to end; start the next segment while "until stopped"; report the end."""
        session, load = self.session, self.session.state.load
        message = "finished"
        try:
            while True:
                run = self.run
                while not run.wait(0.5):
                    if self._stop.is_set():
                        run.stop()
                if run.record is not None:
                    session.updates.post(partial(self._recorded, run.record.id))
                if run.error is not None:
                    message = f"failed: {error_text(run.error)}"
                    break
                if self._stop.is_set() or not until_stopped or session.closed:
                    message = "stopped" if self._stop.is_set() else "finished"
                    break
                with self._lock:
                    self.run = self._new_run(target, schedule, duration)
        except Exception as exc:
            log.exception("the load run failed")
            message = f"failed: {error_text(exc)}"
        finally:
            session.updates.post(lambda: set_outputs(load, running=False, status=message))

    def _recorded(self, run_id: str) -> None:
        set_outputs(self.session.state.load, run_id=run_id)
        self.session.refresh_runs()

    def stop(self) -> Future[Any]:
        """Stop the load (in the background); the future ends when it has stopped."""
        session, load = self.session, self.session.state.load
        if not self.running:
            raise ConfigError("no load is running")

        def work(progress: Progress) -> None:
            self.stop_now()

        return session.tasks.submit(load.task, "stopping load", work, before=lambda: set_outputs(load, status="stopping"))

    def stop_now(self, timeout_s: float = 15.0) -> None:
        """Stop the load and wait (bounded) until it has; nothing happens if none runs."""
        self._stop.set()
        run, watcher = self.run, self._watcher
        if run is not None:
            run.stop(timeout_s=timeout_s)
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join(timeout_s)


__all__ = ["SEGMENT_ARRIVALS", "LoadController", "segment_s"]
