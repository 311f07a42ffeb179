"""How long each segment of an "until stopped" load lasts (the segments themselves: test_session.py)."""

from __future__ import annotations

from workbench.load.schedules import Closed, Constant, Poisson, Step
from workbench.ui.runner import SEGMENT_ARRIVALS, segment_s


def test_segments_hold_a_bounded_number_of_requests():
    assert segment_s(Poisson(rate=100.0)) == SEGMENT_ARRIVALS / 100.0  # 50 minutes at 100 req/s
    assert segment_s(Constant(rate=10_000.0)) == 60.0  # never shorter than a minute
    assert segment_s(Constant(rate=1.0)) == 3600.0  # never longer than an hour
    assert segment_s(Step(rates=(100.0, 1000.0), step_s=30.0)) == SEGMENT_ARRIVALS / Step(
        rates=(100.0, 1000.0), step_s=30.0).mean_rate(60.0)
    assert segment_s(Closed(concurrency=8)) == 3600.0
