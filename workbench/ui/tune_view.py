"""A live view of an SLO tuner: trials as they finish, the current best, and at the end the result.

The tuner calls back from its own thread, where Panel documents must not change; :meth:`TuneView.add`
only queues the trial, and :meth:`TuneView.tick` (on the session's thread: a periodic callback, or the
dashboard's own tick) drains the queue into the scatter (:class:`~workbench.ui.tune_plot.TunePlot`), the
table, the progress bar and the status line::

    import panel as pn; pn.extension(inline=True)        # in a notebook (no CDN here)
    view = TuneView(tuner)                                # subscribes; draws every 500 ms while idle
    tuner.start(); view                                   # show it
    result = await view.wait(timeout_s=120)               # the kernel stays free, the view keeps drawing

Without a tuner, feed it trials yourself (``view.add(trial)``, from any thread) and ``view.set_objective``.
"""

from __future__ import annotations

import asyncio
import io
import logging
import queue
import time
from collections.abc import Callable, Sequence
from typing import Any

import panel as pn

from workbench.tune.trial import Objective, Trial
from workbench.ui.tune_plot import TunePlot, config_text, outcome

log = logging.getLogger("workbench.ui")

#: the table's columns before the knobs, and after them
LEADING = ("best", "number", "variant")
TRAILING = ("rate", "throughput", "p50_ms", "p99_ms", "errors", "accuracy", "outcome", "measured_s", "reason")


def best_of(trials: Sequence[Trial]) -> Trial | None:
    """The trial that meets the objective with the highest score (throughput when unscored), or None."""
    met = [t for t in trials if t.meets]
    if not met:
        return None
    return max(met, key=lambda t: (t.score if t.score is not None else t.throughput, -t.number))


def describe_trial(trial: Trial) -> str:
    """One line: which trial, its variant and settings, what it achieved."""
    p99 = "-" if trial.p99_ms is None else f"{trial.p99_ms:.1f} ms"
    settings = config_text(trial)
    return (f"trial {trial.number}, variant **{trial.variant}**" + (f", {settings}" if settings else "")
            + f": **{trial.throughput:,.0f} req/s** with p99 **{p99}** at {trial.rate:,.0f} req/s offered")


def trials_frame(trials: Sequence[Trial], best: Trial | None = None) -> Any:
    """The trials as a DataFrame, newest first: the knobs as columns, the best marked with ★."""
    import pandas as pd

    if not trials:
        return pd.DataFrame({"": ["No trials yet."]})
    knobs: list[str] = []
    for t in trials:
        knobs += [k for k in t.config if k not in knobs and k not in LEADING and k not in TRAILING]
    rows = []
    for t in reversed(trials):
        row = {"best": "★" if best is not None and t.number == best.number else "", "number": t.number,
               "variant": t.variant, **{k: t.config.get(k) for k in knobs}, "rate": t.rate,
               "throughput": round(t.throughput, 1), "p50_ms": t.p50_ms, "p99_ms": t.p99_ms, "errors": t.errors,
               "accuracy": t.accuracy, "outcome": outcome(t), "measured_s": round(t.measured_s, 1),
               "reason": t.reason}
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame["accuracy"].isna().all():
        frame = frame.drop(columns=["accuracy"])
    return frame.round({"p50_ms": 2, "p99_ms": 2, "rate": 1})


