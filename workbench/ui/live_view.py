"""The Live and Runs sections: big numbers and streaming plots beside the knobs that move them; past
run records, two side by side."""

from __future__ import annotations

from typing import Any

import panel as pn

from workbench.errors import WorkbenchError
from workbench.ui.plots import LivePlots
from workbench.ui.session import WorkbenchSession
from workbench.ui.views import LoadView, ServeView, act


def _last_change(text: str) -> str:
    return f"last change: {text}" if text else ""


class LiveView(pn.viewable.Viewer):
    """Current figures as big numbers, the live plots, and the tuning knobs next to them."""

    def __init__(self, session: WorkbenchSession, **params: Any):
        super().__init__(**params)
        live = session.state.live
        self.plots = LivePlots()

        def big(name: str, value: Any, fmt: str, css: str, colors: Any = None) -> Any:
            return pn.indicators.Number(label=name, value=value, format=fmt, font_size="28pt", title_size="11pt",
                                        css_classes=[css], colors=colors, width=150)

        numbers = pn.Row(
            big("p99 latency (ms)", live.param.p99_ms, "{value:.1f}", "wb-p99"),
            big("p50 latency (ms)", live.param.p50_ms, "{value:.1f}", "wb-p50"),
            big("throughput (req/s)", live.param.rps, "{value:,.0f}", "wb-rps"),
            big("errors (/s)", live.param.errors_per_s, "{value:,.1f}", "wb-errors",
                colors=[(0.0, "black"), (1e12, "#d62728")]),
            big("queued requests", live.param.queue_depth, "{value}", "wb-queue"),
            big("mean batch size", live.param.mean_batch_size, "{value:.1f}", "wb-mean-batch"),
        )
        last = pn.pane.Str(pn.bind(_last_change, live.param.last_change),
                           css_classes=["wb-last-change"])
        p = self.plots
        grid = pn.GridBox(*[pn.pane.Bokeh(fig, sizing_mode="stretch_width") for fig in p.figures()], ncols=2,
                          sizing_mode="stretch_width")
        side = pn.Column(ServeView(session, compact=True), LoadView(session, compact=True), width=380)
        self._layout = pn.Row(pn.Column(numbers, last, grid, sizing_mode="stretch_width"), side,
                              sizing_mode="stretch_width")

    def __panel__(self) -> Any:
        return self._layout


class RunsView(pn.viewable.Viewer):
    """Past run records (from disk) and two of them compared side by side."""

    SHOWN = ("schedule", "throughput_rps", "latency_p50_ms", "latency_p99_ms", "error_rate", "mean_batch_size",
             "server_latency_p99_ms", "queue_time_p99_ms", "compute_time_p99_ms")

    def __init__(self, session: WorkbenchSession, **params: Any):
        super().__init__(**params)
        self.session = session
        r = session.state.runs
        refresh = pn.widgets.Button(label="Refresh", color="default", css_classes=["wb-refresh-runs"])
        refresh.on_click(act(session.state.load.task, session.refresh_runs))
        self._layout = pn.Column(
            "## Runs", refresh,
            pn.pane.DataFrame(pn.bind(self._listing, r.param.runs), index=False, sizing_mode="stretch_width",
                              max_rows=20),
            pn.Row(pn.widgets.Select.from_param(r.param.run_a, label="Run A", width=260),
                   pn.widgets.Select.from_param(r.param.run_b, label="Run B", width=260)),
            pn.Row(pn.pane.Bokeh(pn.bind(self._latency_plot, r.param.run_a, r.param.run_b), sizing_mode="stretch_width"),
                   sizing_mode="stretch_width"),
            pn.pane.DataFrame(pn.bind(self._compare, r.param.run_a, r.param.run_b), index=False,
                              sizing_mode="stretch_width", css_classes=["wb-run-compare"]),
        )

    def _listing(self, runs: list[str]) -> Any:
        import pandas as pd

        from workbench.telemetry.runs import list_runs

        rows = []
        for entry in reversed(list_runs(self.session.runs_dir)):
            summary, context = entry["summary"], entry["context"]
            rows.append({"id": entry["id"], "model": context.get("model"), "variant": context.get("variant"),
                         **{k: summary.get(k) for k in self.SHOWN}})
        return pd.DataFrame(rows or [{"id": "no runs yet: start load to record one"}])

    def _compare(self, a: str | None, b: str | None) -> Any:
        import pandas as pd

        if not a or not b:
            return pd.DataFrame({"": ["Pick two runs to compare."]})
        from workbench.telemetry.runs import compare_runs

        try:
            frame = compare_runs(a, b, directory=self.session.runs_dir)
        except WorkbenchError as exc:  # e.g. a run folder removed since the list was read
            return pd.DataFrame({"": [str(exc)]})
        frame = frame[(frame["section"] == "context") | frame["field"].isin(self.SHOWN)]
        return frame.rename(columns={"a": f"A {a[-6:]}", "b": f"B {b[-6:]}", "ratio": "B / A"})

    def _latency_plot(self, a: str | None, b: str | None) -> Any:
        from bokeh.plotting import figure

        from workbench.telemetry.runs import RunRecord

        if not a and not b:
            return None
        fig = figure(title="p99 latency over each run (ms)", height=260, sizing_mode="stretch_width",
                     x_axis_label="time into the run (s)", y_axis_label="ms", tools="pan,box_zoom,reset,save")
        for run, color in ((a, "#1f77b4"), (b, "#d62728")):
            if not run:
                continue
            try:
                record = RunRecord.load(run, directory=self.session.runs_dir)
            except WorkbenchError:
                continue  # the table next to it says why
            start = record.windows[0].start_s if record.windows else 0.0
            points = [(w.end_s - start, w.latency.p99_ms) for w in record.windows if w.latency is not None]
            if points:
                xs, ys = zip(*points)
                fig.line(list(xs), list(ys), color=color, line_width=2, legend_label=f"{'A' if run == a else 'B'} {run[-6:]}")
        return fig

    def __panel__(self) -> Any:
        return self._layout


__all__ = ["LiveView", "RunsView"]
