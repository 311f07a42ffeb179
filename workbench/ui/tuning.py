"""The Tune section's state and controller: search serving settings (and variants) for the config that
meets a latency objective, with the session's model, off the UI thread. No Panel here.

::

    session.tuning.state.param.update(p99_ms=20, goal="fixed rate", rate=200, budget_s=30,
                                      knobs=["max_batch_size", "max_delay_ms"])
    session.tuning.start()            # a Future of the TuneResult; trials reach the view as they finish
    session.tuning.stop()             # ends the current trial early and keeps the best so far

The tuner measures with its own server and load on this machine's cores, so live load from the Load
section would spoil both measurements: starting to tune stops the live load (the task's message says
so), and the Load section refuses to start while the tuner runs. A server already running stays up,
idle. Knobs not chosen keep the Serve section's value (the variant: the one picked to serve).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import param

from workbench.errors import ConfigError
from workbench.ui.state import TaskState, set_outputs
from workbench.ui.tasks import Progress

log = logging.getLogger("workbench.ui")

GOALS = ("fixed rate", "highest rate")
#: the knobs offered (the tune package's SERVE_KNOBS, plus the model variant)
KNOBS = ("replicas", "stages", "threads_per_worker", "max_batch_size", "max_delay_ms", "routing", "variant")
#: the settings a user gives (``%workbench tune`` options)
TUNE_SETTINGS = ("p99_ms", "goal", "rate", "min_accuracy", "budget_s", "knobs")
#: how often the tuning task reports progress, and how long a stop may take
POLL_S = 0.25
STOP_TIMEOUT_S = 30.0


class TuneState(param.Parameterized):
    """What to tune for, what to search, and how far the tuner is."""

    p99_ms = param.Number(default=20.0, bounds=(0.1, 60_000.0), doc="The p99 latency target (ms)")
    goal: param.Selector = param.Selector(default="fixed rate", objects=list(GOALS),
                                          doc="fixed rate: p99 at most the target at `rate`; highest rate: the most "
                                              "requests/s that keep p99 at most the target")
    rate = param.Number(default=150.0, bounds=(1.0, 100_000.0), doc="The request rate to hold (fixed rate), req/s")
    min_accuracy = param.Number(default=0.0, bounds=(0.0, 1.0), step=0.01,
                                doc="Leave out variants less accurate than this fraction (0: no floor)")
    budget_s = param.Number(default=30.0, bounds=(5.0, 3600.0), doc="Seconds of measuring the tuner may spend")
    knobs = param.ListSelector(default=["max_batch_size", "max_delay_ms"], objects=list(KNOBS),
                               doc="The knobs to search; the others keep the Serve section's value")
    running = param.Boolean(default=False, constant=True, doc="True while the tuner runs")
    message = param.String(default="", constant=True, doc="The tuner's verdict, once it has finished")
    task = param.ClassSelector(class_=TaskState, constant=True, instantiate=True, default=TaskState())

    def to_objective(self) -> Any:
        from workbench.tune.trial import Objective

        return Objective(p99_ms=float(self.p99_ms), rate=float(self.rate) if self.goal == "fixed rate" else None,
                         min_accuracy=float(self.min_accuracy) if self.min_accuracy else None)

    def to_space(self, serve: Any = None, variant: str = "original") -> Any:
        """The search space: the tune package's values for the chosen knobs, ``serve``'s value (a
        ``ServeState``; default the defaults) for the others, and ``variant`` unless variants are searched."""
        from workbench.tune.space import SERVE_KNOBS, SearchSpace

        if not self.knobs:
            raise ConfigError(f"choose at least one knob to search: {', '.join(KNOBS)}")
        default = SearchSpace()
        fixed = {k: (getattr(serve, k),) for k in SERVE_KNOBS if k not in self.knobs and serve is not None}
        fixed.update({k: getattr(default, k)[:1] for k in SERVE_KNOBS if k not in self.knobs and serve is None})
        variants = () if "variant" in self.knobs else (variant,)
        return default.replace(**fixed, variants=list(variants))


class TuneController:
    """Starts, follows and stops the session's tuner. ``tuner``: the current one (or the last)."""

    def __init__(self, session: Any):
        self.session = session
        self.state = TuneState()
        self.tuner: Any = None
        self.result: Any = None
        #: ``fn(tuner)`` for each new tuner, called on the UI thread (the view attaches itself)
        self.on_tuner: list[Callable[[Any], Any]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._future: Future[Any] | None = None

    @property
    def running(self) -> bool:
        return self._future is not None and not self._future.done()

    def start(self, model: Any = None) -> Future[Any]:
        """Tune ``model`` (default the session's loaded model, with its compressed variants) as the
        state says, in the background. Returns the Future of the ``TuneResult``."""
        session, t = self.session, self.state
        if self.running:
            raise ConfigError("the tuner is running already; stop it first")
        if model is None:
            model = session._require_model()
            variants = dict(session.variants)
        else:
            session._check_open()
            variants = {}
        objective = t.to_objective()
        chosen = session.state.compress.serve_variant or "original"
        space = t.to_space(session.state.serve, chosen if chosen in variants else "original")
        budget_s = float(t.budget_s)
        self._stop.clear()

        def work(progress: Progress) -> Any:
            from workbench.tune import Tuner

            if session.load.running:
                progress(0.0, "stopping the live load: the trials measure alone on these cores")
                session.load.stop_now()
            tuner = Tuner(model, objective, space=space, variants=variants, budget_s=budget_s, runs_dir=session.runs_dir)
            with self._lock:
                self.tuner, self.result = tuner, None
            for fn in list(self.on_tuner):
                session.updates.post(lambda fn=fn: fn(tuner))
            tuner.start()
            try:
                while not tuner.wait(POLL_S):
                    if self._stop.is_set() or session.closed:
                        progress(tuner.progress, "stopping: the current trial ends early, the best so far stays")
                        tuner.stop(timeout_s=STOP_TIMEOUT_S)
                        break
                    progress(tuner.progress, _progress_line(tuner))
            except BaseException:
                tuner.stop(timeout_s=STOP_TIMEOUT_S)
                raise
            tuner.wait(STOP_TIMEOUT_S)
            with self._lock:
                self.result = tuner.result
            if tuner.error is not None:  # the view shows the result's message; the task shows the error
                raise tuner.error
            return tuner.result

        def done(result: Any) -> None:
            set_outputs(t, running=False, message=getattr(result, "message", ""))
            set_outputs(t.task, message=getattr(result, "message", "tuning: done"))

        future = session.tasks.submit(t.task, "tuning", work, done,
                                      before=lambda: set_outputs(t, running=True, message=""))
        future.add_done_callback(lambda f: session.updates.post(lambda: set_outputs(t, running=False))
                                 if f.cancelled() or f.exception() is not None else None)
        self._future = future
        return future

    def stop(self) -> None:
        """Ask the tuner to stop (the current trial ends early); returns at once."""
        if not self.running:
            raise ConfigError("the tuner is not running")
        self._stop.set()

    def close(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop the tuner and wait for it (bounded); for the session's close."""
        self._stop.set()
        tuner = self.tuner
        if tuner is not None and not tuner.done:
            try:
                tuner.stop(timeout_s=timeout_s)
            except Exception:
                log.exception("stopping the tuner failed")


def _progress_line(tuner: Any) -> str:
    trials = list(tuner.trials)
    best = tuner.best
    head = f"{tuner.status}: {len(trials)} trial{'s' * (len(trials) != 1)} measured"
    if best is None:
        return head + (", none meets the objective yet" if trials else "")
    return f"{head}; best: trial {best.number} ({best.variant}), {best.throughput:,.0f} req/s, p99 {best.p99_ms:.1f} ms"


__all__ = ["GOALS", "KNOBS", "TUNE_SETTINGS", "TuneController", "TuneState"]