class TuneView(pn.viewable.Viewer):
    """Scatter, table, progress and status of one tuner's trials. See the module docstring.

    ``tuner``: a ``workbench.tune.Tuner`` to follow (or call :meth:`attach` later); ``objective``: drawn
    before the tuner is known; ``period_ms``: how often the view draws by itself (None: someone else
    calls :meth:`tick`, as the dashboard does)."""

    def __init__(self, tuner: Any = None, *, objective: Objective | None = None, period_ms: int | None = 500,
                 height: int = 340, **params: Any):
        super().__init__(**params)
        self.plot = TunePlot(objective, height=height)
        self.trials: list[Trial] = []
        self.best: Trial | None = None
        self.result: Any = None
        self.tuner: Any = None
        self.yaml = ""
        self._inbox: queue.SimpleQueue[Trial] = queue.SimpleQueue()
        self._unsubscribe: Callable[[], Any] | None = None
        self._callback: Any = None
        self.table = pn.widgets.Tabulator(trials_frame([]), disabled=True, show_index=False, height=260,
                                          sizing_mode="stretch_width", css_classes=["wb-tune-table"])
        self.progress = pn.indicators.Progress(value=0, max=100, height=14, width=320, bar_color="primary",
                                               css_classes=["wb-tune-progress"])
        self.status = pn.pane.Markdown(self._waiting(), css_classes=["wb-tune-status"])
        self.details = pn.pane.Markdown("", css_classes=["wb-tune-result"], visible=False)
        self.download = pn.widgets.FileDownload(callback=self._yaml_file, filename="tuned.yaml", label="Download YAML",
                                                color="primary", visible=False, css_classes=["wb-tune-download"])
        self._layout = pn.Column(pn.Row(self.progress, self.download), self.status,
                                 pn.pane.Bokeh(self.plot.figure, sizing_mode="stretch_width"), self.table,
                                 self.details, sizing_mode="stretch_width")
        if tuner is not None:
            self.attach(tuner)
        if period_ms is not None:
            self.start(period_ms)

    # ------------------------------------------------------------ feeding
    def add(self, trial: Trial) -> None:
        """Queue a finished trial (from any thread); it shows at the next :meth:`tick`."""
        self._inbox.put(trial)

    def attach(self, tuner: Any) -> TuneView:
        """Follow ``tuner``: draw its objective, and its trials as they finish (forgets earlier ones)."""
        self.detach()
        self.reset(tuner.objective)
        self.tuner = tuner
        self._unsubscribe = tuner.subscribe(self.add)
        for trial in list(tuner.trials):  # those that finished before we subscribed (numbers dedupe)
            self.add(trial)
        return self

    def detach(self) -> None:
        """Stop receiving the tuner's trials (what was drawn stays)."""
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()

    def set_objective(self, objective: Objective) -> None:
        self.plot.set_objective(objective)
        if not self.trials:
            self.status.object = self._waiting()

    def reset(self, objective: Objective | None = None) -> None:
        """Forget the trials and the result (on the session's thread); draw ``objective`` if given."""
        while not self._inbox.empty():
            self._inbox.get_nowait()
        self.trials, self.best, self.result, self.yaml = [], None, None, ""
        self.plot.clear()
        if objective is not None:
            self.plot.set_objective(objective)
        self.table.value = trials_frame([])
        self.progress.value = 0
        self.status.object = self._waiting()
        self.details.param.update(object="", visible=False)
        self.download.visible = False

    # ------------------------------------------------------------ drawing
    def tick(self) -> int:
        """Draw the trials queued since the last call, the best, the progress and, once the tuner is done,
        its result (call on the session's thread). Returns how many trials were new."""
        new: list[Trial] = []
        seen = {t.number for t in self.trials}
        while True:
            try:
                trial = self._inbox.get_nowait()
            except queue.Empty:
                break
            if trial.number not in seen:
                seen.add(trial.number)
                new.append(trial)
        tuner = self.tuner
        if new:
            self.trials.extend(new)
            self.plot.push(new)
        best = getattr(tuner, "best", None) if tuner is not None else None
        best = best if best is not None else best_of(self.trials)
        if new or best is not self.best:
            self.best = best
            self.plot.set_best(best)
            self.table.value = trials_frame(self.trials, best)
            self.status.object = self._status()
        if tuner is not None:
            self.progress.value = int(round(100 * min(1.0, max(0.0, float(tuner.progress)))))
            if tuner.done and self.result is None and getattr(tuner, "result", None) is not None:
                self.show_result(tuner.result)
        return len(new)

    def show_result(self, result: Any) -> None:
        """Show the tuner's verdict: its message, the explanation, the YAML (and a download of it)."""
        self.result = result
        best = getattr(result, "best", None)
        if best is not None and best is not self.best:
            self.best = best
            self.plot.set_best(best)
            self.table.value = trials_frame(self.trials, best)
        self.progress.value = 100
        failed = getattr(result, "error", None) is not None
        self.yaml = "" if failed else result.to_yaml()  # the best's config, else the closest's (its comment says)
        self.status.object = f"**{result.message}**"
        lines = "\n".join(f"- {line}" for line in result.explanation)
        block = f"\n\n```yaml\n{self.yaml}```" if self.yaml else ""
        self.details.param.update(object=lines + block, visible=True)
        self.download.visible = bool(self.yaml)

    def _yaml_file(self) -> io.StringIO:
        return io.StringIO(self.yaml)

    def _waiting(self) -> str:
        objective = self.plot.objective
        goal = f" (objective: {objective.describe()})" if objective is not None else ""
        return f"*Waiting for the first trial{goal}.*"

    def _status(self) -> str:
        if not self.trials:
            return self._waiting()
        if self.best is None:
            return f"No trial meets the objective yet ({len(self.trials)} measured)."
        return f"**Best so far:** {describe_trial(self.best)} ({len(self.trials)} measured)."

    # ---------------------------------------------------------- lifecycle
    def start(self, period_ms: int = 500) -> None:
        """Draw every ``period_ms`` by itself (a Panel periodic callback, on the session's thread)."""
        if self._callback is None:
            self._callback = pn.state.add_periodic_callback(self._safe_tick, period=period_ms)

    def _safe_tick(self) -> None:
        try:
            self.tick()
        except Exception:
            log.exception("updating the tune view failed")
            self.stop()

    def stop(self) -> None:
        """Stop drawing by itself and stop receiving trials (the tuner goes on)."""
        if self._callback is not None:
            self._callback.stop()
            self._callback = None
        self.detach()

    async def wait(self, timeout_s: float = 300.0, interval_s: float = 0.25) -> Any:
        """Await the tuner's end without blocking the kernel (the view keeps drawing); returns its result."""
        if self.tuner is None:
            raise RuntimeError("this view follows no tuner: TuneView(tuner) or view.attach(tuner) first")
        deadline = time.monotonic() + timeout_s
        while not self.tuner.done:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the tuner did not finish within {timeout_s:g} s")
            await asyncio.sleep(interval_s)
        self.tick()
        return self.tuner.result

    def __panel__(self) -> Any:
        return self._layout


