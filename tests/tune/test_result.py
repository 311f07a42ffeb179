"""Choosing the best trial, the verdict in words, and which knobs mattered (on hand-made trials)."""

from __future__ import annotations

from workbench.tune.explain import explain
from workbench.tune.result import TuneResult
from workbench.tune.select import select_best
from workbench.tune.trial import Objective, Trial


def _trial(n, *, p99, meets, batch=8, replicas=1, rate=100.0, phase="screen", value=None, variant="original"):
    config = {"replicas": replicas, "stages": 1, "threads_per_worker": 1, "max_batch_size": batch,
              "max_delay_ms": 0.0, "routing": "round_robin"}
    return Trial(number=n, config=config, variant=variant, rate=rate, p99_ms=p99, meets=meets, cores=replicas,
                 score=(rate if value is None else value) if meets else None, throughput=rate,
                 extra={"phase": phase, "value": value if value is not None else -p99, "kept_up": True})


def test_fixed_rate_best_is_lowest_p99_then_fewest_cores_within_noise():
    obj = Objective(p99_ms=20, rate=100)
    trials = [_trial(0, p99=5.0, meets=True, replicas=2), _trial(1, p99=5.3, meets=True, replicas=1, batch=1),
              _trial(2, p99=30.0, meets=False, batch=32)]
    for t in trials:
        object.__setattr__(t, "score", -t.p99_ms if t.meets else None)
    assert select_best(obj, trials).number == 1  # 5.3 ms is within 10% of 5.0 ms, on one core instead of two


def test_a_confirmation_replaces_the_screening_of_the_same_config():
    obj = Objective(p99_ms=20, rate=100)
    trials = [_trial(0, p99=4.0, meets=True), _trial(1, p99=6.0, meets=True, batch=1),
              _trial(2, p99=25.0, meets=False, phase="confirm")]  # config of trial 0, measured longer
    for t in trials:
        object.__setattr__(t, "score", -t.p99_ms if t.meets else None)
    assert select_best(obj, trials).number == 1


def test_unreachable_verdict_names_the_closest():
    obj = Objective(p99_ms=1, rate=100)
    trials = [_trial(0, p99=4.0, meets=False), _trial(1, p99=3.0, meets=False, batch=1)]
    result = TuneResult.build(obj, trials, prepared=None, spent_s=10, budget_s=10, stopped=False)
    assert not result.met and result.best is None and result.closest.number == 1
    assert result.message.startswith("Unreachable: no config met p99 <= 1 ms at 100 req/s in this search space; "
                                     "closest: trial 1 (replicas=1, stages=1, threads_per_worker=1, max_batch_size=1")
    assert "does NOT meet" in result.to_yaml()


def test_explanation_ranks_knobs_by_effect():
    obj = Objective(p99_ms=20)
    trials = [_trial(0, p99=5, meets=True, batch=1, value=300.0), _trial(1, p99=5, meets=True, batch=32, value=930.0),
              _trial(2, p99=5, meets=True, batch=1, replicas=2, value=310.0),
              _trial(3, p99=5, meets=True, batch=32, replicas=2, value=950.0)]
    lines = explain(obj, trials)
    assert lines[0] == "max_batch_size mattered most: 32 vs 1 raised the rate 3.1× (median 940 vs 305 req/s)"
    assert lines[1].startswith("replicas hardly mattered")
