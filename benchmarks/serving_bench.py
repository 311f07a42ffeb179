"""Serving-runtime benchmark: the local Server against the raw compute ceiling, in the same run.

Models: the reference MLP (784-1024-1024-10, seeded, untrained) and the zoo ``cnn`` (trained once and
cached). Client: in-process coroutines on ``server.loop`` awaiting ``server.submit`` (the path the HTTP
layer takes), one row per request, closed loop; plus ``server.infer()`` from a thread at concurrency 1.
Every worker uses 1 intra-op thread, and so does the ceiling.

Measured per model, in each of ``--rounds`` interleaved rounds (medians reported):

- ceiling: raw in-process ``runner(batch)`` at ``max_batch_size`` rows, in rows/s, measured in slices that
  alternate with slices of the served saturation run (both see the same machine load); raw batch-of-1
  latency;
- served throughput at saturation (``4 × max_batch_size`` clients) and its ratio to the ceiling;
- p50/p99 latency at concurrency 1, 8 and 32; added p50 at concurrency 1 over the raw batch-of-1 call;
- 1 vs 2 replicas, 1 vs 2 pipeline stages, batching on vs off (throughput at saturation).

Targets (checked and printed): served throughput at saturation ≥ 80 % of the ceiling; added p50 latency
at concurrency 1 ≤ 0.5 ms.

Run: ``.venv/bin/python -m benchmarks.serving_bench [--models mlp cnn] [--rounds 3] [--seconds 2]
[--json out.json] [--markdown docs/performance.md]`` (``--markdown`` rewrites only the "Serving runtime"
section). The machine is shared and has 2 cores: compare ratios within a run, not absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.markdown import write_section

MAX_BATCH = 32
VARIANTS = {  # name -> ServeConfig as a dict
    "1 replica": {},
    "2 replicas": {"placement": {"replicas": 2}},
    "2 stages": {"placement": {"stages": 2}},
    "batching off": {"batching": {"enabled": False}},
}


def _artifacts(names: list[str], folder: Path) -> dict[str, Any]:
    from workbench.models import load_zoo
    from workbench.testing import make_artifact

    out = {}
    for name in names:
        if name == "mlp":
            out[name] = make_artifact("reference_mlp", folder / "reference_mlp", name="reference_mlp")
        else:
            model = load_zoo(name, progress=False)
            out[name] = model.save(folder / name)
    return out


def _inputs(artifact: Any, rows: int) -> Any:
    import numpy as np

    spec = artifact.signature.input
    return np.random.default_rng(0).standard_normal((rows, *spec.shape)).astype(spec.dtype)


def ceiling(runner: Any, batch: Any, seconds: float) -> float:
    """Rows/s of back-to-back raw calls at this batch size."""
    for _ in range(5):
        runner(batch)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        runner(batch)
        n += 1
    return n * len(batch) / (time.perf_counter() - t0)


def raw_latency_ms(runner: Any, row: Any, seconds: float) -> float:
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        runner(row)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


async def closed_loop(server: Any, model: str, row: Any, clients: int, seconds: float) -> dict[str, float]:
    """``clients`` coroutines on server.loop, each sending one request after the other. Counted: requests
    sent after a short warm-up that completed before the end."""
    latencies: list[float] = []
    warm_until = time.perf_counter() + min(0.25, seconds / 4)
    stop = warm_until + seconds

    async def client() -> None:
        while True:
            t = time.perf_counter()
            if t >= stop:
                return
            await server.submit(model, row)
            done = time.perf_counter()
            if t >= warm_until and done <= stop:
                latencies.append(done - t)

    await asyncio.gather(*(client() for _ in range(clients)))
    latencies.sort()
    return {"rps": len(latencies) / seconds, "p50_ms": latencies[len(latencies) // 2] * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000}


def paired(server: Any, model: str, runner: Any, batch: Any, row: Any, seconds: float,
           slices: int = 4) -> tuple[float, dict[str, float]]:
    """Ceiling and served saturation measured in alternating slices, so both see the same machine load."""
    ceilings, served = [], []
    for _ in range(slices):
        ceilings.append(ceiling(runner, batch, seconds / slices))
        served.append(server.run_coroutine(closed_loop(server, model, row, 4 * MAX_BATCH, seconds / slices)).result())
    return statistics.mean(ceilings), {"rps": statistics.mean(s["rps"] for s in served),
                                       "p99_ms": statistics.median(s["p99_ms"] for s in served)}


def sync_latency_ms(server: Any, model: str, row: Any, seconds: float) -> float:
    """p50 of ``server.infer()`` from this (non-loop) thread, one request at a time."""
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        server.infer(model, row)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def run(models: list[str], rounds: int, seconds: float) -> dict[str, Any]:
    from workbench.serving import ServeConfig, Server

    folder = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    artifacts = _artifacts(models, folder)
    served = {f"{m}|{v}": artifacts[m] for m in models for v in VARIANTS}
    configs = {f"{m}|{v}": ServeConfig.from_dict({**cfg, "batching": {**cfg.get("batching", {}), "max_batch_size": MAX_BATCH}})
               for m in models for v, cfg in VARIANTS.items()}
    samples: dict[str, dict[str, list[float]]] = {m: {} for m in models}

    def add(model: str, key: str, value: float) -> None:
        samples[model].setdefault(key, []).append(value)

    runners = {m: artifacts[m].build_runner(threads=1) for m in models}
    import torch

    torch.set_num_threads(1)
    load_before = os.getloadavg()
    t_start = time.perf_counter()
    with Server(models=served, config=configs) as server:
        start_s = time.perf_counter() - t_start
        for r in range(rounds):
            for m in models:
                batch, row = _inputs(artifacts[m], MAX_BATCH), _inputs(artifacts[m], 1)
                add(m, "raw_b1_ms", raw_latency_ms(runners[m], row, seconds / 2))
                for variant in VARIANTS:
                    name = f"{m}|{variant}"
                    if variant == "1 replica":  # the comparison that matters: ceiling and served taken in turns
                        ceil, sat = paired(server, name, runners[m], batch, row, seconds)
                        add(m, "ceiling_rows_s", ceil)
                    else:
                        sat = server.run_coroutine(closed_loop(server, name, row, 4 * MAX_BATCH, seconds)).result()
                    add(m, f"{variant}: saturation_rps", sat["rps"])
                    add(m, f"{variant}: saturation_p99_ms", sat["p99_ms"])
                    if variant in ("1 replica", "2 stages"):
                        c1 = server.run_coroutine(closed_loop(server, name, row, 1, seconds)).result()
                        add(m, f"{variant}: c1_p50_ms", c1["p50_ms"])
                        add(m, f"{variant}: c1_p99_ms", c1["p99_ms"])
                for clients in (8, 32):
                    c = server.run_coroutine(closed_loop(server, f"{m}|1 replica", row, clients, seconds)).result()
                    add(m, f"c{clients}_p50_ms", c["p50_ms"])
                    add(m, f"c{clients}_p99_ms", c["p99_ms"])
                    add(m, f"c{clients}_rps", c["rps"])
                add(m, "sync_c1_p50_ms", sync_latency_ms(server, f"{m}|1 replica", row, seconds / 2))
                # the comparisons that matter, within this round (the machine's load drifts between rounds)
                last = {k: v[-1] for k, v in samples[m].items()}
                add(m, "served_over_ceiling", last["1 replica: saturation_rps"] / last["ceiling_rows_s"])
                add(m, "added_c1_p50_ms", last["1 replica: c1_p50_ms"] - last["raw_b1_ms"])
                add(m, "added_sync_c1_p50_ms", last["sync_c1_p50_ms"] - last["raw_b1_ms"])
                last = {k: v[-1] for k, v in samples[m].items()}
                print(f"round {r + 1}/{rounds} {m}: ceiling {last['ceiling_rows_s']:.0f} rows/s, served "
                      f"{last['1 replica: saturation_rps']:.0f} req/s ({last['served_over_ceiling']:.0%}), "
                      f"c1 p50 +{last['added_c1_p50_ms']:.3f} ms over raw", file=sys.stderr)
    medians = {m: {k: statistics.median(v) for k, v in s.items()} for m, s in samples.items()}
    return {"medians": medians, "samples": samples, "rounds": rounds, "seconds": seconds,
            "load_average": [load_before, os.getloadavg()],
            "server_start_s": start_s, "python": platform.python_version(), "cpus": os.cpu_count(),
            "machine": platform.machine(), "torch": torch.__version__, "max_batch_size": MAX_BATCH}


def markdown(result: dict[str, Any], command: str) -> str:
    lines = [
        "## Serving runtime", "",
        f"Command: `{command}` ({result['rounds']} interleaved rounds of {result['seconds']:g} s per measurement; "
        f"medians; Python {result['python']}, torch {result['torch']}, {result['cpus']} cores shared with the "
        f"client and with other work: load average {result['load_average'][0][0]:.1f} at the start, "
        f"{result['load_average'][1][0]:.1f} at the end). In-process client: coroutines on `server.loop` awaiting `server.submit`, "
        f"one row per request, closed loop; every worker and the ceiling use 1 intra-op thread; "
        f"`max_batch_size={result['max_batch_size']}`, `max_delay_ms=0`. Saturation = "
        f"{4 * result['max_batch_size']} clients.", "",
        "Ratios and added latencies are taken within each round, then the median (with [min–max]) over rounds.",
        "",
        "| model | ceiling (raw batch 32, rows/s) | served at saturation (req/s) | served / ceiling | raw batch-1 p50 | "
        "served c=1 p50 (added) | `infer()` c=1 p50 (added) |",
        "|---|---|---|---|---|---|---|",
    ]
    for m, d in result["medians"].items():
        s = result["samples"][m]
        ratio = f"{min(s['served_over_ceiling']):.0%}–{max(s['served_over_ceiling']):.0%}"
        added = f"{min(s['added_c1_p50_ms']):.3f}–{max(s['added_c1_p50_ms']):.3f}"
        lines.append(
            f"| {m} | {d['ceiling_rows_s']:.0f} | {d['1 replica: saturation_rps']:.0f} | "
            f"**{d['served_over_ceiling']:.0%}** [{ratio}] | {d['raw_b1_ms']:.3f} ms | {d['1 replica: c1_p50_ms']:.3f} ms "
            f"(**+{d['added_c1_p50_ms']:.3f} ms** [{added}]) | {d['sync_c1_p50_ms']:.3f} ms "
            f"(+{d['added_sync_c1_p50_ms']:.3f} ms) |")
    lines += ["", "Latency by concurrency (1 replica; ms):", "",
              "| model | c=1 p50 / p99 | c=8 p50 / p99 (req/s) | c=32 p50 / p99 (req/s) |", "|---|---|---|---|"]
    for m, d in result["medians"].items():
        lines.append(
            f"| {m} | {d['1 replica: c1_p50_ms']:.3f} / {d['1 replica: c1_p99_ms']:.3f} | "
            f"{d['c8_p50_ms']:.3f} / {d['c8_p99_ms']:.3f} ({d['c8_rps']:.0f}) | "
            f"{d['c32_p50_ms']:.3f} / {d['c32_p99_ms']:.3f} ({d['c32_rps']:.0f}) |")
    lines += ["", "Placements and batching (throughput at saturation, req/s, and ratio to 1 replica):", "",
              "| model | 1 replica | 2 replicas | 2 pipeline stages | batching off | 2-stage c=1 p50 |",
              "|---|---|---|---|---|---|"]
    for m, d in result["medians"].items():
        base = d["1 replica: saturation_rps"]
        cells = [f"{d[f'{v}: saturation_rps']:.0f} ({d[f'{v}: saturation_rps'] / base:.2f}×)" for v in VARIANTS]
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {d['2 stages: c1_p50_ms']:.3f} ms |")
    met_tp = all(d["served_over_ceiling"] >= 0.8 for d in result["medians"].values())
    met_lat = all(d["added_c1_p50_ms"] <= 0.5 for d in result["medians"].values())
    lines += ["", f"Targets: served ≥ 80 % of the ceiling: **{'met' if met_tp else 'NOT met'}**; added p50 at "
              f"concurrency 1 ≤ 0.5 ms: **{'met' if met_lat else 'NOT met'}**.", "",
              "Reading the figures: a served/ceiling ratio above 100 % in some round means the machine's load "
              "moved between slices (other work ran on the same 2 cores); the median over rounds is the figure. "
              "2 replicas and 2 stages run two worker processes on 2 cores that also carry the controller and "
              "the client, so they gain only where one worker leaves a core idle. The cnn computes faster per "
              "row at batch 8 than at batch 32 on this CPU, which is why its c=8 throughput beats saturation.", ""]
    return "\n".join(lines)




def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args(argv)
    result = run(args.models, args.rounds, args.seconds)
    command = (f".venv/bin/python -m benchmarks.serving_bench --models {' '.join(args.models)} --rounds {args.rounds} "
               f"--seconds {args.seconds:g}" + (" --markdown docs/performance.md" if args.markdown else ""))
    text = markdown(result, command)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if args.markdown:
        write_section(args.markdown, text)
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    sys.exit(main())
