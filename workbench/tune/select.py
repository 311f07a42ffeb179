"""Which trial is best, and the single number the search maximises.

Fixed rate: a trial meets the objective when its p99 is within the bound and (nearly) every request was
answered (the server kept up with the rate). Its score is ``-p99_ms`` (higher is better). The best is the
meeting config with the lowest p99; among the configs within 10% of that p99 (the noise of a short run),
the one with the fewest cores. Highest rate: the score is the highest rate that kept p99 within the
bound; the best is the config with the highest score.

A config measured twice (screened, then confirmed with a longer run) counts by its latest measurement.
"""

from __future__ import annotations

from collections.abc import Sequence

from workbench.tune.space import config_key
from workbench.tune.trial import Objective, Trial

#: configs whose p99 is within this factor of the lowest count as equally fast (then fewer cores win)
NOISE = 1.10


def latest_per_config(trials: Sequence[Trial]) -> list[Trial]:
    """The latest trial of each config (a confirmation replaces the screening of the same config)."""
    latest: dict[tuple, Trial] = {}
    for t in sorted(trials, key=lambda t: t.number):
        latest[config_key({**t.config, "variant": t.variant})] = t
    return list(latest.values())


def select_best(objective: Objective, trials: Sequence[Trial]) -> Trial | None:
    """The best trial that meets the objective, or None."""
    meeting = [t for t in latest_per_config(trials) if t.meets and t.score is not None]
    if not meeting:
        return None
    if objective.max_rate:
        return max(meeting, key=lambda t: (t.score, -t.cores, -t.number))
    fastest = min(t.p99_ms for t in meeting if t.p99_ms is not None)
    close = [t for t in meeting if t.p99_ms is not None and t.p99_ms <= fastest * NOISE]
    return min(close, key=lambda t: (t.cores, t.p99_ms, t.number))


def closest(objective: Objective, trials: Sequence[Trial]) -> Trial | None:
    """When nothing met the objective: the trial that came closest (lowest p99 that kept up, or the
    highest rate measured, or the lowest p99 at all)."""
    measured = [t for t in latest_per_config(trials) if t.p99_ms is not None]
    if not measured:
        return None
    if objective.max_rate:
        return min(measured, key=lambda t: (t.p99_ms, -t.rate))
    kept_up = [t for t in measured if t.extra.get("kept_up")]
    return min(kept_up or measured, key=lambda t: t.p99_ms or float("inf"))


__all__ = ["NOISE", "closest", "latest_per_config", "select_best"]
