"""The param state classes, without a browser: bounds, constant outputs, and the configs they build."""

from __future__ import annotations

import subprocess
import sys

import pytest

from workbench.errors import ConfigError
from workbench.ui.state import (
    FILE_SOURCE,
    ROUTING,
    SCHEDULE_KINDS,
    ZOO_NAMES,
    CompressState,
    LiveState,
    LoadState,
    ModelState,
    RunsState,
    ServeState,
    WorkbenchState,
    set_outputs,
)


def test_choices_match_the_library():
    from workbench.load.schedules import SCHEDULES
    from workbench.models.zoo import DEFAULT_MODEL, ZOO
    from workbench.serving.routing import ROUTERS

    assert set(ZOO_NAMES) == set(ZOO) and DEFAULT_MODEL in ZOO_NAMES
    assert set(ROUTING) == set(ROUTERS)
    assert set(SCHEDULE_KINDS) == set(SCHEDULES)
    assert ServeState.param.routing.default in ROUTERS


def test_sessions_do_not_share_state():
    a, b = WorkbenchState(), WorkbenchState()
    for name in ("model", "compress", "serve", "load", "live", "runs"):
        assert getattr(a, name) is not getattr(b, name)
    assert a.serve.task is not b.serve.task and a.serve.task is not a.model.task
    a.serve.max_batch_size = 7
    assert b.serve.max_batch_size == 32


def test_inputs_are_bounded():
    s = ServeState()
    for name, bad in (("max_batch_size", 0), ("replicas", 0), ("max_delay_ms", -1.0), ("routing", "random")):
        with pytest.raises(ValueError):
            setattr(s, name, bad)
    with pytest.raises(ValueError):
        LoadState(rate=0.0)


def test_outputs_are_constant_and_set_through_set_outputs():
    live = LiveState()
    with pytest.raises(TypeError):
        live.p99_ms = 3.0
    seen = []
    live.param.watch(lambda *events: seen.append(sorted((e.name, e.new) for e in events)), ["p99_ms", "rps"])
    set_outputs(live, p99_ms=3.0, rps=120.0)
    assert (live.p99_ms, live.rps) == (3.0, 120.0)
    assert seen == [[("p99_ms", 3.0), ("rps", 120.0)]]  # one batch: the watcher fires once


def test_serve_state_builds_the_serve_config_and_tracks_pending_changes():
    s = ServeState(replicas=2, max_batch_size=16, max_delay_ms=1.5, routing="round_robin", max_queue=64, stages=1)
    config = s.to_config()
    assert (config.placement.replicas, config.batching.max_batch_size, config.batching.max_delay_ms) == (2, 16, 1.5)
    assert (config.routing, config.admission.max_queue) == ("round_robin", 64)
    assert s.pending() == {}  # nothing applied yet: nothing pending
    s.show_config(config)
    assert s.applied["max_batch_size"] == 16 and s.pending() == {}
    s.max_batch_size = 8
    s.routing = "power_of_two"
    assert s.pending() == {"max_batch_size": [16, 8], "routing": ["round_robin", "power_of_two"]}
    s.show_config(config.replace(max_batch_size=4))
    assert s.max_batch_size == 4 and s.routing == "round_robin" and s.pending() == {}


def test_load_state_builds_every_schedule():
    from workbench.load.schedules import Closed, Constant, Poisson, Ramp, Spike, Step

    s = LoadState(rate=50.0, step_rates="10, 20/40", step_s=2.0, end_rate=90.0, ramp_s=5.0, spike_rate=500.0,
                  spike_at_s=1.0, spike_length_s=0.5, concurrency=3)
    built = {}
    for kind in SCHEDULE_KINDS:
        s.schedule = kind
        built[kind] = s.to_schedule()
    assert built["constant"] == Constant(rate=50.0)
    assert built["poisson"] == Poisson(rate=50.0)
    assert built["step"] == Step(rates=(10.0, 20.0, 40.0), step_s=2.0)
    assert built["ramp"] == Ramp(start_rate=50.0, end_rate=90.0, ramp_s=5.0)
    assert built["spike"] == Spike(base_rate=50.0, spike_rate=500.0, at_s=1.0, length_s=0.5)
    assert built["closed"] == Closed(concurrency=3)


def test_load_state_refuses_bad_step_rates():
    s = LoadState(schedule="step", step_rates="100, lots")
    with pytest.raises(ConfigError, match="step rates must be numbers"):
        s.to_schedule()
    s.step_rates = ""
    with pytest.raises(ConfigError, match="at least one rate"):
        s.to_schedule()


def test_compress_state_orders_steps_and_refuses_empty_or_conflicting_choices():
    from workbench.compression.config import DistillConfig, OnnxConfig, PruneConfig, QuantizeConfig

    c = CompressState(prune=True, sparsity=0.25, distill=True, student_width=0.5, distill_epochs=3, quantize=True,
                      quantize_dtype="bf16")
    assert c.steps() == [PruneConfig(method="structured", sparsity=0.25), DistillConfig(student_width=0.5, epochs=3),
                         QuantizeConfig(dtype="bf16")]
    c.param.update(prune=False, distill=False, quantize=False, onnx=True, onnx_quantize="dynamic")
    assert c.steps() == [OnnxConfig(quantize="dynamic")]
    c.quantize = True
    with pytest.raises(ConfigError, match="not both"):
        c.steps()
    c.param.update(quantize=False, onnx=False)
    with pytest.raises(ConfigError, match="at least one method"):
        c.steps()
    c.param.update(quantize=True, quantize_dtype="bf16", quantize_runtime="onnx")
    with pytest.raises(ConfigError, match="int8"):  # the compression package's own check
        c.steps()


def test_new_variants_become_servable_choices():
    c = CompressState()
    c.add_variant("int8", [{"variant": "fp32"}, {"variant": "int8"}])
    assert c.variants == ["int8"] and c.param.serve_variant.objects == ["original", "int8"]
    c.serve_variant = "int8"
    with pytest.raises(ValueError):
        c.serve_variant = "bf16"


def test_model_state_needs_a_path_for_a_file_source():
    m = ModelState()
    assert m.source_spec() == "mlp" and not m.loaded
    m.source = FILE_SOURCE
    with pytest.raises(ConfigError, match="choose a model file"):
        m.source_spec()
    m.file_path = " /tmp/model.pt2 "
    assert m.source_spec() == "/tmp/model.pt2"


def test_runs_state_picks_two_runs_to_compare():
    r = RunsState()
    r.set_runs(["new", "old"])
    assert (r.run_a, r.run_b) == ("old", "new")
    r.run_a = "new"
    r.set_runs(["newest", "new", "old"])
    assert (r.run_a, r.run_b) == ("new", "new")  # a choice still on disk stays
    r.set_runs([])
    assert (r.run_a, r.run_b) == (None, None)


def test_importing_the_ui_package_loads_neither_panel_nor_bokeh():
    code = ("import sys, workbench.ui, workbench.ui.state, workbench.ui.session\n"
            "print(','.join(m for m in ('panel', 'bokeh', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == ""
