"""The Live section's Bokeh figures, fed from ColumnDataSources that :meth:`LivePlots.push` streams
aggregated windows into (call it on the session's thread: the dashboard's periodic callback).

Every time-series figure shares one x range (seconds since the session started, following the last
two minutes) and shows each configuration change as a dashed vertical line; the latency figure
labels it with what changed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from workbench.telemetry.window import Window
from workbench.ui.live import SERIES, batch_histogram, change_markers, columns, worker_utilization

COLORS = {"p50": "#2ca02c", "p90": "#ff7f0e", "p99": "#d62728", "queue": "#9467bd", "compute": "#1f77b4",
          "rps": "#1f77b4", "errors": "#d62728", "depth": "#8c564b", "change": "#444444"}
TOOLS = "pan,xwheel_zoom,box_zoom,reset,save"


class LivePlots:
    """The live figures and their data sources. ``rollover`` bounds the points kept per series."""

    def __init__(self, *, rollover: int = 1200, follow_s: float = 120.0, batch_windows: int = 20,
                 worker_windows: int = 4):
        from bokeh.models import ColumnDataSource, DataRange1d

        self.rollover = rollover
        self.batch_windows = batch_windows
        self.worker_windows = worker_windows
        self.source = ColumnDataSource({name: [] for name in SERIES}, name="live_series")
        self.changes = ColumnDataSource({"t": [], "label": [], "text": []}, name="live_changes")
        self.batches = ColumnDataSource(batch_histogram([]), name="live_batches")
        self.workers = ColumnDataSource(worker_utilization([]), name="live_workers")
        self.x_range = DataRange1d(follow="end", follow_interval=follow_s, range_padding=0.02, only_visible=True)
        self.latency = self._latency()
        self.server = self._server()
        self.throughput = self._throughput()
        self.queue = self._queue()
        self.batch_sizes = self._batch_sizes()
        self.utilization = self._utilization()

    # -------------------------------------------------------------- figures
    def _figure(self, title: str, y_label: str, **kw: Any) -> Any:
        from bokeh.plotting import figure

        fig = figure(title=title, x_range=self.x_range, x_axis_label="time (s)", y_axis_label=y_label,
                     height=260, sizing_mode="stretch_width", tools=TOOLS, toolbar_location="above",
                     **kw)
        fig.y_range.start = 0  # type: ignore[attr-defined]
        fig.vspan(x="t", source=self.changes, line_color=COLORS["change"], line_dash="dashed", line_width=1.5)
        return fig

    def _lines(self, fig: Any, series: Sequence[tuple[str, str, str, str]]) -> None:
        from bokeh.models import HoverTool

        renderers = []
        for column, label, color, dash in series:
            renderers.append(fig.line("t", column, source=self.source, color=color, line_width=2, line_dash=dash,
                                      legend_label=label))
        fig.add_tools(HoverTool(renderers=renderers[:1], mode="vline",
                                tooltips=[("t", "@t{0.0} s")] + [(label, f"@{column}{{0.00}}")
                                                                for column, label, _, _ in series]))
        fig.legend.location = "top_left"
        fig.legend.click_policy = "hide"
        fig.legend.background_fill_alpha = 0.6

    def _latency(self) -> Any:
        from bokeh.models import HoverTool
        from bokeh.models.annotations import LabelSet

        fig = self._figure("Latency seen by the clients (ms)", "ms")
        self._lines(fig, [("p50", "p50", COLORS["p50"], "solid"), ("p90", "p90", COLORS["p90"], "solid"),
                          ("p99", "p99", COLORS["p99"], "solid")])
        fig.add_layout(LabelSet(x="t", y=4, y_units="screen", text="label", source=self.changes, angle=math.pi / 2,
                                text_font_size="9pt", text_color=COLORS["change"], x_offset=-3,
                                background_fill_color="white", background_fill_alpha=0.7))
        marks = fig.scatter("t", 0, source=self.changes, size=9, marker="triangle", color=COLORS["change"])
        fig.add_tools(HoverTool(renderers=[marks], tooltips=[("at", "@t{0.0} s"), ("change", "@text")]))
        return fig

    def _server(self) -> Any:
        fig = self._figure("Server side: queue vs compute (ms)", "ms")
        self._lines(fig, [("queue_p50", "queue p50", COLORS["queue"], "dashed"),
                          ("queue_p99", "queue p99", COLORS["queue"], "solid"),
                          ("compute_p50", "compute p50", COLORS["compute"], "dashed"),
                          ("compute_p99", "compute p99", COLORS["compute"], "solid")])
        return fig

    def _throughput(self) -> Any:
        fig = self._figure("Throughput and errors (per second)", "requests/s")
        self._lines(fig, [("rps", "ok req/s", COLORS["rps"], "solid"),
                          ("errors_per_s", "errors/s", COLORS["errors"], "solid")])
        return fig

    def _queue(self) -> Any:
        fig = self._figure("Queue depth and mean batch size", "requests")
        self._lines(fig, [("queue_depth", "queued requests", COLORS["depth"], "solid"),
                          ("mean_batch_size", "mean batch size", COLORS["compute"], "dashed")])
        return fig

    def _batch_sizes(self) -> Any:
        from bokeh.models import HoverTool
        from bokeh.plotting import figure

        fig = figure(title=f"Batch sizes (last {self.batch_windows} windows)", x_axis_label="rows in batch",
                     y_axis_label="batches", height=260, sizing_mode="stretch_width", tools="reset,save",
                     toolbar_location=None)
        fig.vbar(x="size", top="batches", width=0.8, source=self.batches, color=COLORS["compute"])
        fig.add_tools(HoverTool(tooltips=[("batch size", "@size"), ("batches", "@batches"),
                                          ("share", "@share{0.0%}")]))
        fig.y_range.start = 0  # type: ignore[attr-defined]
        return fig

    def _utilization(self) -> Any:
        from bokeh.models import FactorRange, HoverTool, Range1d
        from bokeh.plotting import figure

        fig = figure(title="Worker utilization (busy %)", y_range=FactorRange(factors=[]), x_range=Range1d(start=0, end=100),
                     x_axis_label="% of the time computing", height=260, sizing_mode="stretch_width",
                     tools="reset,save", toolbar_location=None)
        fig.hbar(y="worker", right="percent", height=0.7, source=self.workers, color=COLORS["p50"])
        fig.add_tools(HoverTool(tooltips=[("worker", "@worker"), ("busy", "@percent{0.0} %")]))
        return fig

    # ----------------------------------------------------------------- data
    def push(self, windows: Sequence[Window], recent: Sequence[Window]) -> None:
        """Stream new ``windows`` into the sources; redraw the distributions from ``recent`` windows."""
        if not windows:
            return
        self.source.stream(columns(windows), rollover=self.rollover)  # type: ignore[arg-type]
        markers = change_markers(windows)
        if markers["t"]:
            self.changes.stream(markers, rollover=500)  # type: ignore[arg-type]
        recent = list(recent)
        self.batches.data = batch_histogram(recent[-self.batch_windows:])
        workers = worker_utilization(recent[-self.worker_windows:])
        if list(self.utilization.y_range.factors) != workers["worker"]:
            self.utilization.y_range.factors = workers["worker"]
        self.workers.data = workers

    def figures(self) -> list[Any]:
        return [self.latency, self.server, self.throughput, self.queue, self.batch_sizes, self.utilization]


__all__ = ["LivePlots"]
