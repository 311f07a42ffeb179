"""The page without a browser: widgets edit the shared state, and ticks move windows into the plots."""

from __future__ import annotations

import panel as pn
import pytest

from workbench.ui.state import set_outputs

from .conftest import make_window


@pytest.fixture
def app(session):
    from workbench.ui.app import WorkbenchApp, configure

    configure()
    a = WorkbenchApp(session)
    try:
        yield a
    finally:
        a.stop()


def _widgets(app, cls, css):
    return [w for w in app.__panel__().select(cls) if css in w.css_classes]


def test_widgets_and_state_move_together(app):
    serve = app.session.state.serve
    inputs = _widgets(app, pn.widgets.IntInput, "wb-max-batch-size")
    assert len(inputs) == 2  # the Serve section and the Live section's tuning column
    inputs[0].value = 8
    assert serve.max_batch_size == 8 and inputs[1].value == 8
    serve.max_delay_ms = 4.5
    assert all(w.value == 4.5 for w in _widgets(app, pn.widgets.FloatInput, "wb-max-delay-ms"))


def test_apply_is_enabled_only_when_a_served_setting_changed(app):
    serve = app.session.state.serve
    apply_buttons = [w for w in app.__panel__().select(pn.widgets.Button) if "wb-apply" in w.css_classes]
    assert apply_buttons and all(b.disabled for b in apply_buttons)
    set_outputs(serve, status="serving", model="mlp", variant="fp32")
    serve.show_config(serve.to_config())
    assert all(b.disabled for b in apply_buttons)
    serve.max_batch_size = 4
    assert not any(b.disabled for b in apply_buttons)
    pending = [p for p in app.__panel__().select(pn.pane.Markdown) if "wb-pending" in p.css_classes]
    assert "max_batch_size 32 → 4" in pending[0].object


def test_a_refused_click_shows_why_in_the_section(app):
    load_button = [w for w in app.__panel__().select(pn.widgets.Button) if "wb-start-serving" in w.css_classes][0]
    load_button.clicks += 1  # start serving with no model loaded
    assert "load a model first" in app.session.state.serve.task.error


def test_a_tick_applies_background_updates_and_streams_windows(app):
    session = app.session
    session.hub.close(flush=False)  # only the windows made here reach the feed from now on
    app.tick()
    drawn = len(app.live.plots.source.data["t"])
    session.updates.post(lambda: set_outputs(session.state.load, status="from a thread"))
    assert session.state.load.status == "idle"  # attached: waits for the UI thread
    session.feed._queue.put(make_window(1000, latencies_ms=[2.0] * 50, changes=[{"at_s": 500.2, "description": "x"}]))
    app.tick()
    assert session.state.load.status == "from a thread"
    assert app.live.plots.source.data["t"][drawn:] == [500.5] and app.live.plots.changes.data["text"] == ["x"]
    assert session.state.live.p99_ms == pytest.approx(2.0, rel=0.01)
    session.feed._queue.put(make_window(1001, latencies_ms=[3.0] * 50))
    session.pump()  # someone else (a notebook view of the same session) drained the feed
    app.tick()
    assert app.live.plots.source.data["t"][drawn:] == [500.5, 501.0]  # drawn anyway, once


def test_tabs_follow_the_section_state(app):
    state = app.session.state
    state.section = "Live"
    assert app.tabs.active == 4
    app.tabs.active = 1
    assert state.section == "Compress"


def test_runs_picked_for_comparison_survive_the_widgets(app):
    runs = app.session.state.runs
    runs.set_runs(["20261124-120000-bbbbbb", "20261124-110000-aaaaaa"])
    assert (runs.run_a, runs.run_b) == ("20261124-110000-aaaaaa", "20261124-120000-bbbbbb")
    tables = [p for p in app.__panel__().select(pn.pane.DataFrame) if "wb-run-compare" in p.css_classes]
    assert "no run" in tables[0].object.iloc[0, 0]  # folders missing on disk: said, not raised
