"""Which knobs mattered, in words: for each knob, the median outcome of the configs that set each of its
values; the knob whose best and worst values differ most mattered most.

Fixed rate: the outcome is the p99 (lower is better). Highest rate: the rate reached (a config that could
not carry the best rate so far counts with its estimate, see ``session._score``). Medians over the
latest measurement of each config, so a few noisy trials do not decide it.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from workbench.tune.select import latest_per_config
from workbench.tune.space import KNOBS
from workbench.tune.trial import Objective, Trial

#: knobs whose best and worst medians are closer than this did not matter
MATTERS = 1.10


def _outcome(objective: Objective, trial: Trial) -> float | None:
    if objective.max_rate:
        value = trial.extra.get("value")
        return float(value) if isinstance(value, (int, float)) else None
    return trial.p99_ms


def _value_of(trial: Trial, knob: str) -> Any:
    return trial.variant if knob == "variant" else trial.config.get(knob)


def knob_effects(objective: Objective, trials: Sequence[Trial]) -> list[dict[str, Any]]:
    """Per knob with two or more values measured: best/worst value, their medians, and the ratio."""
    latest = [t for t in latest_per_config(trials) if _outcome(objective, t) is not None]
    effects = []
    for knob in KNOBS:
        groups: dict[Any, list[float]] = {}
        for t in latest:
            groups.setdefault(_value_of(t, knob), []).append(float(_outcome(objective, t)))  # type: ignore[arg-type]
        if len(groups) < 2:
            continue
        medians = {v: statistics.median(xs) for v, xs in groups.items()}
        if objective.max_rate:
            best, worst = max(medians, key=medians.__getitem__), min(medians, key=medians.__getitem__)
            ratio = medians[best] / medians[worst] if medians[worst] > 0 else float("inf")
        else:
            best, worst = min(medians, key=medians.__getitem__), max(medians, key=medians.__getitem__)
            ratio = medians[worst] / medians[best] if medians[best] > 0 else float("inf")
        effects.append({"knob": knob, "best": best, "worst": worst, "best_median": medians[best],
                        "worst_median": medians[worst], "ratio": ratio, "trials": sum(map(len, groups.values()))})
    return sorted(effects, key=lambda e: -e["ratio"])


def explain(objective: Objective, trials: Sequence[Trial]) -> list[str]:
    """A few lines: which knobs mattered, by how much, in order."""
    effects = knob_effects(objective, trials)
    if not effects:
        return ["too few configs were measured to tell which knobs matter"]
    lines = []
    for i, e in enumerate(effects):
        name = f"{e['knob']} mattered most" if i == 0 and e["ratio"] >= MATTERS else e["knob"]
        if e["ratio"] < MATTERS:
            lines.append(f"{e['knob']} hardly mattered: its values were within {MATTERS - 1:.0%} of each other "
                         f"(median over {e['trials']} configs)")
            continue
        ratio = "∞" if e["ratio"] == float("inf") else f"{e['ratio']:.1f}"
        if objective.max_rate:
            lines.append(f"{name}: {e['best']} vs {e['worst']} raised the rate {ratio}× (median "
                         f"{e['best_median']:,.0f} vs {e['worst_median']:,.0f} req/s)")
        else:
            lines.append(f"{name}: {e['best']} vs {e['worst']} lowered p99 {ratio}× (median "
                         f"{e['best_median']:.1f} vs {e['worst_median']:.1f} ms)")
    return lines


__all__ = ["MATTERS", "explain", "knob_effects"]
