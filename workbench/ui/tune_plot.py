"""The tuner's scatter: throughput (x) against p99 latency (y), one point per trial.

One colour per model variant (with a legend), the marker says how the trial ended (● met the objective,
▲ missed it, ✕ stopped early), the objective is drawn (a dashed horizontal line at the p99 target and,
for a fixed-rate objective, a vertical line at the target rate), and the current best trial is ringed.
Hovering a point shows its configuration. Call :meth:`TunePlot.push` on the session's thread.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from workbench.tune.trial import Objective, Trial

#: one colour per variant, in the order the variants first appear (Bokeh's Category10)
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
           "#d62728")
MARKERS = {"meets": "circle", "misses": "triangle", "stopped early": "x"}
OBJECTIVE_COLOR = "#d62728"
COLUMNS = ("number", "variant", "throughput", "p99", "p50", "rate", "outcome", "config", "marker", "color")


def outcome(trial: Trial) -> str:
    """``meets``, ``misses`` or ``stopped early``, in words."""
    if trial.meets:
        return "meets"
    return "stopped early" if trial.stopped_early else "misses"


def config_text(trial: Trial) -> str:
    """The trial's serve settings as ``name=value`` pairs (what the hover and the status line show)."""
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.config.items()
                     if k != "variant")


def _number(value: float | None) -> float:
    return float("nan") if value is None else float(value)  # NaN: Bokeh draws no point


class TunePlot:
    """The figure and its data sources. ``source`` holds one row per trial, ``best`` the best trial."""

    def __init__(self, objective: Objective | None = None, *, height: int = 340):
        from bokeh.models import ColumnDataSource, HoverTool
        from bokeh.models.annotations import Span, Title
        from bokeh.plotting import figure

        self.colors: dict[str, str] = {}
        self.source = ColumnDataSource({name: [] for name in COLUMNS}, name="tune_trials")
        self.best = ColumnDataSource({"throughput": [], "p99": [], "number": []}, name="tune_best")
        self.target = ColumnDataSource({"x": [], "y": []}, name="tune_target")  # keeps the lines in view
        self.title = Title(text="Trials: throughput vs p99 latency")
        fig = figure(title=self.title, x_axis_label="throughput (req/s)",
                     y_axis_label="p99 latency (ms)", height=height, sizing_mode="stretch_width",
                     tools="pan,wheel_zoom,box_zoom,reset,save", toolbar_location="above")
        fig.x_range.start = 0  # type: ignore[attr-defined]
        fig.y_range.start = 0  # type: ignore[attr-defined]
        self.p99_line = Span(location=0, dimension="width", line_color=OBJECTIVE_COLOR, line_dash="dashed",
                             line_width=2, visible=False)
        self.rate_line = Span(location=0, dimension="height", line_color=OBJECTIVE_COLOR, line_dash="dotted",
                              line_width=2, visible=False)
        fig.add_layout(self.p99_line)
        fig.add_layout(self.rate_line)
        fig.scatter("x", "y", source=self.target, alpha=0, size=1)  # invisible: the ranges reach the target
        points = fig.scatter("throughput", "p99", source=self.source, marker="marker", color="color", size=12,
                             fill_alpha=0.7, line_width=2, legend_field="variant")
        fig.scatter("throughput", "p99", source=self.best, marker="circle", size=26, fill_color=None,
                    line_color="black", line_width=3, legend_label="best")
        fig.add_tools(HoverTool(renderers=[points], tooltips=[
            ("trial", "@number (@variant)"), ("outcome", "@outcome"), ("throughput", "@throughput{0,0.0} req/s"),
            ("p99", "@p99{0.00} ms"), ("p50", "@p50{0.00} ms"), ("rate", "@rate{0,0.0} req/s"), ("config", "@config"),
        ]))
        fig.legend.location = "top_left"
        fig.legend.background_fill_alpha = 0.6
        fig.legend.title = "variant (● meets ▲ misses ✕ stopped early)"
        self.figure = fig
        self.objective: Objective | None = None
        if objective is not None:
            self.set_objective(objective)

    def set_objective(self, objective: Objective) -> None:
        """Draw ``objective``: the p99 target across, and the target rate upright for a fixed rate."""
        self.objective = objective
        self.p99_line.location = float(objective.p99_ms)
        self.p99_line.visible = True
        self.rate_line.visible = objective.rate is not None
        if objective.rate is not None:
            self.rate_line.location = float(objective.rate)
        self.target.data = {"x": [float(objective.rate or 0.0)], "y": [float(objective.p99_ms)]}
        self.title.text = f"Trials: throughput vs p99 latency (objective: {objective.describe()})"

    def color(self, variant: str) -> str:
        if variant not in self.colors:
            self.colors[variant] = PALETTE[len(self.colors) % len(PALETTE)]
        return self.colors[variant]

    def rows(self, trials: Sequence[Trial]) -> dict[str, list[Any]]:
        """The source columns of ``trials``."""
        return {
            "number": [t.number for t in trials], "variant": [t.variant for t in trials],
            "throughput": [float(t.throughput) for t in trials], "p99": [_number(t.p99_ms) for t in trials],
            "p50": [_number(t.p50_ms) for t in trials], "rate": [float(t.rate) for t in trials],
            "outcome": [outcome(t) for t in trials], "config": [config_text(t) for t in trials],
            "marker": [MARKERS[outcome(t)] for t in trials], "color": [self.color(t.variant) for t in trials],
        }

    def push(self, trials: Sequence[Trial]) -> None:
        """Add the points of newly finished ``trials``."""
        if trials:
            self.source.stream(self.rows(trials))  # type: ignore[arg-type]

    def set_best(self, trial: Trial | None) -> None:
        """Ring ``trial`` (None: no trial met the objective yet)."""
        if trial is None or trial.p99_ms is None or not math.isfinite(trial.p99_ms):
            self.best.data = {"throughput": [], "p99": [], "number": []}
        else:
            self.best.data = {"throughput": [float(trial.throughput)], "p99": [float(trial.p99_ms)],
                              "number": [trial.number]}

    def clear(self) -> None:
        self.source.data = {name: [] for name in COLUMNS}
        self.set_best(None)


__all__ = ["MARKERS", "TunePlot", "config_text", "outcome"]
