"""One tuning session: prepare, screen, confirm (the work behind ``Tuner``, on its thread).

Also :func:`measure_config`, the one way a config is measured into a :class:`Trial`; the benchmark's
grid search uses it too, so both searches measure alike.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from workbench.errors import ConfigError
from workbench.tune.measure import MAX_ERROR_SHARE, Bench, Measurement
from workbench.tune.prepare import Prepared, prepare
from workbench.tune.search import Search
from workbench.tune.space import SERVE_KNOBS, available_cores, cores_of, prune, restart_key
from workbench.tune.trial import Objective, Trial

#: screening: how much a highest-rate search grows the rate per step (no best yet / beating the best)
GROWTH_FIRST, GROWTH_BEAT, GROWTH_CONFIRM = 2.0, 1.25, 1.1
#: share of the budget kept for confirming the best configs with longer runs
CONFIRM_SHARE = 0.25
#: a highest-rate search stops once the bound is bracketed this tightly (highest good / lowest bad)
PRECISION = 1.1


def rate_search(measure: Any, *, start: float, growth: float, max_steps: int, hi: float | None = None,
                give_up_at_start: bool = False, stop: Any = None) -> tuple[Measurement | None, float | None,
                                                                             list[Measurement]]:
    """Highest rate with p99 in bound, in few short steps: grow geometrically until a step violates,
    then bisect (geometric mean) between the highest good and the lowest bad rate. ``measure(rate)``
    returns a Measurement whose ``ok`` attribute says it met. Returns (best good step, lowest bad
    rate, all steps). ``give_up_at_start``: a first step that fails ends the search (this config
    cannot carry the best rate so far, so it cannot win)."""
    lo: Measurement | None = None
    steps: list[Measurement] = []
    rate = start
    for i in range(max_steps):
        if lo is not None and hi is not None and hi / lo.rate <= PRECISION:
            break
        m = measure(rate)
        steps.append(m)
        if stop is not None and stop():
            break
        if m.extra.get("ok"):
            lo = m
            rate = rate * growth if hi is None else math.sqrt(lo.rate * hi)
        else:
            hi = rate if hi is None else min(hi, rate)
            if lo is None:
                if give_up_at_start and i == 0:
                    break
                rate = rate / growth
                if rate < 1.0:
                    break
            else:
                rate = math.sqrt(lo.rate * hi)
    return lo, hi, steps


def measure_config(bench: Bench, config: dict[str, Any], objective: Objective, *, number: int, phase: str,
                   duration_s: float, accuracy: float | None = None, start_rate: float = 100.0,
                   incumbent: float | None = None, hi: float | None = None, early_stop: bool = True,
                   stop: Any = None) -> Trial:
    """Apply ``config`` on the warm server and measure it into a Trial (see ``select`` for scores)."""
    started = time.monotonic()
    applied = bench.apply(config)
    apply_s = time.monotonic() - started
    if applied == "started":  # the first server start is set-up (like loading the model), not measurement
        started += apply_s
    target = objective.p99_ms

    def measure(rate: float) -> Measurement:
        m = bench.measure(rate, duration_s, p99_ms=target, early_stop=early_stop,
                          context={"phase": phase, "trial": number})
        m.extra["ok"] = m.meets(target)
        return m

    settings = {k: config[k] for k in SERVE_KNOBS}
    common: dict[str, Any] = dict(number=number, config=settings, variant=config["variant"], accuracy=accuracy,
                                  cores=cores_of(config))
    if objective.rate is not None:
        m = measure(objective.rate)
        steps, best, upper = [m], (m if m.extra["ok"] else None), None
    else:
        give_up = incumbent is not None and phase == "screen"
        growth = GROWTH_CONFIRM if phase == "confirm" else (GROWTH_BEAT if incumbent else GROWTH_FIRST)
        first = start_rate if phase == "confirm" else (incumbent or start_rate)
        best, upper, steps = rate_search(measure, start=first, growth=growth, max_steps=3 if phase == "confirm" else 8,
                                         hi=hi, give_up_at_start=give_up, stop=stop)
    shown = best or steps[-1]
    failed = shown.errors + shown.not_sent
    kept_up = not shown.stopped_early and shown.sent > 0 and failed <= MAX_ERROR_SHARE * shown.sent
    meets = best is not None
    value, score, reason = _score(objective, best, steps, upper, kept_up)
    extra: dict[str, Any] = {"phase": phase, "value": value, "applied": applied, "kept_up": kept_up,
                             "cost_s": round(time.monotonic() - started, 3), "apply_s": round(apply_s, 3),
                             "steps": len(steps),
                             "mean_batch_size": shown.extra.get("mean_batch_size"),
                             "generator_limited": shown.generator_limited}
    if objective.rate is None:
        extra["upper_rps"] = upper
    stopped = any(s.stopped_early for s in steps) and not meets
    if stopped and not reason:
        reason = next(s.reason for s in steps if s.stopped_early) or "stopped early"
    return Trial(**common, rate=shown.rate if (meets or objective.rate is not None) else 0.0,
                 throughput=shown.throughput, p50_ms=shown.p50_ms, p99_ms=shown.p99_ms, errors=failed,
                 meets=meets, stopped_early=stopped, reason=reason,
                 measured_s=round(sum(s.load_s for s in steps), 3),
                 run_id=shown.run_id, score=score, extra=extra)


def _score(objective: Objective, best: Measurement | None, steps: list[Measurement], upper: float | None,
           kept_up: bool) -> tuple[float, float | None, str]:
    """(value the search maximises, the trial's score or None, why it failed in words)."""
    target = objective.p99_ms
    if objective.rate is not None:
        m = steps[0]
        p99 = m.p99_ms if m.p99_ms is not None else 1e6
        if best is not None:
            return -p99, -p99, ""
        why = m.reason or (f"p99 {p99:.1f} ms over the {target:g} ms bound" if p99 > target
                           else f"{m.errors + m.not_sent} of {m.sent} requests failed: it did not keep up")
        return -max(p99, 2 * target) - 10 * target, None, why
    if best is not None:
        return best.rate, best.rate, ""
    first = steps[0]
    estimate = first.rate * min(0.9, target / first.p99_ms) if first.p99_ms else 0.1 * first.rate
    why = f"could not carry {first.rate:g} req/s within {target:g} ms"
    if first.reason:
        why += f" ({first.reason})"
    return max(estimate, 0.0), None, why


class TuneSession:
    """Prepare, screen, confirm. Reads its settings from the Tuner and reports trials to it."""

    def __init__(self, tuner: Any, workdir: Path):
        self.tuner = tuner
        self.workdir = workdir
        self.prepared: Prepared | None = None
        self.number = 0
        self.search: Search | None = None

    def run(self) -> None:
        t = self.tuner
        t.status = "preparing"
        self.prepared = prepared = prepare(t.model, t.variants, t.objective, self.workdir, t.space.variants)
        space = t.space.replace(variants=list(prepared.models))
        cores = t.cores or available_cores()
        configs, pruned = prune(space, cores=cores, max_stages=prepared.max_stages)
        prepared.pruned = pruned
        if not configs:
            raise ConfigError("no config in the search space can run here: " + "; ".join(pruned))
        t._bench = bench = Bench(prepared.name, prepared.artifacts, runs_dir=t.runs_dir,
                                 context={"objective": t.objective.to_dict()})
        if t.stopped:
            bench.abort()
        self.search = search = Search(configs, space.knobs(), seed=t.seed)
        t.status = "screening"
        reserve = t.budget_s * CONFIRM_SHARE  # for the confirmations: at least one always fits
        while not t.stopped:
            estimate = self._typical_cost()
            if self.number and t.spent_s + estimate > t.budget_s - max(reserve, estimate * t.confirm_s / t.screen_s):
                break
            config = search.next()
            if config is None:
                break
            trial = self._measure(config, "screen", t.screen_s)
            if not t.stopped:
                search.tell(config, trial.extra["value"])
        t.status = "confirming"
        self._confirm(bench)

    def _incumbent(self) -> float | None:
        rates = [tr.rate for tr in self.tuner.trials if tr.meets and tr.rate > 0]
        return max(rates) if rates else None

    def _measure(self, config: dict[str, Any], phase: str, duration_s: float, *, start_rate: float | None = None,
                 hi: float | None = None) -> Trial:
        t = self.tuner
        assert self.prepared is not None
        trial = measure_config(t._bench, config, t.objective, number=self.number, phase=phase, duration_s=duration_s,
                               accuracy=self.prepared.accuracy.get(config["variant"]),
                               start_rate=start_rate or t.initial_rate, incumbent=self._incumbent(), hi=hi,
                               early_stop=t.early_stop, stop=lambda: t.stopped)
        self.number += 1
        t.spent_s += trial.extra["cost_s"]
        if t.stopped and trial.p99_ms is None:
            return trial  # interrupted before it measured anything: not a result
        t._emit(trial)
        return trial

    def _confirm(self, bench: Bench) -> None:
        """Measure the best few screened configs again with longer runs (successive halving's second rung)."""
        t = self.tuner
        screened = {self._key(tr): tr for tr in t.trials if tr.extra.get("phase") == "screen"}
        ranked = sorted(screened.values(), key=lambda tr: -tr.extra["value"])
        meeting = [tr for tr in ranked if tr.meets]
        chosen = (meeting or ranked)[: t.confirm_top if meeting else 1]
        current = restart_key(bench.current) if bench.current else None
        chosen.sort(key=lambda tr: (restart_key(self._config(tr)) != current, str(restart_key(self._config(tr)))))
        estimate = self._typical_cost() * t.confirm_s / t.screen_s
        for i, tr in enumerate(chosen):
            if t.stopped or (i > 0 and t.spent_s + estimate > t.budget_s):
                break
            self._measure(self._config(tr), "confirm", t.confirm_s, start_rate=tr.rate or None,
                          hi=tr.extra.get("upper_rps"))

    def _typical_cost(self) -> float:
        """Median cost of a screening trial so far (before any: the run plus a second of overhead)."""
        t = self.tuner
        costs = sorted(tr.extra["cost_s"] for tr in t.trials if tr.extra.get("phase") == "screen")
        return costs[len(costs) // 2] if costs else t.screen_s + 1.0

    @staticmethod
    def _config(trial: Trial) -> dict[str, Any]:
        return {**trial.config, "variant": trial.variant}

    def _key(self, trial: Trial) -> tuple[Any, ...]:
        return tuple(sorted(self._config(trial).items()))

    def result(self) -> Any:
        from workbench.tune.result import TuneResult

        t = self.tuner
        return TuneResult.build(t.objective, t.trials, prepared=self.prepared, spent_s=t.spent_s,
                                budget_s=t.budget_s, stopped=t.stopped, space=t.space)


__all__ = ["CONFIRM_SHARE", "TuneSession", "measure_config", "rate_search"]