class TuneSection(pn.viewable.Viewer):
    """The dashboard's Tune section: the objective, the budget and the knobs to search, Start/Stop, and the
    live :class:`TuneView` of the session's tuner (drawn by the dashboard's tick: call :meth:`tick`)."""

    def __init__(self, session: Any, **params: Any):
        from workbench.ui.views import TaskView, button, number_input

        super().__init__(**params)
        self.session = session
        tuning = session.tuning
        t = tuning.state
        w = pn.widgets
        self.view = TuneView(objective=t.to_objective(), period_ms=None)
        self.view.progress.visible = False  # the task view below shows the same progress
        tuning.on_tuner.append(self.view.attach)
        if tuning.tuner is not None:  # opened while (or after) the session tuned
            self.view.attach(tuning.tuner)
        fixed = pn.bind(lambda goal: goal == "fixed rate", t.param.goal)
        controls = pn.GridBox(
            number_input(t.param.p99_ms, "p99 target (ms)", "wb-tune-p99"),
            w.Select.from_param(t.param.goal, label="Objective", width=170, description=t.param.goal.doc),
            number_input(t.param.rate, "At rate (req/s)", "wb-tune-rate", visible=fixed),
            number_input(t.param.min_accuracy, "Accuracy floor (0-1)", "wb-tune-accuracy", step=0.01),
            number_input(t.param.budget_s, "Budget (s)", "wb-tune-budget"),
            ncols=5,
        )
        knobs = w.CheckButtonGroup.from_param(t.param.knobs, name="Knobs to search", css_classes=["wb-tune-knobs"])
        buttons = pn.Row(button("Start tuning", t.task, tuning.start, css="wb-start-tuning"),
                         button("Stop tuning", t.task, tuning.stop, kind="warning", css="wb-stop-tuning"))
        note = pn.pane.Markdown("*The tuner measures with its own server on these cores: starting it stops the live "
                                "load, and load cannot start while it runs. Knobs not searched keep the Serve "
                                "section's values.*", styles={"color": "#555"})
        t.param.watch(self._objective_changed, ["p99_ms", "goal", "rate", "min_accuracy"])
        self._layout = pn.Column("## Tune", controls, pn.pane.Markdown("Knobs to search"), knobs, buttons, note,
                                 TaskView(t.task), self.view, sizing_mode="stretch_width")

    def _objective_changed(self, *_: Any) -> None:
        if self.session.tuning.running:
            return  # the view shows the running tuner's objective
        try:
            self.view.set_objective(self.session.tuning.state.to_objective())
        except ValueError:  # a ConfigError: the Start button says what is wrong
            pass

    def tick(self) -> int:
        return self.view.tick()

    def __panel__(self) -> Any:
        return self._layout


__all__ = ["TuneSection", "TuneView", "best_of", "describe_trial", "trials_frame"]
