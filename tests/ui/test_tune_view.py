"""The tuner's live view on real Panel and Bokeh objects: trials arriving from another thread reach the
scatter and the table only on the view's own tick, the objective is drawn at its target, the best
trial is ringed and starred, and the result shows with its YAML."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

import panel as pn
import pytest

from workbench.tune.trial import Objective, Trial


def trial(number: int, *, variant: str = "original", throughput: float = 100.0, p99_ms: float | None = 10.0,
          meets: bool = True, stopped_early: bool = False, score: float | None = None, **config: Any) -> Trial:
    return Trial(number=number, config=config or {"max_batch_size": 8, "max_delay_ms": 2.0}, variant=variant,
                 rate=throughput, throughput=throughput, p50_ms=None if p99_ms is None else p99_ms / 2,
                 p99_ms=p99_ms, meets=meets, stopped_early=stopped_early,
                 score=score if score is not None else (throughput if meets else None), measured_s=2.0)


@pytest.fixture
def view():
    from workbench.ui.tune_view import TuneView

    v = TuneView(objective=Objective(p99_ms=20, rate=300), period_ms=None)
    try:
        yield v
    finally:
        v.stop()


def test_trials_from_another_thread_show_only_after_a_tick(view):
    trials = [trial(1, throughput=300, p99_ms=12.0, max_batch_size=1, max_delay_ms=0.0),
              trial(2, variant="int8", throughput=300, p99_ms=35.0, meets=False, max_batch_size=8, max_delay_ms=2.0),
              trial(3, variant="int8", throughput=150, p99_ms=80.0, meets=False, stopped_early=True,
                    max_batch_size=32, max_delay_ms=10.0)]
    sender = threading.Thread(target=lambda: [view.add(t) for t in trials])
    sender.start()
    sender.join(10)
    data = view.plot.source.data
    assert data["number"] == []  # nothing touched the document from the tuner's thread
    assert view.tick() == 3
    assert data["number"] == [1, 2, 3] and data["p99"] == [12.0, 35.0, 80.0] and data["throughput"] == [300, 300, 150]
    assert data["marker"] == ["circle", "triangle", "x"]
    assert data["outcome"] == ["meets", "misses", "stopped early"]
    assert data["color"][1] == data["color"][2] != data["color"][0]  # one colour per variant
    assert data["config"][2] == "max_batch_size=32, max_delay_ms=10"
    table = view.table.value
    assert list(table["number"]) == [3, 2, 1]  # newest first
    assert {"max_batch_size", "max_delay_ms", "variant", "p99_ms", "throughput"} <= set(table.columns)
    assert list(table["max_batch_size"]) == [32, 8, 1]
    assert view.tick() == 0  # drained once


def test_the_legend_groups_by_variant_and_hover_shows_the_config(view):
    from bokeh.models import HoverTool

    fig = view.plot.figure
    items = fig.legend[0].items
    assert any(getattr(i.label, "field", None) == "variant" for i in items)
    tooltips = dict(next(t for t in fig.tools if isinstance(t, HoverTool)).tooltips)
    assert tooltips["config"] == "@config"


def test_objective_lines_sit_at_the_target(view):
    plot = view.plot
    assert plot.p99_line.location == 20 and plot.p99_line.dimension == "width" and plot.p99_line.visible
    assert plot.rate_line.location == 300 and plot.rate_line.dimension == "height" and plot.rate_line.visible
    assert plot.target.data == {"x": [300.0], "y": [20.0]}  # the ranges reach the lines even below them
    view.set_objective(Objective(p99_ms=15))  # the highest rate: no target rate to draw
    assert plot.p99_line.location == 15 and not plot.rate_line.visible
    assert "highest rate" in plot.title.text and plot.figure.title is plot.title and "highest rate" in view.status.object


def test_the_best_trial_is_ringed_starred_and_described(view):
    view.add(trial(1, throughput=300, p99_ms=30.0, meets=False))
    view.tick()
    assert view.best is None and view.plot.best.data["number"] == []
    assert "No trial meets" in view.status.object
    view.add(trial(2, throughput=300, p99_ms=18.0, score=1.0))
    view.add(trial(3, variant="int8", throughput=300, p99_ms=9.0, score=2.0, max_batch_size=16))
    view.add(trial(4, throughput=310, p99_ms=None, meets=False))  # failed: in the table, not on the plot
    view.tick()
    assert view.best is not None and view.best.number == 3
    assert view.plot.best.data == {"throughput": [300.0], "p99": [9.0], "number": [3]}
    assert math.isnan(view.plot.source.data["p99"][-1])
    table = view.table.value
    assert list(table.loc[table["best"] == "★", "number"]) == [3]
    assert "trial 3, variant **int8**, max_batch_size=16" in view.status.object


@dataclass
class _Result:
    """The result's shape as the view reads it (message, explanation, best, to_yaml)."""

    best: Trial | None
    message: str
    explanation: list[str] = field(default_factory=list)

    def to_yaml(self) -> str:
        return f"# trial {self.best.number}\nmax_batch_size: 8\n" if self.best else ""


def test_the_result_shows_message_explanation_and_a_yaml_download(view):
    best = trial(5, throughput=300, p99_ms=11.0)
    view.add(best)
    view.tick()
    view.show_result(_Result(best=best, message="trial 5 meets p99 <= 20 ms at 300 req/s",
                             explanation=["batching kept p99 low", "int8 was not needed"]))
    assert view.status.object == "**trial 5 meets p99 <= 20 ms at 300 req/s**"
    assert "- batching kept p99 low" in view.details.object and "max_batch_size: 8" in view.details.object
    assert view.download.visible and view.download.filename == "tuned.yaml"
    assert view.download.callback().read() == "# trial 5\nmax_batch_size: 8\n"
    assert view.progress.value == 100
    view.reset(Objective(p99_ms=20))
    assert view.trials == [] and view.plot.source.data["number"] == [] and not view.download.visible


def test_the_view_renders_as_a_panel_document(view):
    view.add(trial(1))
    view.tick()
    root = pn.panel(view).get_root()
    source = root.select_one({"name": "tune_trials"})  # the document holds the very source the view streams into
    assert source is view.plot.source and source.data["number"] == [1]
