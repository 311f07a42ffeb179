"""Compact notebook views on a :class:`~workbench.ui.session.WorkbenchSession`: the live latency plot,
the knobs, the compression table and the whole dashboard.

They are built from the dashboard's own pieces (:class:`~workbench.ui.plots.LivePlots`,
:class:`~workbench.ui.views.ServeView`, ...), on the same session state, so a knob turned in one
view moves in every other. Several views may share one session: each keeps a cursor on the
session's recent telemetry windows and draws the ones it has not drawn yet, whoever pumped them::

    import panel as pn; pn.extension(inline=True)     # once per notebook (no CDN here)
    plot = LiveLatencyPlot(session); plot              # updates while the kernel is idle

Each view pulls updates every ``period_ms`` through a Panel periodic callback, which runs on the
kernel's event loop while no cell is executing (or while a cell awaits).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import panel as pn

from workbench.telemetry.window import Window
from workbench.ui.app import WorkbenchApp, configure
from workbench.ui.plots import LivePlots
from workbench.ui.session import WorkbenchSession
from workbench.ui.views import LoadView, ServeView, TaskView

log = logging.getLogger("workbench.ui")
_READY = False

#: comparison columns the compact compression table shows (the dashboard's table shows more)
TABLE_COLUMNS = ("variant", "runtime", "accuracy_pct", "accuracy_change_pt", "speedup_b1", "speedup_b32",
                 "size_ratio", "steps")


def setup_notebook() -> None:
    """Load Panel's JavaScript into this notebook, inline (there is no CDN here); once per kernel."""
    global _READY
    if not _READY:
        configure(inline=True)
        _READY = True


class WindowCursor:
    """Which telemetry windows a view has drawn: :meth:`take` returns the newer ones, oldest first."""

    def __init__(self) -> None:
        self.last_index = -1

    def take(self, recent: Iterable[Window]) -> list[Window]:
        new = [w for w in recent if w.index > self.last_index]
        if new:
            self.last_index = new[-1].index
        return new


class _Pumped(pn.viewable.Viewer):
    """A view that pumps its session every ``period_ms`` and draws the windows it has not drawn yet."""

    def __init__(self, session: WorkbenchSession, *, period_ms: int = 250, **params: Any):
        super().__init__(**params)
        self.session = session
        self.cursor = WindowCursor()
        self.windows_drawn = 0
        self._failed = False
        session.updates.attach()  # state changes wait for tick(): Panel models change on the kernel's thread
        self._callback: Any = pn.state.add_periodic_callback(self.tick, period=period_ms)

    def tick(self) -> None:
        """Apply the session's pending updates and draw new windows (call on the kernel's thread)."""
        if self.session.closed:
            self.stop()
            return
        try:
            self.session.pump()
            new = self.cursor.take(self.session.feed.recent)
            if new:
                self.draw(new, list(self.session.feed.recent))
                self.windows_drawn += len(new)
        except Exception:
            if not self._failed:  # log once, not four times a second
                log.exception("updating the %s view failed", type(self).__name__)
            self._failed = True

    def draw(self, windows: Sequence[Window], recent: Sequence[Window]) -> None:
        """Draw ``windows`` (new since the last call); ``recent``: the session's recent windows."""

    def stop(self) -> None:
        """Stop updating (the session goes on)."""
        if self._callback is not None:
            self._callback.stop()
            self._callback = None


class LiveLatencyPlot(_Pumped):
    """The client-side latency (p50/p90/p99) over time, configuration changes marked, with the current
    figures above it. The figure is the dashboard's own latency figure (``plots.latency``)."""

    def __init__(self, session: WorkbenchSession, *, height: int = 280, period_ms: int = 250, **params: Any):
        super().__init__(session, period_ms=period_ms, **params)
        self.plots = LivePlots()
        self.figure = self.plots.latency
        self.figure.height = height
        live, serve = session.state.live, session.state.serve
        numbers = pn.pane.Markdown(pn.bind(self._numbers, serve.param.status, serve.param.model, live.param.p50_ms,
                                           live.param.p99_ms, live.param.rps, live.param.errors_per_s,
                                           live.param.mean_batch_size), css_classes=["wb-nb-numbers"], margin=(0, 10))
        self._layout = pn.Column(numbers, pn.pane.Bokeh(self.figure, sizing_mode="stretch_width"),
                                 sizing_mode="stretch_width", max_width=1000)

    @staticmethod
    def _numbers(status: str, model: str, p50: float | None, p99: float | None, rps: float, errors: float,
                 batch: float) -> str:
        if p99 is None:
            return f"**{model or 'no model'}** · server {status} · *no requests yet*"
        return (f"**{model}** · p50 **{p50:.1f} ms** · p99 **{p99:.1f} ms** · **{rps:,.0f} req/s** · "
                f"errors {errors:,.1f}/s · mean batch {batch:.1f}")

    def draw(self, windows: Sequence[Window], recent: Sequence[Window]) -> None:
        self.plots.push(windows, recent)

    @property
    def latency_points(self) -> int:
        """How many points of the p99 line hold a latency (windows in which requests were answered)."""
        return sum(1 for v in self.plots.source.data["p99"] if v == v)  # NaN != NaN

    def __panel__(self) -> Any:
        return self._layout


