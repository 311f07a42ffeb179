"""Soak benchmark: a steady load for ``--minutes`` (10 by default), end to end over HTTP.

The service is ``workbench serve`` of the slow test double of :mod:`benchmarks.reliability.served` (one
worker, 4 rows per 20 ms batch) with room to ride out the machine's stalls (``SOAK_SERVICE``: a queue of
256 rows, 2.5 s of arrivals, and a 5 s deadline; the overload benchmark's 32-row queue refuses requests
whenever another process holds both cores for a third of a second): its capacity is measured first (the step
search of the overload benchmark), then the real load generator offers ``LOAD_FRACTION`` of it as a
seeded Poisson process. Every ``--sample-s`` seconds a sampler reads the RSS of the server and of its
worker, their open file descriptors, threads and the number of processes in the tree.

Promised: after the warm-up, the server tree's RSS grows by at most ``RSS_GROWTH_BOUND_MB`` (median of
the last third of the samples against the median of the first third); open files and processes come
back to where they were before the load (and no worker was replaced); p99 latency of the last third of
the run is within ``P99_FACTOR`` × that of the first third; no request fails.

Run: ``.venv/bin/python -m benchmarks.reliability.soak [--minutes 10] [--markdown docs/reliability.md]
[--json out.json]``. ``tests/reliability/test_soak.py`` runs the same code for 30 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.reliability.served import ServedProcess, SlowService, TreeSampler, find_capacity, load_run

#: the soak's service: the overload benchmark's double with a deeper queue and a longer deadline
SOAK_SERVICE = SlowService(max_queue=256, timeout_ms=5000.0)
LOAD_FRACTION = 0.6
RSS_GROWTH_BOUND_MB = 20.0
P99_FACTOR = 2.0
#: open files may differ from the count before the load by this many once the load's connections closed
FD_SLACK = 2
WINDOW_MS = 1000.0


def run_soak(*, seconds: float = 600.0, warmup_s: float = 60.0, sample_s: float = 5.0, measure_capacity: bool = True,
             service: SlowService | None = None, folder: Path | None = None) -> dict[str, Any]:
    """A steady Poisson load at ``LOAD_FRACTION`` of capacity for ``seconds``, sampled; the figures."""
    from workbench.load import Poisson
    from workbench.telemetry.histogram import LatencyHistogram

    service = service or SOAK_SERVICE
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp, ServedProcess(service, folder or Path(tmp)) as served:
        capacity = find_capacity(served) if measure_capacity else None
        cap = (capacity or {}).get("capacity_rps") or service.nominal_rps
        rate = round(LOAD_FRACTION * cap, 1)
        sampler = TreeSampler(served, interval_s=sample_s)
        before = _settled(sampler)
        pids_before = {p.pid for p in served.tree()}
        with sampler:
            run = load_run(served, Poisson(rate=rate, seed=7), seconds, window_ms=WINDOW_MS)
        after = _settled(sampler, target_fds=before.fds)
        pids_after = {p.pid for p in served.tree()}
        leftover = served.stop()
    t0 = run.t0
    steady = sampler.between(t0 + warmup_s, t0 + seconds)
    third = max(1, len(steady) // 3)
    first, last = steady[:third], steady[-third:]
    windows = [w for w in run.windows if w.start_s >= warmup_s and w.end_s <= seconds]
    wthird = max(1, len(windows) // 3)
    w_first, w_last = windows[:wthird], windows[-wthird:]

    def p99(ws: list[Any]) -> float | None:
        hist = LatencyHistogram.merged(w.histograms["latency"] for w in ws if "latency" in w.histograms)
        return round(hist.percentile(99) * 1e3, 2) if hist.count else None

    def window_p99_median(ws: list[Any]) -> float | None:
        values = [w.latency.p99_ms for w in ws if w.latency is not None]
        return round(statistics.median(values), 2) if values else None

    summary = run.summary()
    rss_first = statistics.median(s.rss_mb for s in first) if first else None
    rss_last = statistics.median(s.rss_mb for s in last) if last else None
    by_process: dict[str, float] = {}
    if first and last:
        for name in first[0].rss_by_process_mb:
            a = [s.rss_by_process_mb[name] for s in first if name in s.rss_by_process_mb]
            b = [s.rss_by_process_mb[name] for s in last if name in s.rss_by_process_mb]
            if a and b:
                by_process[name] = round(statistics.median(b) - statistics.median(a), 1)
    by_process_last = {k: round(v, 1) for k, v in (last[-1].rss_by_process_mb if last else {}).items()}
    return {
        "service": service.describe(),
        "capacity": capacity,
        "capacity_rps": cap,
        "capacity_measured": measure_capacity,
        "rate_rps": rate,
        "seconds": seconds,
        "warmup_s": warmup_s,
        "sample_s": sample_s,
        "samples": len(sampler.samples),
        "sent": summary["sent"],
        "ok": summary["ok"],
        "errors": summary["errors"],
        "errors_by_kind": summary["errors_by_kind"],
        "not_sent": summary["not_sent"],
        "throughput_rps": summary["throughput_rps"],
        "latency_p50_ms": summary["latency_p50_ms"],
        "latency_p99_ms": summary["latency_p99_ms"],
        "p99_first_third_ms": p99(w_first),
        "p99_last_third_ms": p99(w_last),
        "window_p99_median_first_ms": window_p99_median(w_first),
        "window_p99_median_last_ms": window_p99_median(w_last),
        "p99_factor_bound": P99_FACTOR,
        "rss_before_mb": round(before.rss_mb, 1),
        "rss_first_third_mb": None if rss_first is None else round(rss_first, 1),
        "rss_last_third_mb": None if rss_last is None else round(rss_last, 1),
        "rss_growth_mb": None if rss_first is None or rss_last is None else round(rss_last - rss_first, 1),
        "rss_growth_by_process_mb": by_process,
        "rss_by_process_mb": by_process_last,
        "rss_max_mb": round(max(s.rss_mb for s in sampler.samples), 1),
        "rss_growth_bound_mb": RSS_GROWTH_BOUND_MB,
        "fds_before": before.fds,
        "fds_max_during": max(s.fds for s in sampler.samples),
        "fds_after": after.fds,
        "processes_before": before.processes,
        "processes_during": sorted({s.processes for s in sampler.samples}),
        "processes_after": after.processes,
        "threads_before": before.threads,
        "threads_after": after.threads,
        "same_processes": pids_before == pids_after,
        "load_average": [round(x, 1) for x in load_before + os.getloadavg()],
        "generator_limited": summary["generator_limited"],
        "generator_message": summary["generator_message"],
        "leftover_processes": leftover,
        "rss_series_mb": [round(s.rss_mb, 1) for s in sampler.samples],
        "window_p99_ms": [w.latency.p99_ms if w.latency else None for w in run.windows],
    }


def _settled(sampler: TreeSampler, target_fds: int | None = None, timeout_s: float = 10.0) -> Any:
    """A sample of the idle server once its open files have settled: the same count twice in a row 0.2 s
    apart and, after a load, back within ``FD_SLACK`` of ``target_fds`` (closed connections take a moment
    to be noticed); the last one tried after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    previous = sampler.sample()
    while True:
        time.sleep(0.2)  # polling a condition with a deadline
        sample = sampler.sample()
        back = target_fds is None or sample.fds <= target_fds + FD_SLACK
        if (sample.fds == previous.fds and back) or time.monotonic() > deadline:
            return sample
        previous = sample


