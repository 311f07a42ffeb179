"""The Tune section: its state turns into the tuner's objective and search space, and its buttons run a
real tuner (worker processes, HTTP, load runs) off the UI thread, whose trials reach the dashboard's
view on the UI thread's tick; live load is refused while it measures, and closing the session stops it."""

from __future__ import annotations

import panel as pn
import psutil
import pytest

from workbench.errors import ConfigError
from workbench.testing import wait_for


def test_the_state_gives_the_objective():
    from workbench.ui.tuning import TuneState

    t = TuneState(p99_ms=15, goal="fixed rate", rate=250)
    objective = t.to_objective()
    assert (objective.p99_ms, objective.rate, objective.min_accuracy) == (15, 250, None)
    t.param.update(goal="highest rate", min_accuracy=0.95)
    objective = t.to_objective()
    assert objective.max_rate and objective.min_accuracy == 0.95


def test_knobs_not_searched_keep_the_serve_sections_values():
    from workbench.tune.space import SearchSpace
    from workbench.ui.state import ServeState
    from workbench.ui.tuning import TuneState

    serve = ServeState(replicas=2, max_delay_ms=4.0, routing="round_robin")
    space = TuneState(knobs=["max_batch_size"]).to_space(serve, "int8")
    assert space.max_batch_size == SearchSpace().max_batch_size  # searched: the tuner's values
    assert (space.replicas, space.max_delay_ms, space.routing, space.variants) == ((2,), (4.0,), ("round_robin",),
                                                                                 ("int8",))
    assert TuneState(knobs=["variant"]).to_space(serve).variants == ()  # every variant the session has
    with pytest.raises(ConfigError, match="choose at least one knob"):
        TuneState(knobs=[]).to_space(serve)


def test_tuning_needs_a_model_and_says_so(session):
    with pytest.raises(ConfigError, match="load a model first"):
        session.tuning.start()
    with pytest.raises(ConfigError, match="not running"):
        session.tuning.stop()


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)
            if "resource_tracker" not in " ".join(p.cmdline() or [])}


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_the_tune_buttons_run_a_tuner_whose_trials_reach_the_page(session, zoo_mlp):
    from workbench.ui.app import WorkbenchApp, configure

    configure()
    app = WorkbenchApp(session)
    app.stop()  # the test plays the UI thread: app.tick()
    before = _children()
    session.load_model("mlp").result(300)
    t = session.tuning.state
    t.param.update(p99_ms=50.0, goal="fixed rate", rate=100.0, budget_s=6.0, knobs=["max_batch_size"])
    start = [b for b in app.__panel__().select(pn.widgets.Button) if "wb-start-tuning" in b.css_classes][0]
    start.clicks += 1
    assert t.task.error == "" and session.tuning.running
    view = app.tune.view

    def ticked(condition):
        def check():
            app.tick()
            return condition()
        return check

    wait_for(ticked(lambda: view.trials), 120, interval_s=0.1, message="a first trial on the page")
    with pytest.raises(ConfigError, match="tuner is measuring"):
        session.start_load()
    wait_for(ticked(lambda: view.result is not None and not session.tuning.running), 180, interval_s=0.1,
             message="the tuner's result on the page")
    tuner = session.tuning.tuner
    assert tuner.done and [tr.number for tr in view.trials] == [tr.number for tr in tuner.trials]
    assert view.plot.source.data["number"] == [tr.number for tr in tuner.trials]
    assert set(view.plot.source.data["variant"]) == {"original"}
    assert {tr.config["max_batch_size"] for tr in tuner.trials} <= {1, 8, 32}
    assert view.plot.p99_line.location == 50.0 and view.plot.rate_line.location == 100.0
    assert t.message == tuner.result.message and tuner.result.message in view.status.object
    if tuner.result.best is not None:
        assert view.plot.best.data["number"] == [tuner.result.best.number]
        assert "max_batch_size" in view.yaml and view.download.visible
    assert wait_for(lambda: _children() <= before, 30, message="the tuner's workers gone")

    # closing the session (what the dashboard does when its browser session ends) stops a running tuner
    t.budget_s = 120.0
    session.tuning.start()
    wait_for(lambda: session.tuning.tuner is not None and session.tuning.tuner is not tuner, 30)
    session.close(timeout_s=30)
    assert session.tuning.tuner.done and not session.tuning.running
    assert wait_for(lambda: _children() <= before, 30, message="the tuner's workers gone")
