"""The HTTP benchmark's figures: medians over rounds, the target checks, and the "## HTTP API" section of
``docs/performance.md`` (setup, results table, targets table, notes), written by ``http_bench --markdown``."""

from __future__ import annotations

from typing import Any

TARGETS = {"json_ratio": 2.0, "binary_ratio": 3.0, "cpu_ms_per_request": 0.2}

LABELS = {"workbench-json": "workbench, JSON", "workbench-binary": "workbench, binary tensors",
          "fastapi": "FastAPI (no batching)", "litserve-1": "LitServe, 1 worker", "litserve-2": "LitServe, 2 workers",
          "ray-1": "Ray Serve, 1 replica", "ray-2": "Ray Serve, 2 replicas"}

CLOSED_KEYS = ("rps", "p50_ms", "p99_ms", "cpu_ms_per_request", "generator_cpu_us_per_request")


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def combine(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One system's rounds → medians of every figure (and the per-round open-loop rates)."""
    closed = {c: {k: median([r["closed"][c][k] for r in rounds]) for k in CLOSED_KEYS} for c in (1, 8, 32)}
    rates = [r["open"]["rate"] for r in rounds]
    generator = [t["generator_cpu_us_per_request"] for r in rounds for t in r["open"]["trials"]]
    return {"system": rounds[0]["system"], "cold_start_s": median([r["cold_start_s"] for r in rounds]),
            "closed": closed, "open": {"rate": median(rates), "rates": rates,
                                       "lower_bound": any(r["open"].get("lower_bound") for r in rounds),
                                       "generator_cpu_us_per_request": median(generator) if generator else None}}


def checks(results: list[dict[str, Any]], rounds: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The targets. Throughput ratios are taken within each round (workbench / that round's best peer),
    then their median is the result."""
    by = {r["system"]: r for r in results}
    peers = [s for s in rounds if not s.startswith("workbench")]
    out: dict[str, Any] = {}
    n = min(len(v) for v in rounds.values())
    if peers:
        best = [max(peers, key=lambda s: rounds[s][i]["open"]["rate"]) for i in range(n)]
        out["best_peer_each_round"] = best
        for system, key in (("workbench-json", "json_ratio"), ("workbench-binary", "binary_ratio")):
            if system in rounds:
                ratios = [rounds[system][i]["open"]["rate"] / max(1e-9, rounds[best[i]][i]["open"]["rate"])
                          for i in range(n)]
                value = median(ratios)
                out[key] = {"value": round(value, 2), "each_round": [round(x, 2) for x in ratios],
                            "target": TARGETS[key], "met": value >= TARGETS[key]}
    if "workbench-json" in by:
        cpu = by["workbench-json"]["closed"][32]["cpu_ms_per_request"]
        out["cpu_ms_per_request"] = {"value": cpu, "target": TARGETS["cpu_ms_per_request"],
                                     "met": cpu <= TARGETS["cpu_ms_per_request"]}
        if "workbench-binary" in by:
            out["cpu_ms_per_request"]["binary"] = by["workbench-binary"]["closed"][32]["cpu_ms_per_request"]
    return out


def _results_table(results: list[dict[str, Any]], slo_ms: float) -> list[str]:
    lines = [f"| system | max open-loop rate, p99 ≤ {slo_ms:g} ms: median (each round) | c=1 req/s (p50/p99 ms) | "
             "c=8 req/s (p50/p99 ms) | c=32 req/s (p50/p99 ms) | server CPU/request at c=32 | cold start |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        c, o = r["closed"], r["open"]
        cells = [f"{c[k]['rps']:.0f} ({c[k]['p50_ms']:.2f}/{c[k]['p99_ms']:.1f})" for k in (1, 8, 32)]
        bound = " (a lower bound: the generator was the limit)" if o.get("lower_bound") else ""
        per_round = ", ".join(f"{x:.0f}" for x in o["rates"])
        workbench = r["system"].startswith("workbench")
        rate, cpu = f"{o['rate']:.0f}", f"{c[32]['cpu_ms_per_request']:.3f} ms"
        if workbench:
            rate, cpu = f"**{rate}**", f"**{cpu}**"
        lines.append(f"| {LABELS.get(r['system'], r['system'])} | {rate} ({per_round}){bound} | {' | '.join(cells)} "
                     f"| {cpu} | {r['cold_start_s']:.1f} s |")
    return lines


def _targets_table(found: dict[str, Any]) -> list[str]:
    lines = ["| target | result | each round | met |", "|---|---|---|---|"]
    names = {"json_ratio": "JSON ≥ 2× the best peer's open-loop rate",
             "binary_ratio": "binary tensors ≥ 3× the best peer's open-loop rate"}
    for key, name in names.items():
        if key in found:
            v = found[key]
            rounds = ", ".join(f"{x:.2f}×" for x in v["each_round"])
            lines.append(f"| {name} | **{v['value']:.2f}×** | {rounds} | {'yes' if v['met'] else '**no**'} |")
    if "cpu_ms_per_request" in found:
        v = found["cpu_ms_per_request"]
        binary = f" (binary: {v['binary']:.3f} ms)" if "binary" in v else ""
        lines.append(f"| server CPU per request ≤ 0.2 ms (JSON, c=32) | **{v['value']:.3f} ms**{binary} | | "
                     f"{'yes' if v['met'] else '**no**'} |")
    return lines


def markdown(results: list[dict[str, Any]], rounds: dict[str, list[dict[str, Any]]], found: dict[str, Any],
             context: dict[str, Any]) -> str:
    """The whole "## HTTP API" section. ``context``: command, date, versions, load averages, settings."""
    systems = [r["system"] for r in results]
    ray_note = ("Ray Serve 2.60 (`@serve.batch` 32 / 5 ms, `max_ongoing_requests=64`, 1 and 2 replicas with "
                "1 CPU each, its own HTTP proxy on 127.0.0.1, a fresh local Ray without the dashboard UI started "
                "for each system); " if any(s.startswith("ray") for s in systems) else "")
    text = [
        "## HTTP API", "",
        f"Command: `{context['command']}` ({context['date']}, Python {context['python']}, torch {context['torch']}, "
        f"{context['cpus']} cores shared with the load generator and with whatever else ran: load average "
        f"{context['load_start']:.1f} at the start, {context['load_end']:.1f} at the end). Reference MLP "
        "784-1024-1024-10 (fp32, seeded), one 784-float sample per request, HTTP/1.1 keep-alive, one load "
        f"generator (`workbench.load`, {context['generator_processes']} process(es), its lean keep-alive "
        "client on raw asyncio + httptools, latency from each request's intended send time) on the same "
        "machine. Each system runs in its own process tree, one after the other, "
        f"{context['rounds']} round(s) with the order rotated; figures are medians over the rounds. workbench: "
        "`workbench serve` with one worker (1 intra-op thread), batching up to 32 rows, "
        f"`max_delay_ms={context['max_delay_ms']:g}`, driven with JSON bodies or with the binary tensor "
        "extension. Peers (see `benchmarks/http_peers.py`, one torch thread per process, all fed the same "
        "OIP v2 JSON body): plain FastAPI on uvicorn, no batching, the model run in the handler, "
        f"`request.json()`; LitServe with batching 32 / 5 ms, 1 and 2 workers; {ray_note}"
        f"peers' versions: {context['peer_versions']}. Closed loop: 1, 8 and 32 clients, "
        f"{context['duration_s']:g} s each after a 1 s warm-up. Open loop: Poisson arrivals, "
        f"{context['open_duration_s']:g} s per trial, the rate raised by 1.2× until two trials in a row miss "
        f"p99 ≤ {context['slo_ms']:g} ms or have errors (a trial in which the generator itself fell behind is "
        "run again once). Server CPU per request = CPU time of the server's whole process tree over the run / "
        "answers: for workbench its HTTP process and worker; for LitServe its server and workers; for Ray "
        "everything the local Ray node runs (driver, GCS, raylet, dashboard head and agents, log monitor, "
        "Serve controller, HTTP proxy, replicas), as a Ray user on one machine pays for all of it.", "",
        *_results_table(results, context["slo_ms"]), "",
    ]
    if found.get("best_peer_each_round"):
        best = found["best_peer_each_round"]
        who = (f"the best peer was {LABELS.get(best[0], best[0])} in every round" if len(set(best)) == 1
               else "the best peer each round: " + ", ".join(LABELS.get(b, b) for b in best))
        text += [f"Targets ({who}; ratios taken within each round, then the median):", "", *_targets_table(found), ""]
    elif "cpu_ms_per_request" in found:
        text += ["Targets (no peer in this run):", "", *_targets_table(found), ""]
    generator = {r["system"]: r["open"]["generator_cpu_us_per_request"] for r in results}
    notes = ["Notes (generated from this run):", ""]
    shown = ", ".join(f"{LABELS.get(s, s)} {v:.0f} µs" for s, v in generator.items() if v is not None)
    if shown:
        notes.append(f"- The load generator's own CPU per request (its event-loop thread, median over the open-loop "
                     f"trials): {shown}.")
    limited = [LABELS.get(r["system"], r["system"]) for r in results if r["open"].get("lower_bound")]
    if limited:
        notes.append(f"- The generator was the limit for {', '.join(limited)}: those maxima are lower bounds.")
    ray = [r for r in results if r["system"].startswith("ray")]
    if ray:
        starts = ", ".join(f"{r['cold_start_s']:.0f} s" for r in ray)
        notes.append("- Ray's cold start is starting a local Ray node and Serve and deploying the model "
                     f"({starts}); on a running cluster only the "
                     "deployment is paid. Its CPU per request includes the node's background work over the run.")
    return "\n".join(text + notes) + "\n"


__all__ = ["LABELS", "TARGETS", "checks", "combine", "markdown", "median"]
