"""The dashboard: one page with the Model, Compress, Serve, Load, Live, Runs and Tune sections.

``WorkbenchApp(session)`` is the whole page as a Panel ``Viewer``; it shows the same way in a
JupyterLab notebook (``pn.extension(inline=True)`` first, there is no CDN here) and in a served
page. :func:`create_app` builds one per browser session (its own :class:`WorkbenchSession`, closed
when the session ends); :func:`run_dashboard` serves it (``workbench dashboard``).
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

import panel as pn

from workbench.ui.live_view import LiveView, RunsView
from workbench.ui.session import WorkbenchSession
from workbench.ui.state import SECTIONS
from workbench.ui.tune_view import TuneSection
from workbench.ui.views import CompressView, LoadView, ModelView, ServeView

log = logging.getLogger("workbench.ui")

#: sessions of this process that are still open (closed when the dashboard stops)
_SESSIONS: weakref.WeakSet[WorkbenchSession] = weakref.WeakSet()
_CONFIGURED = False


def configure(*, inline: bool = False) -> None:
    """Load Panel's extensions once per process (``inline``: embed the JavaScript, for notebooks)."""
    global _CONFIGURED
    if not _CONFIGURED or inline:
        pn.extension(inline=inline, notifications=False, design="bootstrap",
                     raw_css=[".wb-header h1 {margin: 0}"])
        _CONFIGURED = True


class WorkbenchApp(pn.viewable.Viewer):
    """The dashboard page for one session. ``period_ms``: how often the page pulls new windows and
    background updates (at least twice a second)."""

    def __init__(self, session: WorkbenchSession | None = None, *, period_ms: int = 250, **params: Any):
        super().__init__(**params)
        self.session = session or WorkbenchSession()
        self.period_ms = period_ms
        state = self.session.state
        self.live = LiveView(self.session)
        self.tune = TuneSection(self.session)
        self.tabs = pn.Tabs(
            ("Model", ModelView(self.session)), ("Compress", CompressView(self.session)),
            ("Serve", ServeView(self.session)), ("Load", LoadView(self.session)),
            ("Live", self.live), ("Runs", RunsView(self.session)), ("Tune", self.tune),
            dynamic=False, sizing_mode="stretch_width", css_classes=["wb-tabs"],
        )
        self.tabs.active = SECTIONS.index(state.section)
        self.tabs.param.watch(self._tab_chosen, "active")
        state.param.watch(lambda e: setattr(self.tabs, "active", SECTIONS.index(e.new)), "section")
        header = pn.Row(
            pn.pane.Markdown("# workbench", css_classes=["wb-header"], margin=(0, 10)),
            pn.pane.Markdown(pn.bind(self._headline, state.model.param.model_name, state.serve.param.status,
                                     state.load.param.status, state.live.param.p99_ms, state.live.param.rps),
                             css_classes=["wb-headline"]),
            sizing_mode="stretch_width",
        )
        self._layout = pn.Column(header, self.tabs, sizing_mode="stretch_width")
        self._callback: Any = None
        self._drawn = -1  # the last window index the plots show
        self.session.updates.attach()
        self.start()

    def _tab_chosen(self, event: Any) -> None:
        if event.new < len(SECTIONS):  # the Tune tab (last) is not a section of the shared state
            self.session.state.section = SECTIONS[event.new]

    @staticmethod
    def _headline(model: str, status: str, load: str, p99: float | None, rps: float) -> str:
        parts = [f"model **{model or '-'}**", f"server **{status}**", f"load **{load}**"]
        if p99 is not None:
            parts.append(f"p99 **{p99:.1f} ms** at **{rps:,.0f} req/s**")
        return " · ".join(parts)

    def start(self) -> None:
        """Pull updates and windows every ``period_ms`` on the session's own thread."""
        if self._callback is None:
            self._callback = pn.state.add_periodic_callback(self.tick, period=self.period_ms)

    def tick(self) -> None:
        """Apply background updates and stream the new windows into the plots (on the UI thread)."""
        if self.session.closed:
            return
        self.session.pump()
        self.tune.tick()
        new = self.session.feed.newer(self._drawn)  # not pump()'s return: another view may share the session
        if new:
            self._drawn = new[-1].index
            self.live.plots.push(new, list(self.session.feed.recent))

    def stop(self) -> None:
        if self._callback is not None:
            self._callback.stop()
            self._callback = None

    def close(self) -> None:
        """Stop updating and close the session (server, load, threads)."""
        self.stop()
        self.session.close()

    def __panel__(self) -> Any:
        return self._layout


def _close_later(session: WorkbenchSession) -> None:
    """Close a session off the server's event loop (closing waits for workers to stop)."""
    threading.Thread(target=session.close, name="workbench-ui-close", daemon=False).start()


def create_app(*, demo: bool = False, runs_dir: str | None = None) -> WorkbenchApp:
    """Build the page for one browser session (call inside a Panel server session)."""
    configure()
    session = WorkbenchSession(runs_dir=runs_dir)
    _SESSIONS.add(session)
    app = WorkbenchApp(session)
    def destroyed(_context: Any) -> None:
        log.info("a dashboard session ended: closing its server, load and threads")
        app.stop()
        _close_later(session)

    pn.state.on_session_destroyed(destroyed)
    if demo:
        session.demo()
    return app


def close_all_sessions(timeout_s: float = 30.0) -> None:
    """Close every session this process opened, in parallel, within about ``timeout_s``."""
    threads = [threading.Thread(target=s.close, kwargs={"timeout_s": timeout_s}, daemon=True) for s in list(_SESSIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout_s + 10)


__all__ = ["WorkbenchApp", "close_all_sessions", "configure", "create_app"]