class Knobs(_Pumped):
    """Serving and load knobs (the dashboard's Serve and Load views, compact) with Start/Apply/Stop."""

    def __init__(self, session: WorkbenchSession, *, period_ms: int = 250, **params: Any):
        super().__init__(session, period_ms=period_ms, **params)
        self.serve = ServeView(session, compact=True)
        self.load = LoadView(session, compact=True)
        self._layout = pn.Row(self.serve, self.load, sizing_mode="stretch_width")

    def __panel__(self) -> Any:
        return self._layout


class CompressionTable(_Pumped):
    """The variants compressed in this session compared with the original: a table and the Pareto plot
    (latency at batch 1 against accuracy). Updates as variants are made (``session.compress()``)."""

    def __init__(self, session: WorkbenchSession, *, period_ms: int = 500, **params: Any):
        super().__init__(session, period_ms=period_ms, **params)
        c = session.state.compress
        self._layout = pn.Column(
            TaskView(c.task),
            pn.pane.DataFrame(pn.bind(self.frame, c.param.table), index=False, sizing_mode="stretch_width",
                              css_classes=["wb-nb-compression"]),
            pn.pane.Bokeh(pn.bind(self._pareto, c.param.table)),
            sizing_mode="stretch_width", max_width=1000,
        )

    @staticmethod
    def frame(rows: list[dict[str, Any]]) -> Any:
        """The compact comparison table of ``rows`` (``state.compress.table``) as a DataFrame."""
        import pandas as pd

        if not rows:
            return pd.DataFrame({"": ["No variants yet: compress the model to compare them here."]})
        frame = pd.DataFrame(rows)
        return frame[[c for c in TABLE_COLUMNS if c in frame.columns]].round(3)

    def _pareto(self, rows: list[dict[str, Any]]) -> Any:
        if not rows or not self.session.reports:
            return None
        from workbench.compression.report import pareto_figure

        return pareto_figure(list(self.session.reports))

    def __panel__(self) -> Any:
        return self._layout


class NotebookDashboard(WorkbenchApp):
    """The whole dashboard inline. Unlike the served page it may share its session with other views, so
    it draws from a cursor on the recent windows rather than from what its own pump returned."""

    def tick(self) -> None:
        if self.session.closed:
            self.stop()
            return
        self.session.pump()
        self.tune.tick()
        cursor = self.__dict__.setdefault("_cursor", WindowCursor())
        new = cursor.take(self.session.feed.recent)
        if new:
            self.live.plots.push(new, list(self.session.feed.recent))


def tune_view(tuner: Any = None, *, session: WorkbenchSession | None = None, period_ms: int = 500,
              **kw: Any) -> Any:
    """A live view of ``tuner`` (a ``workbench.tune.Tuner``): its trials as they finish (scatter of
    throughput vs p99 coloured by variant, the objective drawn, a table), the current best, and at the end
    the result with its YAML. With ``session`` it follows the session's tuner instead, attaching to each new
    one (what ``%workbench tune`` shows). It draws every ``period_ms`` while the kernel is idle or awaits::

        view = tune_view(tuner); tuner.start(); view      # then: result = await view.wait(timeout_s=120)
    """
    from workbench.ui.tune_view import TuneView

    setup_notebook()
    view = TuneView(tuner, period_ms=period_ms, **kw)
    if session is not None:
        session.tuning.on_tuner.append(view.attach)
        if tuner is None and session.tuning.tuner is not None:
            view.attach(session.tuning.tuner)
    return view


__all__ = ["CompressionTable", "Knobs", "LiveLatencyPlot", "NotebookDashboard", "WindowCursor", "setup_notebook",
           "tune_view"]
