"""Routing policies: which replica gets the next batch.

A policy is one method, ``choose(candidates, request)``: ``candidates`` is a non-empty sequence of
replicas that can take work now, each with an ``outstanding`` count (requests it holds in flight);
``request`` is what is being routed (a batch; policies here do not look at it). Policies are plain
objects with no I/O, so they are tested alone; :data:`ROUTERS` maps each name to its class.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar


class Candidate(Protocol):
    @property
    def outstanding(self) -> int: ...


C = TypeVar("C", bound=Candidate)


class Router(Protocol):
    def choose(self, candidates: Sequence[C], request: Any) -> C: ...


class RoundRobin:
    """Round robin: a counter advances by one on every choice and picks ``candidates[counter % n]``.

    With a stable candidate list every replica gets every n-th batch regardless of its load.
    """

    name = "round_robin"

    def __init__(self, seed: int | None = None):
        self._next = 0

    def choose(self, candidates: Sequence[C], request: Any) -> C:
        choice = candidates[self._next % len(candidates)]
        self._next += 1
        return choice


class LeastOutstanding:
    """Least outstanding requests: pick the candidate with the fewest requests in flight.

    Ties are broken by rotating the starting point on each call, so equally loaded replicas share
    the work instead of the first one taking it all.
    """

    name = "least_outstanding"

    def __init__(self, seed: int | None = None):
        self._start = 0

    def choose(self, candidates: Sequence[C], request: Any) -> C:
        n = len(candidates)
        self._start = (self._start + 1) % n
        best = candidates[self._start]
        for i in range(1, n):
            c = candidates[(self._start + i) % n]
            if c.outstanding < best.outstanding:
                best = c
        return best


class PowerOfTwo:
    """Power of two choices: draw two distinct candidates uniformly at random and pick the one with
    fewer requests in flight (the first drawn on a tie). With one candidate, pick it.

    Nearly as balanced as least outstanding while looking at only two replicas per choice.
    """

    name = "power_of_two"

    def __init__(self, seed: int | None = None):
        self._rng = random.Random(seed)

    def choose(self, candidates: Sequence[C], request: Any) -> C:
        n = len(candidates)
        if n == 1:
            return candidates[0]
        i, j = self._rng.sample(range(n), 2)
        a, b = candidates[i], candidates[j]
        return b if b.outstanding < a.outstanding else a


ROUTERS: dict[str, type] = {cls.name: cls for cls in (RoundRobin, LeastOutstanding, PowerOfTwo)}


def make_router(name: str, seed: int | None = None) -> Any:
    """A new router of the named policy."""
    from workbench.errors import ConfigError

    try:
        return ROUTERS[name](seed=seed)
    except KeyError:
        raise ConfigError(f"unknown routing policy {name!r}; allowed: {sorted(ROUTERS)}") from None


__all__ = ["ROUTERS", "LeastOutstanding", "PowerOfTwo", "RoundRobin", "Router", "make_router"]
