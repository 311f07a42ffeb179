"""The order in which configs are screened: a covering initial design, then optuna's TPE sampler.

``Search(configs, knobs, seed=0)``: ``next()`` proposes an unmeasured feasible config (or ``None`` once
every config was measured), ``tell(config, value)`` reports what it scored (higher is better). The
initial design takes a few configs so that every value of every knob appears at least once, ordered so
configs that share worker processes (same replicas, stages, threads and variant) follow each other.
Then TPE proposes. A proposal that was measured already is answered from memory (it costs nothing), and
one outside the feasible set (pruned for cores) is marked failed; when TPE keeps proposing those, the
search falls back to the unmeasured config nearest the best so far (refining around it).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from workbench.tune.space import config_key, restart_key

_MAX_ASKS = 40


class Search:
    """See the module docstring. ``configs``: the feasible configs; ``knobs``: knob -> values."""

    def __init__(self, configs: Sequence[dict[str, Any]], knobs: dict[str, tuple[Any, ...]], *, seed: int = 0,
                 startup: int | None = None, current: dict[str, Any] | None = None):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.configs = [dict(c) for c in configs]
        self._feasible = {config_key(c): c for c in self.configs}
        self.knobs = {k: tuple(v) for k, v in knobs.items()}
        self._searched = [k for k, v in self.knobs.items() if len(v) > 1]
        self._fixed = {k: v[0] for k, v in self.knobs.items() if len(v) == 1}
        self._distributions: dict[str, optuna.distributions.BaseDistribution] = {
            k: optuna.distributions.CategoricalDistribution(list(self.knobs[k])) for k in self._searched}
        self._rng = random.Random(seed)
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=0, multivariate=True)
        self.study = optuna.create_study(direction="maximize", sampler=sampler)
        self.values: dict[tuple[Any, ...], float] = {}
        self._pending: tuple[Any, tuple[Any, ...]] | None = None
        self._initial = self._initial_design(startup, current)

    # ------------------------------------------------------------ proposing
    def _initial_design(self, startup: int | None, current: dict[str, Any] | None) -> list[dict[str, Any]]:
        """Configs covering every knob value, fewest restarts first (starting from ``current``)."""
        pool = list(self.configs)
        self._rng.shuffle(pool)
        uncovered = {(k, v) for k in self._searched for v in self.knobs[k]}
        chosen: list[dict[str, Any]] = []
        while uncovered and pool:
            best = max(pool, key=lambda c: sum((k, c[k]) in uncovered for k in self._searched))
            if not any((k, best[k]) in uncovered for k in self._searched):
                break  # what remains uncovered is infeasible in every combination
            chosen.append(best)
            pool.remove(best)
            uncovered -= {(k, best[k]) for k in self._searched}
        want = max(len(chosen), startup if startup is not None else min(len(self.configs), 3 + len(self._searched)))
        chosen.extend(pool[: max(0, want - len(chosen))])
        start = restart_key(current) if current else None
        return sorted(chosen, key=lambda c: (restart_key(c) != start, str(restart_key(c))))

    def next(self) -> dict[str, Any] | None:
        """The next config to measure, or None once all feasible configs are measured."""
        if len(self.values) >= len(self.configs):
            return None
        while self._initial:
            config = self._initial.pop(0)
            if config_key(config) not in self.values:
                return config
        for _ in range(_MAX_ASKS):
            trial = self.study.ask(self._distributions)
            config = {**self._fixed, **trial.params}
            config = {k: config[k] for k in self.knobs}
            key = config_key(config)
            if key not in self._feasible:
                self._tell(trial, None)
            elif key in self.values:
                self._tell(trial, self.values[key])
            else:
                self._pending = (trial, key)
                return config
        return self._nearest_unmeasured()

    def _nearest_unmeasured(self) -> dict[str, Any] | None:
        left = [c for c in self.configs if config_key(c) not in self.values]
        if not left:
            return None
        if not self.values:
            return left[0]
        best_key = max(self.values, key=lambda k: self.values[k])
        best = self._feasible[best_key]
        return min(left, key=lambda c: (sum(c[k] != best[k] for k in self.knobs), str(config_key(c))))

    # ------------------------------------------------------------ learning
    def tell(self, config: dict[str, Any], value: float) -> None:
        """Report the score of ``config`` (higher is better)."""
        key = config_key(config)
        self.values[key] = float(value)
        pending = self._pending
        if pending is not None and pending[1] == key:
            self._pending = None
            self._tell(pending[0], value)
        else:  # proposed by the initial design or the fallback: teach the sampler all the same
            import optuna

            params = {k: config[k] for k in self._searched}
            self.study.add_trial(optuna.trial.create_trial(params=params, distributions=self._distributions,
                                                           value=float(value)))

    def _tell(self, trial: Any, value: float | None) -> None:
        import optuna

        if value is None:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, float(value))

    def ranked(self) -> list[dict[str, Any]]:
        """Measured configs, best first."""
        return [self._feasible[k] for k in sorted(self.values, key=lambda k: -self.values[k])]


__all__ = ["Search"]