def verdicts(f: dict[str, Any]) -> dict[str, bool]:
    p99_first, p99_last = f["p99_first_third_ms"], f["p99_last_third_ms"]
    return {
        "no request failed": f["errors"] == 0 and f["not_sent"] == 0 and f["ok"] > 0,
        f"RSS growth ≤ {RSS_GROWTH_BOUND_MB:g} MB": f["rss_growth_mb"] is not None
        and f["rss_growth_mb"] <= RSS_GROWTH_BOUND_MB,
        "open files back to the count before": abs(f["fds_after"] - f["fds_before"]) <= FD_SLACK,
        "processes back to the count before, none replaced": f["processes_after"] == f["processes_before"]
        and f["processes_during"] == [f["processes_before"]] and f["same_processes"],
        f"p99 of the last third ≤ {P99_FACTOR:g}× the first": p99_first is not None and p99_last is not None
        and p99_last <= P99_FACTOR * p99_first,
        "no process left": not f["leftover_processes"],
    }


def _by_process(f: dict[str, Any]) -> str:
    return ", ".join(f"{name.split('-')[0]} {mb:g} / {f['rss_growth_by_process_mb'].get(name, 0):+g}"
                     for name, mb in f["rss_by_process_mb"].items())


def markdown(f: dict[str, Any], command: str) -> str:
    kept = verdicts(f)
    gen = ("the load generator kept up" if not f["generator_limited"]
           else f"**the load generator was the limit**: {f['generator_message']}")
    cap = (f"{f['capacity_rps']:g} req/s measured (step search)" if f["capacity_measured"]
           else f"{f['capacity_rps']:g} req/s nominal")
    rows = [
        ("load", f"{f['rate_rps']:g} req/s Poisson for {f['seconds'] / 60:g} min",
         f"{LOAD_FRACTION:.0%} of capacity, {cap}; {gen}"),
        ("answered / failed", f"{f['ok']:,} / {f['errors']} (not sent: {f['not_sent']})",
         f"throughput {f['throughput_rps']:g} req/s"),
        ("latency p50 / p99 (whole run)", f"{f['latency_p50_ms']} / {f['latency_p99_ms']} ms", ""),
        ("p99 first third / last third", f"{f['p99_first_third_ms']} / {f['p99_last_third_ms']} ms",
         f"bound: last ≤ {P99_FACTOR:g}× first; median of {WINDOW_MS / 1e3:g} s window p99s "
         f"{f['window_p99_median_first_ms']} / {f['window_p99_median_last_ms']} ms"),
        ("RSS server + worker: idle / first third / last third / max",
         f"{f['rss_before_mb']} / {f['rss_first_third_mb']} / {f['rss_last_third_mb']} / {f['rss_max_mb']} MB",
         f"growth {f['rss_growth_mb']} MB (by process, MB now / growth: {_by_process(f)}), bound "
         f"{RSS_GROWTH_BOUND_MB:g} MB; medians of the samples after a {f['warmup_s']:g} s warm-up"),
        ("open files before / max during / after", f"{f['fds_before']} / {f['fds_max_during']} / {f['fds_after']}",
         f"after = once the load's connections closed; slack {FD_SLACK}"),
        ("processes before / during / after", f"{f['processes_before']} / {f['processes_during']} / "
         f"{f['processes_after']}", f"same pids throughout: {f['same_processes']}; threads "
         f"{f['threads_before']} → {f['threads_after']}"),
    ]
    table = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    promises = "\n".join(f"- {name}: **{'kept' if ok else 'NOT kept'}**" for name, ok in kept.items())
    return f"""## Soak

Command: `{command}` ({time.strftime('%Y-%m-%d')}). Service: {f['service']}. Load: the real load generator
(`workbench.load`, one process, binary tensors) over HTTP; the server tree (server + worker) sampled every
{f['sample_s']:g} s ({f['samples']} samples): RSS, open files, threads, processes. The machine's 2 cores are
shared with other engineers' work during the run (load average (1, 5, 15 min) before {f['load_average'][:3]},
after {f['load_average'][3:]}), so latency figures are noisy.

| figure | value | note |
|---|---|---|
{table}

Promises:
{promises}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the steady load")
    parser.add_argument("--warmup-s", type=float, default=60.0, help="leading seconds not counted for growth")
    parser.add_argument("--sample-s", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--markdown", type=Path, help="write the '## Soak' section into this Markdown file")
    parser.add_argument("--json", type=Path, help="write every figure as JSON here")
    args = parser.parse_args(argv)
    figures = run_soak(seconds=args.minutes * 60, warmup_s=args.warmup_s, sample_s=args.sample_s)
    command = "python -m benchmarks.reliability.soak " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(figures, command.strip())
    print(text)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    if args.markdown:
        from benchmarks.markdown import write_section

        write_section(args.markdown, text, title="# Reliability")
    return 0 if all(verdicts(figures).values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
