"""The tuner against real servers under real load (the zoo mlp over HTTP), with short budgets."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from workbench.errors import ConfigError
from workbench.serving.config import ServeConfig
from workbench.serving.server import Server
from workbench.telemetry.runs import RunRecord
from workbench.testing import wait_for
from workbench.tune import Objective, SearchSpace, Trial, Tuner, TuneResult, tune

#: a tiny space: one worker layout, two batch sizes (+ replicas=2, which a 1-core budget prunes)
SPACE = SearchSpace(replicas=(1, 2), max_batch_size=(1, 8), max_delay_ms=(0.0,), routing=("least_outstanding",))


@pytest.fixture(scope="module")
def reachable(zoo_mlp, tmp_path_factory):
    """A tune whose objective the mlp meets easily, watched by a subscriber."""
    runs = tmp_path_factory.mktemp("runs")
    tuner = Tuner(zoo_mlp, Objective(p99_ms=1000, rate=50), space=SPACE, budget_s=6, runs_dir=runs, cores=1,
                  screen_s=1.0, confirm_s=1.5)
    seen: list[Trial] = []
    done: list[TuneResult] = []
    tuner.subscribe(seen.append, on_done=done.append)
    result = tuner.run()
    return tuner, result, seen, done, runs


def test_reachable_objective_is_met(reachable):
    tuner, result, *_ = reachable
    assert result.met and result.best is not None
    assert result.best.meets and result.best.p99_ms <= 1000 and result.best.throughput > 25
    assert result.message.startswith("Met p99 <= 1000 ms at 50 req/s: best is trial")
    assert tuner.done and tuner.progress == 1.0 and tuner.best == result.best
    assert result.serve_config.batching.max_batch_size == result.best.config["max_batch_size"]
    assert result.explanation and all(isinstance(line, str) for line in result.explanation)


def test_configs_beyond_the_cores_are_pruned_not_measured(reachable):
    _, result, *_ = reachable
    assert all(t.config["replicas"] == 1 for t in result.trials)
    assert result.pruned == ["2 config(s) needs more than the 1 core(s) available (replicas × stages × threads_per_worker)"]
    assert "2 configs pruned" in result.message


def test_subscribers_get_every_trial_in_order_then_the_result(reachable):
    tuner, result, seen, done, _ = reachable
    assert [t.number for t in seen] == list(range(len(seen))) and seen == tuner.trials == result.trials
    assert done == [result]
    phases = [t.extra["phase"] for t in seen]
    assert "confirm" in phases and phases.index("confirm") > phases.index("screen")
    frame = result.to_frame()
    assert len(frame) == len(seen) and {"p99_ms", "max_batch_size", "variant", "phase"} <= set(frame.columns)


def test_each_trial_saved_a_run_record(reachable):
    _, result, _, _, runs = reachable
    for trial in result.trials:
        record = RunRecord.load(trial.run_id, directory=runs)
        assert record.summary["latency_p99_ms"] == trial.p99_ms
        assert record.context["tuner"]["config"]["max_batch_size"] == trial.config["max_batch_size"]


def test_the_yaml_serves(reachable, zoo_mlp, tmp_path):
    _, result, *_ = reachable
    path = result.save(tmp_path / "best.yaml")
    assert "# workbench tune: model mlp, objective p99 <= 1000 ms at 50 req/s" in path.read_text()
    config = ServeConfig.from_yaml(path)
    assert config == result.serve_config
    with Server(models={"mlp": zoo_mlp}, config=config) as server:
        out = server.infer("mlp", zoo_mlp.example[:2])
    assert out.shape == (2, 10)
    from workbench.backends.ray.options import RayOptions, deployment_options, replica_settings

    options = deployment_options(config, RayOptions(), stage=0, settings=replica_settings(config))
    assert options["num_replicas"] == config.placement.replicas


def test_unreachable_objective_says_so_and_stops_violating_runs_early(zoo_mlp, tmp_path, no_leftover_processes):
    result = tune(zoo_mlp, Objective(p99_ms=0.01, rate=200), budget_s=5, runs_dir=tmp_path,
                  space=SearchSpace(replicas=(1,), max_batch_size=(1, 8), max_delay_ms=(0.0,), routing=("round_robin",)),
                  screen_s=2.0)
    assert not result.met and result.best is None
    assert result.message.startswith("Unreachable: no config met p99 <= 0.01 ms at 200 req/s in this search space; "
                                     "closest: trial")
    early = [t for t in result.trials if t.stopped_early]
    assert early and all("took over 2× the 0.01 ms bound" in t.reason for t in early)
    summary = RunRecord.load(early[0].run_id, directory=tmp_path).summary
    assert summary["stopped_early"] and summary["elapsed_s"] < 2.0


def test_accuracy_floor_excludes_the_less_accurate_variant(zoo_mlp, noisy_mlp, tmp_path):
    floor = (zoo_mlp.evaluate() + noisy_mlp.evaluate()) / 2
    result = tune(zoo_mlp, Objective(p99_ms=1000, rate=50, min_accuracy=floor), variants={"noisy": noisy_mlp},
                  space=SearchSpace(replicas=(1,), max_batch_size=(8,), max_delay_ms=(0.0,), routing=("round_robin",)),
                  budget_s=2, runs_dir=tmp_path, screen_s=1.0)
    assert set(result.excluded) == {"noisy"} and "under the floor" in result.excluded["noisy"]
    assert "excluded by the accuracy floor: noisy (accuracy" in result.message
    assert result.trials and all(t.variant == "original" for t in result.trials)
    assert result.trials[0].accuracy == pytest.approx(zoo_mlp.evaluate())

    with pytest.raises(ConfigError, match="no variant meets the accuracy floor"):
        tune(zoo_mlp, Objective(p99_ms=1000, rate=50, min_accuracy=0.999), budget_s=2, runs_dir=tmp_path)


def test_a_variant_best_is_saved_next_to_the_yaml_and_serves(zoo_mlp, noisy_mlp, tmp_path):
    result = tune(zoo_mlp, Objective(p99_ms=1000, rate=50), variants={"noisy": noisy_mlp},
                  space=SearchSpace(replicas=(1,), max_batch_size=(8,), max_delay_ms=(0.0,), routing=("round_robin",),
                                    variants=("noisy",)),
                  budget_s=2, runs_dir=tmp_path, screen_s=1.0)
    assert result.met and result.best.variant == "noisy" and "serve variant 'noisy'" in result.message
    path = result.save(tmp_path / "out.yaml")
    assert "# variant: noisy" in path.read_text()
    folder = tmp_path / "out.variant"
    x = zoo_mlp.example[:4]
    with Server(models={"mlp": str(folder)}, config=ServeConfig.from_yaml(path)) as server:
        assert server.model_info("mlp")["variant"] == "noisy"
        np.testing.assert_allclose(server.infer("mlp", x), noisy_mlp.predict(x), rtol=1e-4, atol=1e-4)


def test_stop_from_another_thread_ends_promptly_and_closes_everything(zoo_mlp, tmp_path, no_leftover_processes):
    tuner = Tuner(zoo_mlp, Objective(p99_ms=50, rate=100), budget_s=600, runs_dir=tmp_path, screen_s=3.0)
    first = threading.Event()
    results: list[TuneResult] = []
    tuner.subscribe(lambda trial: first.set(), on_done=results.append)
    tuner.start()
    assert first.wait(60), "no trial finished"
    wait_for(lambda: tuner._bench is not None and tuner._bench._run is not None, timeout_s=30,
             message="the next trial's load run")
    stopper = threading.Thread(target=tuner.stop, kwargs={"timeout_s": 15})
    stopper.start()
    stopper.join(20)
    assert tuner.done and not stopper.is_alive()
    assert results and results[0].stopped and results[0].message.startswith("Stopped early.")
    assert tuner.progress == 1.0 and tuner.result is results[0]
    assert not no_leftover_processes()


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"objective": {"p99_ms": 20}}, "objective must be an Objective"),
    ({"budget_s": 0}, "budget_s must be seconds of measurement > 0"),
    ({"space": {"replicas": []}}, "must list at least one value"),
    ({"space": {"turbo": [1]}}, "unknown knob(s) ['turbo']"),
    ({"space": SearchSpace(variants=("int8",))}, "names variant(s) ['int8'] the tuner was not given"),
    ({"variants": {"original": "mlp"}}, "other than 'original'"),
])
def test_bad_input_is_refused_up_front(kwargs, words):
    args = {"objective": Objective(p99_ms=20, rate=100), **kwargs}
    with pytest.raises(ConfigError) as err:
        Tuner("mlp", args.pop("objective"), **args)
    assert words in str(err.value)
    with pytest.raises(ConfigError, match="p99_ms must be a number > 0"):
        Objective(p99_ms=0, rate=100)
