"""Overload benchmark: ten times the service's capacity, end to end over HTTP.

The service is ``workbench serve`` of a slow test double (see :mod:`benchmarks.reliability.served`):
one worker, batches of at most 4 rows that each take 20 ms, a queue bounded at 32 rows. First its
capacity is measured (the highest constant open-loop rate it sustains, a short step search with the
real load generator); then one load run offers half that for ``--pre-s`` seconds, ten times it for
``--seconds``, and half again for ``--post-s``. Meanwhile a sampler reads the RSS of the server and its
worker every 0.5 s, and a probe on its own connection sends a request every 20 ms and times every
answer, refusals included (the generator counts refusals but does not time them), and reads their
``Retry-After`` header.

Promised: accepted requests stay within the latency bound the config implies (the queue ahead of a
request, the batch on the worker and its own batch, each 25 % over its nominal time for the double's
sleep overshoot under contention, plus 100 ms for HTTP, the pipes and the load
generator's own lag on a shared machine), and the server's own queue-time histogram (its ``/metrics``)
shows their queue wait within its bound (the batches ahead, plus the same allowance); every other request is refused with 503 and ``Retry-After``,
its p99 under ``REFUSAL_BOUND_MS``; the server tree's RSS grows by at most ``RSS_BOUND_MB``; and the
first or second 500 ms window after the overload is back at normal latency, nothing refused from then on.

Run: ``.venv/bin/python -m benchmarks.reliability.overload [--seconds 30] [--rounds 3]
[--markdown docs/reliability.md] [--json out.json]``: ``--rounds`` independent rounds (a fresh server each); the
section shows every round and the median round in detail, and counts a promise kept when most rounds kept it. ``tests/reliability/test_overload.py`` runs the same code for a few seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.reliability.served import (
    BATCH_OVERSHOOT,
    TRANSPORT_ALLOWANCE_MS,
    Probe,
    ServedProcess,
    SlowService,
    TreeSampler,
    bucket_percentile_ms,
    find_capacity,
    load_run,
    percentile_ms,
)

OVERLOAD_FACTOR = 10.0
NORMAL_FRACTION = 0.5
WINDOW_MS = 500.0
#: a refusal's p99 (probe, client side) must stay under this: well under one 20 ms batch plus HTTP
REFUSAL_BOUND_MS = 25.0
#: the server tree's RSS may grow by at most this much from before the overload to its peak during it
RSS_BOUND_MB = 32.0
#: the capacity search's steps, as fractions of the nominal capacity
CAPACITY_FRACTIONS = (0.5, 0.7, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1)
#: "at once": back at normal latency within this many windows after the overload ends
RECOVERY_WINDOWS = 2
#: a window is at normal latency when its p99 is within this factor of the worst window before overload
NORMAL_FACTOR = 1.5


def run_overload(*, seconds: float = 30.0, pre_s: float = 5.0, post_s: float = 5.0, capacity_step_s: float = 2.0,
                 capacity_fractions: tuple[float, ...] = CAPACITY_FRACTIONS, service: SlowService | None = None,
                 folder: Path | None = None) -> dict[str, Any]:
    """Measure capacity, then overload the service ``OVERLOAD_FACTOR`` times for ``seconds``; the figures."""
    from workbench.telemetry.histogram import LatencyHistogram

    service = service or SlowService()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp, ServedProcess(service, folder or Path(tmp)) as served:
        capacity = find_capacity(served, step_s=capacity_step_s, fractions=capacity_fractions)
        cap = capacity["capacity_rps"] or service.nominal_rps
        normal, offered = NORMAL_FRACTION * cap, OVERLOAD_FACTOR * cap
        schedule = _phases(normal, offered, pre_s, seconds, post_s)
        with TreeSampler(served, interval_s=0.5, scrape=True) as sampler, Probe(served, interval_s=0.02) as probe:
            run = load_run(served, schedule, pre_s + seconds + post_s, window_ms=WINDOW_MS)
        leftover = served.stop()
    t0 = run.t0
    over0, over1 = pre_s, pre_s + seconds
    windows = run.windows
    pre = [w for w in windows if WINDOW_MS / 1e3 <= w.start_s and w.end_s <= over0]
    during = [w for w in windows if over0 <= w.start_s and w.end_s <= over1]
    after = [w for w in windows if w.start_s >= over1 and w.end_s <= over1 + post_s]
    accepted = LatencyHistogram.merged(w.histograms["latency"] for w in during if "latency" in w.histograms)
    every_ok = LatencyHistogram.merged(w.histograms["latency"] for w in windows if "latency" in w.histograms)
    refused = sum(w.errors.get("overloaded", 0) for w in during)
    other_errors = {k: v for w in windows for k, v in w.errors.items() if k != "overloaded"}
    probes = probe.between(t0 + over0 + 0.5, t0 + over1)  # settled overload
    probe_503 = [r for r in probes if r.status == 503]
    probe_200 = [r for r in probes if r.status == 200]
    base = sampler.between(t0, t0 + over0)
    peak = sampler.between(t0 + over0, t0 + over1 + 1.0)
    rss_before = max(s.rss_mb for s in base) if base else sampler.samples[0].rss_mb
    rss_peak = max(s.rss_mb for s in peak) if peak else rss_before
    cpu = [s for s in sampler.samples if t0 + over0 <= s.t <= t0 + over1]
    cpu_share = ((cpu[-1].server_cpu_s - cpu[0].server_cpu_s) / (cpu[-1].t - cpu[0].t)
                 if len(cpu) >= 2 and cpu[-1].t > cpu[0].t else None)
    q_before = next((s.queue_buckets for s in reversed(base) if s.queue_buckets), None)
    q_after = next((s.queue_buckets for s in sampler.between(t0 + over1, t0 + over1 + 1.0) if s.queue_buckets), None)
    queue_p99_ms, queued = bucket_percentile_ms(q_before, q_after, 99)
    queue_max_ms, _ = bucket_percentile_ms(q_before, q_after, 100)
    normal_p99 = max((w.latency.p99_ms for w in pre if w.latency is not None), default=None)
    recovery = _recovery(after, normal_p99)
    summary = run.summary()
    sent_during = sum(w.sent for w in during)
    figures: dict[str, Any] = {
        "service": service.describe(),
        "nominal_rps": service.nominal_rps,
        "batch_ms": service.batch_ms,
        "capacity": capacity,
        "capacity_rps": cap,
        "normal_rps": normal,
        "offered_rps": offered,
        "seconds": seconds,
        "sent_rps_during": round(sent_during / seconds, 1),
        "accepted_rps_during": round(sum(w.ok for w in during) / seconds, 1),
        "refused_during": refused,
        "refused_share": round(refused / sent_during, 4) if sent_during else None,
        "other_errors": other_errors,
        "latency_bound_ms": service.latency_bound_ms,
        "queue_bound_ms": service.queue_bound_ms,
        "batch_time_ms": round(service.max_batch_size * seconds * 1e3 / max(1, sum(w.ok for w in during)), 2),
        "server_queue_p99_ms": queue_p99_ms,
        "server_queue_max_ms": queue_max_ms,
        "server_queue_counted": queued,
        "accepted_p50_ms": round(accepted.percentile(50) * 1e3, 2) if accepted.count else None,
        "accepted_p99_ms": round(accepted.percentile(99) * 1e3, 2) if accepted.count else None,
        "accepted_max_ms": round(accepted.max_s * 1e3, 2) if accepted.count else None,
        "window_p99_median_ms": percentile_ms([w.latency.p99_ms / 1e3 for w in during if w.latency], 50),
        "window_p99_worst_ms": max((w.latency.p99_ms for w in during if w.latency), default=None),
        "all_ok_p99_ms": round(every_ok.percentile(99) * 1e3, 2) if every_ok.count else None,
        "refusal_bound_ms": REFUSAL_BOUND_MS,
        "probe_503": len(probe_503),
        "probe_statuses": dict(sorted(Counter(r.status for r in probes).items())),
        "probe_errors": dict(probe.errors),
        "probe_200": len(probe_200),
        "probe_other": len(probes) - len(probe_503) - len(probe_200),
        "refusal_p50_ms": percentile_ms([r.latency_s for r in probe_503], 50),
        "refusal_p99_ms": percentile_ms([r.latency_s for r in probe_503], 99),
        "refusal_max_ms": percentile_ms([r.latency_s for r in probe_503], 100),
        "retry_after_values": sorted({r.retry_after for r in probe_503}, key=str),
        "refusals_without_retry_after": sum(1 for r in probe_503 if not r.retry_after),
        "rss_bound_mb": RSS_BOUND_MB,
        "rss_before_mb": round(rss_before, 1),
        "rss_peak_mb": round(rss_peak, 1),
        "rss_growth_mb": round(rss_peak - rss_before, 1),
        "rss_samples": len(sampler.samples),
        "server_cpu_share_during": None if cpu_share is None else round(cpu_share, 3),
        "server_cpu_ms_per_request": None if cpu_share is None or not sent_during
        else round(cpu_share * seconds / sent_during * 1e3, 3),
        "load_average": [round(x, 1) for x in load_before + os.getloadavg()],
        "normal_p99_ms": normal_p99,
        **recovery,
        "generator_limited": summary["generator_limited"],
        "generator_message": summary["generator_message"],
        "generator_lag_p99_ms": summary["generator_lag_p99_ms"],
        "generator_cpu": summary["generator_cpu"],
        "leftover_processes": leftover,
        "windows": [_row(w) for w in windows],
    }
    return figures


def _phases(normal: float, offered: float, pre_s: float, seconds: float, post_s: float) -> Any:
    """A Step schedule of 0.5 s slices: ``normal`` for ``pre_s``, ``offered`` for ``seconds``, then ``normal``."""
    from workbench.load import Step

    slice_s = 0.5
    rates = ([normal] * round(pre_s / slice_s) + [offered] * round(seconds / slice_s)
             + [normal] * max(1, round(post_s / slice_s)))
    return Step(rates=tuple(rates), step_s=slice_s)


def _recovery(after: list[Any], normal_p99: float | None) -> dict[str, Any]:
    """When the service was back after the overload: the first window from which on nothing is refused or
    fails (``clean_in_windows``), and the first such window whose p99 is also within ``NORMAL_FACTOR`` ×
    the worst window before the overload (``recovered_in_windows``)."""
    limit = NORMAL_FACTOR * normal_p99 if normal_p99 else None
    clean = next((k for k in range(len(after)) if not any(w.errors for w in after[k:])), None)
    first = None
    if clean is not None and limit is not None:
        first = next((k for k in range(clean, len(after))
                      if after[k].latency is not None and after[k].latency.p99_ms <= limit), None)
    sent, ok = sum(w.sent for w in after), sum(w.ok for w in after)
    return {"recovery_limit_ms": round(limit, 2) if limit else None,
            "clean_in_windows": None if clean is None else clean + 1,
            "recovered_in_windows": None if first is None else first + 1,
            "recovered_within_s": None if first is None else round((first + 1) * WINDOW_MS / 1e3, 2),
            "after_sent": sent, "after_ok": ok,
            "after_p99_ms": [w.latency.p99_ms if w.latency else None for w in after]}


def _row(w: Any) -> dict[str, Any]:
    return {"start_s": round(w.start_s, 2), "sent": w.sent, "ok": w.ok, "errors": dict(w.errors),
            "p99_ms": w.latency.p99_ms if w.latency else None}


def verdicts(f: dict[str, Any]) -> dict[str, bool]:
    """Each promise: kept or not."""
    return {
        "accepted p99 within the latency bound": f["accepted_p99_ms"] is not None
        and f["accepted_p99_ms"] <= f["latency_bound_ms"],
        "server-side queue wait p99 within its bound + the allowance": f["server_queue_p99_ms"] is not None
        and f["server_queue_p99_ms"] <= f["queue_bound_ms"] + TRANSPORT_ALLOWANCE_MS,
        "the rest refused (503), no other error": f["refused_during"] > 0 and not f["other_errors"],
        "refusals fast (p99)": f["refusal_p99_ms"] is not None and f["refusal_p99_ms"] <= REFUSAL_BOUND_MS,
        "every refusal carries Retry-After": f["probe_503"] > 0 and f["refusals_without_retry_after"] == 0,
        "RSS bounded": f["rss_growth_mb"] <= RSS_BOUND_MB,
        "recovered at once": f["recovered_in_windows"] is not None and f["recovered_in_windows"] <= RECOVERY_WINDOWS,
        "no process left": not f["leftover_processes"],
    }


def _rounds_table(rounds: list[dict[str, Any]]) -> str:
    head = ("| round | capacity req/s | accepted p50 / p99 ms | server queue p99 ms (bucket) | refusal p99 ms "
            "| other errors | RSS growth MB | recovered in windows | generator send lag p99 ms | load average "
            "before → after (1 min) |\n|---|---|---|---|---|---|---|---|---|---|")
    lines = [f"| {i + 1} | {r['capacity_rps']:g} | {r['accepted_p50_ms']} / {r['accepted_p99_ms']} | "
             f"≤ {r['server_queue_p99_ms']} | {r['refusal_p99_ms']} | {sum(r['other_errors'].values())} | "
             f"{r['rss_growth_mb']} | {r['recovered_in_windows']} | {r['generator_lag_p99_ms']} | "
             f"{r['load_average'][0]} → {r['load_average'][3]} |" for i, r in enumerate(rounds)]
    return "\n".join([head, *lines])


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round whose accepted p99 is the median of the rounds (the one the detail table shows)."""
    ranked = sorted(rounds, key=lambda r: float("inf") if r["accepted_p99_ms"] is None else r["accepted_p99_ms"])
    return ranked[(len(ranked) - 1) // 2]


def markdown(rounds: list[dict[str, Any]], command: str) -> str:
    f = median_round(rounds)
    kept_by_round = [verdicts(r) for r in rounds]
    kept = {name: sum(v[name] for v in kept_by_round) for name in kept_by_round[0]}
    gen = ("the load generator kept up (not the limit)" if not f["generator_limited"]
           else f"**the load generator was the limit**: {f['generator_message']}")
    steps = ", ".join(f"{s['rate']:g} ({'ok' if s['ok'] else 'no'})" for s in f["capacity"]["steps"])
    rows = [
        ("capacity (highest sustained constant rate)", f"{f['capacity_rps']:g} req/s (nominal {f['nominal_rps']:g})",
         "step search: " + steps),
        ("offered during overload", f"{f['offered_rps']:g} req/s for {f['seconds']:g} s",
         f"sent {f['sent_rps_during']:g} req/s; {gen}"),
        ("accepted", f"{f['accepted_rps_during']:g} req/s", ""),
        ("accepted latency p50 / p99 / max", f"{f['accepted_p50_ms']} / {f['accepted_p99_ms']} / "
         f"{f['accepted_max_ms']} ms", f"bound {f['latency_bound_ms']:g} ms; per {WINDOW_MS:g} ms window p99: median "
         f"{f['window_p99_median_ms']}, worst {f['window_p99_worst_ms']} ms"),
        ("server side: queue wait of accepted requests, p99 / max", f"≤ {f['server_queue_p99_ms']} / ≤ "
         f"{f['server_queue_max_ms']} ms", f"(⌈max_queue / max_batch_size⌉ + 1) × {f['batch_ms']:g} ms × {BATCH_OVERSHOOT:g} = "
         f"{f['queue_bound_ms']:g} ms "
         f"(+ {TRANSPORT_ALLOWANCE_MS:g} ms allowance); upper bounds of the server's own histogram buckets "
         f"(/metrics), {f['server_queue_counted']:,} requests; measured batch time "
         f"{f['batch_time_ms']} ms (4 rows / accepted rate)"),
        ("refused (503)", f"{f['refused_during']:,} ({f['refused_share']:.0%} of sent)",
         f"other errors: {f['other_errors'] or 'none'}"),
        ("refusal latency p50 / p99 / max (probe)", f"{f['refusal_p50_ms']} / {f['refusal_p99_ms']} / "
         f"{f['refusal_max_ms']} ms", f"bound p99 {REFUSAL_BOUND_MS:g} ms; {f['probe_503']} refusals timed"),
        ("Retry-After on refusals", f"{f['probe_503'] - f['refusals_without_retry_after']} / {f['probe_503']}",
         f"values: {', '.join(map(str, f['retry_after_values']))} s"),
        ("server + worker RSS before / peak", f"{f['rss_before_mb']} / {f['rss_peak_mb']} MB",
         f"growth {f['rss_growth_mb']} MB, bound {RSS_BOUND_MB:g} MB ({f['rss_samples']} samples)"),
        ("server process CPU during overload", f"{f['server_cpu_share_during']} of a core",
         f"{f['server_cpu_ms_per_request']} ms per request sent; load average (1, 5, 15 min) before "
         f"{f['load_average'][:3]}, after {f['load_average'][3:]}"),
        ("recovery", f"{f['recovered_within_s']} s ({f['recovered_in_windows']} window(s) of {WINDOW_MS:g} ms)",
         f"p99 ≤ {f['recovery_limit_ms']} ms = {NORMAL_FACTOR:g}× the worst window before (normal p99 "
         f"{f['normal_p99_ms']} ms), and nothing refused or failed from then on; no refusal after "
         f"{f['clean_in_windows']} window(s)"),
    ]
    table = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    n = len(rounds)
    promises = "\n".join(f"- {name}: **{'kept' if 2 * k > n else 'NOT kept'}** ({k} of {n} rounds)"
                          for name, k in kept.items())
    return f"""## Overload

Command: `{command}` ({time.strftime('%Y-%m-%d')}).

Service: {f['service']}. Its capacity is kept small (≈ 200 req/s) so that ten times it is within one
load-generator process's reach on 2 cores. Load: the real load generator (`workbench.load`, one process, open
loop, latency from each request's intended send time) at {NORMAL_FRACTION:g}× capacity, then {OVERLOAD_FACTOR:g}×
for {f['seconds']:g} s, then {NORMAL_FRACTION:g}× again, in {WINDOW_MS:g} ms windows. A probe on its own
connection sends a request every 20 ms and times the refusals (the generator counts them but does not time
them) and reads their `Retry-After`; the RSS of the server and its worker, the server's CPU and its
`/metrics` are sampled every 0.5 s. The latency bound follows from the config: ⌈max_queue / max_batch_size⌉ + 2
batches (the queue ahead, the batch waiting in the worker's pipe, its own) of {f['batch_ms']:g} ms ×
{BATCH_OVERSHOOT:g} (the sleep's overshoot under contention: 25.6 ms at p99 for a 20 ms batch, measured from the
server's request records), + {TRANSPORT_ALLOWANCE_MS:g} ms for HTTP, the pipes and the generator's own send lag. The machine's 2 cores may be shared with other work (load average below): latency figures
are noisy, counts are not. {n} rounds, each with its own server, one after another:

{_rounds_table(rounds)}

The median round (by accepted p99) in detail:

| figure | value | note |
|---|---|---|
{table}

Promises (kept when kept in most rounds):
{promises}

Reading the figures: counts (refusals, `Retry-After`, errors, RSS, processes) do not depend on the machine;
latencies do. The server needs about a fifth of a core to turn away 2,000 requests/s, but when other work takes
both cores its event loop and its worker are descheduled for tens to hundreds of milliseconds: accepted
requests then wait longer than their batches alone explain, refusals queue behind the stall, and the load
generator's own send lag rises with them (the column above). A round at a load average well above 2 measures
the machine as much as the service.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the overload (s)")
    parser.add_argument("--pre-s", type=float, default=5.0, help="normal load before the overload (s)")
    parser.add_argument("--post-s", type=float, default=5.0, help="normal load after the overload (s)")
    parser.add_argument("--rounds", type=int, default=3, help="independent rounds (a server each)")
    parser.add_argument("--markdown", type=Path, help="write the '## Overload' section into this Markdown file")
    parser.add_argument("--json", type=Path, help="write every figure as JSON here")
    args = parser.parse_args(argv)
    rounds = [run_overload(seconds=args.seconds, pre_s=args.pre_s, post_s=args.post_s) for _ in range(args.rounds)]
    command = "python -m benchmarks.reliability.overload " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(rounds, command.strip())
    print(text)
    if args.json:
        args.json.write_text(json.dumps(rounds, indent=2, default=str))
    if args.markdown:
        from benchmarks.markdown import write_section

        write_section(args.markdown, text, title="# Reliability")
    kept = [verdicts(r) for r in rounds]
    return 0 if all(2 * sum(v[name] for v in kept) > len(kept) for name in kept[0]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
