"""Routing policies as plain units."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest

from workbench.errors import ConfigError
from workbench.serving.routing import ROUTERS, LeastOutstanding, PowerOfTwo, RoundRobin, make_router


@dataclass
class Rep:
    name: str
    outstanding: int = 0


def test_round_robin_cycles_through_candidates():
    reps = [Rep("a"), Rep("b"), Rep("c")]
    router = RoundRobin()
    picks = [router.choose(reps, None).name for _ in range(6)]
    assert picks == ["a", "b", "c", "a", "b", "c"]


def test_least_outstanding_picks_the_least_loaded_and_spreads_ties():
    router = LeastOutstanding()
    reps = [Rep("a", 3), Rep("b", 1), Rep("c", 2)]
    assert all(router.choose(reps, None).name == "b" for _ in range(5))
    tied = [Rep("a"), Rep("b")]
    assert {router.choose(tied, None).name for _ in range(4)} == {"a", "b"}


def test_power_of_two_picks_the_less_loaded_of_two_random_candidates():
    router = PowerOfTwo(seed=1)
    reps = [Rep("idle", 0), Rep("busy1", 10), Rep("busy2", 10), Rep("busy3", 10)]
    counts = Counter(router.choose(reps, None).name for _ in range(400))
    # "idle" wins every draw it is in: P(drawn among 2 of 4) = 1/2
    assert 150 < counts["idle"] < 250
    assert sum(counts.values()) == 400
    two = [Rep("x", 5), Rep("y", 1)]
    assert all(router.choose(two, None).name == "y" for _ in range(20))  # with 2, it always compares both
    assert router.choose([Rep("only", 9)], None).name == "only"


def test_registry_builds_each_policy_by_name():
    assert set(ROUTERS) == {"round_robin", "least_outstanding", "power_of_two"}
    for name, cls in ROUTERS.items():
        assert isinstance(make_router(name), cls)
    with pytest.raises(ConfigError, match="unknown routing policy 'fastest'"):
        make_router("fastest")
