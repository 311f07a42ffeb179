"""SLO tuner vs a full grid search over the same space, on the same machine, measured the same way.

    python -m benchmarks.tune_bench [--model mlp] [--quick] [--markdown docs/performance.md] [--json f.json]

The grid measures every config of the space once (one short load run each, configs ordered so warm
workers are reused, exactly as the tuner measures a trial). The tuner then gets a third of the grid's
measurement time as its budget. Both "best" figures are optimistic (the grid's is the minimum of many
short noisy runs), so the two winners are then measured again, interleaved, ``--repeats`` times each with
longer runs; the verdict uses those medians. Target: the tuner's best within 10% of the grid's best in at
most a third of the measurement time. Objective: p99 within ``--p99-ms`` at ``--rate`` req/s; score = p99.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.markdown import write_section
from workbench.tune.measure import Bench
from workbench.tune.prepare import load_source
from workbench.tune.select import select_best
from workbench.tune.session import measure_config
from workbench.tune.space import SearchSpace, available_cores, prune, restart_key
from workbench.tune.trial import Objective
from workbench.tune.tuner import Tuner

FULL = SearchSpace(replicas=(1, 2), max_batch_size=(1, 4, 16, 64), max_delay_ms=(0.0, 2.0, 8.0),
                   routing=("least_outstanding", "round_robin"))
QUICK = SearchSpace(replicas=(1, 2), max_batch_size=(1, 16), max_delay_ms=(0.0, 4.0), routing=("least_outstanding",))


def grid(bench: Bench, space: SearchSpace, objective: Objective, duration_s: float) -> tuple[list[Any], float]:
    configs, _ = prune(space, cores=available_cores())
    configs.sort(key=lambda c: str(restart_key(c)))  # fewest restarts, as the tuner's initial design
    trials, spent = [], 0.0
    for n, config in enumerate(configs):
        trial = measure_config(bench, config, objective, number=n, phase="grid", duration_s=duration_s)
        trials.append(trial)
        spent += trial.extra["cost_s"]
        print(f"  grid {n + 1}/{len(configs)} {config}: p99 {trial.p99_ms} ms, meets {trial.meets}", flush=True)
    return trials, spent


def remeasure(bench: Bench, configs: dict[str, dict[str, Any]], objective: Objective, duration_s: float,
              repeats: int) -> dict[str, float | None]:
    """Median p99 of each config over ``repeats`` interleaved runs."""
    p99s: dict[str, list[float]] = {k: [] for k in configs}
    for r in range(repeats):
        for label, config in configs.items():
            t = measure_config(bench, config, objective, number=r, phase="remeasure", duration_s=duration_s,
                               early_stop=False)
            if t.p99_ms is not None:
                p99s[label].append(t.p99_ms)
    return {k: (statistics.median(v) if v else None) for k, v in p99s.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--p99-ms", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=600.0)
    parser.add_argument("--duration-s", type=float, default=3.0, help="one grid run = one tuner screening run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved re-measurements of the two winners")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a small space and short runs: proves it works")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args(argv)
    space = QUICK if args.quick else FULL
    duration_s = 1.5 if args.quick else args.duration_s
    objective = Objective(p99_ms=args.p99_ms, rate=args.rate)
    model = load_source(args.model, "model")
    with tempfile.TemporaryDirectory(prefix="tune-bench-") as tmp:
        runs = Path(tmp) / "runs"
        artifact = model.save(Path(tmp) / "model")
        bench = Bench(model.name, {"original": artifact}, runs_dir=runs)
        try:
            print(f"grid over {space.size} configs ({objective.describe()}) ...", flush=True)
            started = time.monotonic()
            grid_trials, grid_s = grid(bench, space, objective, duration_s)
            grid_wall = time.monotonic() - started
        finally:
            bench.close()
        grid_best = select_best(objective, grid_trials)
        print(f"tuner with a budget of {grid_s / 3:.0f} s ...", flush=True)
        started = time.monotonic()
        result = Tuner(model, objective, space=space, budget_s=grid_s / 3, runs_dir=runs, seed=args.seed,
                       screen_s=duration_s, confirm_s=2 * duration_s).run()
        tuner_wall = time.monotonic() - started
        tuner_best = result.best
        remeasured: dict[str, float | None] = {}
        if grid_best is not None and tuner_best is not None:
            bench = Bench(model.name, {"original": artifact}, runs_dir=runs)
            try:
                remeasured = remeasure(bench, {"grid": {**grid_best.config, "variant": "original"},
                                               "tuner": {**tuner_best.config, "variant": "original"}},
                                       objective, 2 * duration_s, args.repeats)
            finally:
                bench.close()
    g, t = remeasured.get("grid"), remeasured.get("tuner")
    ratio = (t / g) if g and t else None
    time_share = result.spent_s / grid_s if grid_s else None
    met = bool(ratio is not None and ratio <= 1.10 and time_share is not None and time_share <= 1 / 3 + 0.02)
    report = {
        "model": args.model, "objective": objective.describe(), "space": space.to_dict(), "configs": len(grid_trials),
        "duration_s": duration_s, "grid_measure_s": round(grid_s, 1), "grid_wall_s": round(grid_wall, 1),
        "grid_best": grid_best.to_dict() if grid_best else None,
        "tuner_measure_s": round(result.spent_s, 1), "tuner_wall_s": round(tuner_wall, 1),
        "tuner_trials": len(result.trials), "tuner_best": tuner_best.to_dict() if tuner_best else None,
        "tuner_message": result.message, "explanation": result.explanation,
        "remeasured_p99_ms": remeasured, "p99_ratio_tuner_vs_grid": ratio, "time_share": time_share,
        "target_met": met, "quick": args.quick,
    }
    print(json.dumps(report, indent=2, default=str))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    if args.markdown:
        write_section(args.markdown, markdown(report))
    return 0


def _cfg(best: dict[str, Any] | None) -> str:
    if not best:
        return "none met the objective"
    return ", ".join(f"{k}={best[k]}" for k in ("replicas", "max_batch_size", "max_delay_ms", "routing"))


def markdown(r: dict[str, Any]) -> str:
    rm = r["remeasured_p99_ms"]

    def fmt(v: Any) -> str:
        return f"{v:.2f}" if isinstance(v, (int, float)) else "–"

    lines = [
        "## SLO tuner",
        "",
        f"`python -m benchmarks.tune_bench{' --quick' if r['quick'] else ''}`: {r['model']}, objective {r['objective']}, "
        f"{r['configs']} configs (replicas × max_batch_size × max_delay_ms × routing), {r['duration_s']:g} s per run. "
        "Grid = every config once; tuner = optuna TPE screening + confirmation, budget = a third of the grid's "
        "measurement time. Winners re-measured interleaved (median p99 of longer runs). Noisy 2-core machine "
        "shared with other work.",
        "",
        "| search | measurement s | trials | best config | p99 in search (ms) | p99 re-measured (ms) |",
        "|---|---:|---:|---|---:|---:|",
        f"| grid | {r['grid_measure_s']:.0f} | {r['configs']} | {_cfg(r['grid_best'])} | "
        f"{fmt((r['grid_best'] or {}).get('p99_ms'))} | {fmt(rm.get('grid'))} |",
        f"| tuner | {r['tuner_measure_s']:.0f} | {r['tuner_trials']} | {_cfg(r['tuner_best'])} | "
        f"{fmt((r['tuner_best'] or {}).get('p99_ms'))} | {fmt(rm.get('tuner'))} |",
        "",
        f"Tuner/grid p99 ratio {fmt(r['p99_ratio_tuner_vs_grid'])}, time share {fmt(r['time_share'])}: target "
        f"(within 10% in ≤ 1/3 of the time) {'met' if r['target_met'] else 'NOT met'}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
