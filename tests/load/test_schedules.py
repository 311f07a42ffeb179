"""Schedules: intended send times, rates, splitting over processes, dict round trips, the CLI form."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import ConfigError
from workbench.load.schedules import (
    SCHEDULES,
    Closed,
    Constant,
    Poisson,
    Ramp,
    Spike,
    Step,
    parse_schedule,
    schedule_from_dict,
)

EXAMPLES = [
    Constant(rate=200),
    Poisson(rate=200, seed=3),
    Step(rates=(100, 200, 400), step_s=2),
    Ramp(start_rate=0, end_rate=400),
    Ramp(start_rate=100, end_rate=50, ramp_s=4, poisson=True, seed=1),
    Spike(base_rate=100, spike_rate=1000, at_s=3, length_s=1),
    Closed(concurrency=8, think_ms=5),
]


@pytest.mark.parametrize("schedule", EXAMPLES, ids=lambda s: s.kind)
def test_every_schedule_round_trips_through_a_plain_dict(schedule):
    data = schedule.to_dict()
    assert data["kind"] == schedule.kind and set(SCHEDULES) >= {data["kind"]}
    assert schedule_from_dict(data) == schedule
    assert type(schedule).from_dict(data) == schedule
    assert repr(schedule).startswith(type(schedule).__name__ + "(")


def test_constant_rate_is_evenly_spaced_and_ends_before_the_duration():
    times = Constant(rate=200).arrivals(10)
    assert len(times) == 2000 and times[0] == 0 and times[-1] < 10
    np.testing.assert_allclose(np.diff(times), 0.005)


def test_poisson_arrivals_have_the_rate_exponential_gaps_and_repeat_with_the_seed():
    times = Poisson(rate=500, seed=1).arrivals(20)
    gaps = np.diff(times)
    assert len(times) == pytest.approx(10_000, rel=0.03)
    assert gaps.mean() == pytest.approx(1 / 500, rel=0.03)
    assert gaps.std() == pytest.approx(gaps.mean(), rel=0.05)  # exponential: std == mean
    np.testing.assert_array_equal(times, Poisson(rate=500, seed=1).arrivals(20))
    assert not np.array_equal(times[:100], Poisson(rate=500, seed=2).arrivals(20)[:100])


def test_step_ramp_and_spike_follow_their_rate():
    step = Step(rates=(100, 200, 400), step_s=2).arrivals(8)
    assert [int(((step >= a) & (step < a + 2)).sum()) for a in (0, 2, 4, 6)] == [200, 400, 800, 800]
    ramp = Ramp(start_rate=0, end_rate=400).arrivals(10)
    assert len(ramp) == pytest.approx(2000, abs=1)
    assert ((ramp >= 5) & (ramp < 6)).sum() == pytest.approx(220, abs=2)  # mean rate 220 in that second
    spike = Spike(base_rate=100, spike_rate=1000, at_s=3, length_s=1).arrivals(10)
    assert ((spike >= 3) & (spike < 4)).sum() == pytest.approx(1000, abs=1)
    assert ((spike >= 0) & (spike < 3)).sum() == pytest.approx(300, abs=1)
    assert Spike(base_rate=100, spike_rate=1000, at_s=3, length_s=1).mean_rate(10) == pytest.approx(190)


@pytest.mark.parametrize("schedule", [s for s in EXAMPLES if s.open_loop], ids=lambda s: s.kind)
def test_parts_split_the_schedule_exactly(schedule):
    whole = schedule.arrivals(6)
    parts = [schedule.arrivals(6, part=i, parts=3) for i in range(3)]
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), whole)


def test_closed_loop_splits_clients_over_processes():
    assert Closed(concurrency=7).split(3) == [3, 2, 2]
    with pytest.raises(ConfigError, match="processes <= concurrency"):
        Closed(concurrency=2).split(3)


@pytest.mark.parametrize("text,expected", [
    ("constant:200", Constant(rate=200)),
    ("poisson:200,seed=4", Poisson(rate=200, seed=4)),
    ("step:100/200/400,2", Step(rates=(100, 200, 400), step_s=2)),
    ("step:rates=100/200,step_s=1.5,poisson=true", Step(rates=(100, 200), step_s=1.5, poisson=True)),
    ("ramp:50,500", Ramp(start_rate=50, end_rate=500)),
    ("spike:100,1000,at_s=3,length_s=1", Spike(base_rate=100, spike_rate=1000, at_s=3, length_s=1)),
    ("CLOSED:8", Closed(concurrency=8)),
])
def test_parse_the_command_line_form(text, expected):
    assert parse_schedule(text) == expected


@pytest.mark.parametrize("text,message", [
    ("foo:1", "unknown schedule 'foo'"),
    ("constant:-1", "rate must be > 0"),
    ("constant:x", "'x' is not a number"),
    ("constant:1,2", "too many values"),
    ("constant:rate=1,burst=2", r"unknown field\(s\) \['burst'\]"),
    ("ramp:0,0", "cannot both be 0"),
    ("closed:1.5", "concurrency must be an integer"),
    ("closed:0", "concurrency must be an integer between 1"),
    ("step:rates=100,step_s=0", "step_s must be > 0"),
    ("spike:100,1000", "missing"),
])
def test_bad_schedules_say_what_is_wrong(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_schedule(text)


def test_too_many_requests_are_refused():
    with pytest.raises(ConfigError, match="at most"):
        Constant(rate=1_000_000).arrivals(3600)
