"""The notebook views on a real session: several views share one session's windows, the knobs are the
dashboard's state (both ways), the compact compression table, and the status line of background work."""

from __future__ import annotations

from concurrent.futures import Future

import pytest

from workbench.errors import ConfigError
from workbench.ui.state import set_outputs

from .conftest import window


def test_cursor_hands_out_each_window_once_in_order():
    from workbench.ui.notebook import WindowCursor

    cursor = WindowCursor()
    first = [window(i) for i in range(3)]
    assert cursor.take(first) == first
    assert cursor.take(first) == []
    more = [*first, window(3), window(4)]
    assert [w.index for w in cursor.take(more)] == [3, 4]


def test_views_sharing_a_session_each_draw_every_window(session):
    from workbench.ui.notebook import LiveLatencyPlot, NotebookDashboard

    one, two = LiveLatencyPlot(session), LiveLatencyPlot(session)
    dashboard = NotebookDashboard(session)
    views = (one, two, dashboard)
    for view in views:  # what the session's hub closed so far (empty windows: nothing is served)
        view.tick()
    drawn = [one.windows_drawn, two.windows_drawn, len(dashboard.live.plots.source.data["t"])]
    base = 10**6  # after every window the hub closes during this test
    session.feed.recent.extend([window(base), window(base + 1, latencies_ms=(5.0, 6.0)),
                                window(base + 2, latencies_ms=(7.0,))])
    for view in views:  # each pumps the session (as its periodic callback does) and draws what it has not drawn
        view.tick()
    assert one.windows_drawn - drawn[0] == two.windows_drawn - drawn[1] == 3
    assert len(dashboard.live.plots.source.data["t"]) - drawn[2] == 3
    assert one.latency_points == two.latency_points == 2  # the window without answers draws no latency
    session.feed.recent.append(window(base + 3, latencies_ms=(4.0,)))
    one.tick()
    two.tick()
    assert (one.windows_drawn - drawn[0], two.windows_drawn - drawn[1], one.latency_points) == (4, 4, 3)
    assert one.plots.source.data["p99"][-1] == pytest.approx(4.0, rel=0.01)


def test_views_stop_when_their_session_closes(session):
    from workbench.ui.notebook import LiveLatencyPlot

    plot = LiveLatencyPlot(session)
    assert plot._callback is not None
    session.close()
    plot.tick()
    assert plot._callback is None


def test_knobs_are_the_dashboards_state_both_ways(session):
    import panel as pn

    from workbench.ui.notebook import Knobs

    knobs = Knobs(session)
    batch = next(w for w in knobs.__panel__().select(pn.widgets.IntInput) if w.name == "Max batch size")
    rate = next(w for w in knobs.__panel__().select(pn.widgets.FloatInput) if w.name == "Rate (req/s)")
    session.state.serve.max_batch_size = 8
    assert batch.value == 8
    batch.value = 64
    rate.value = 250.0
    assert session.state.serve.max_batch_size == 64 and session.state.load.rate == 250.0


def test_compression_table_is_compact_and_says_when_empty():
    from workbench.ui.notebook import TABLE_COLUMNS, CompressionTable

    assert "No variants yet" in CompressionTable.frame([]).iloc[0, 0]
    row = {"variant": "int8", "runtime": "torch", "accuracy_pct": 97.55555, "accuracy_change_pt": 0.2,
           "speedup_b1": 1.01, "speedup_b32": 4.0, "size_ratio": 3.96, "steps": "quantize dtype=int8",
           "latency_b1_ms": 0.1, "artifact_bytes": 123}
    frame = CompressionTable.frame([row])
    assert tuple(frame.columns) == TABLE_COLUMNS and frame.loc[0, "accuracy_pct"] == 97.556


def test_status_line_follows_the_task_then_tells_the_outcome(session):
    from workbench.ui.statusline import StatusLine

    task = session.state.serve.task
    future: Future = Future()
    line = StatusLine(session, future, [task], lambda: "serving mlp <fp32>")
    assert line.text == "in the background..."
    set_outputs(task, busy=True, task="starting", message="starting 2 worker(s)", progress=40)
    assert line.text == "starting 2 worker(s) (40 %)"
    future.set_result(None)  # the session has no UI attached: the line redraws at once
    assert line.text == "serving mlp <fp32>" and not line.failed
    assert "&lt;fp32&gt;" in line._repr_html_()
    set_outputs(task, message="later")
    assert line.text == "serving mlp <fp32>"  # it stopped watching

    failing: Future = Future()
    bad = StatusLine(session, failing, [task], lambda: "never")
    failing.set_exception(ConfigError("cannot load nope: no such file"))
    assert bad.failed and bad.text == "failed: cannot load nope: no such file"
