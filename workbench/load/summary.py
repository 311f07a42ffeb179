"""A load run's figures (exact whole-run percentiles, rates, errors, the generator's verdict) and its
context (what a run record keeps about the circumstances of the run)."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from workbench.load.messages import Done
from workbench.load.schedules import Closed, OpenLoop, Schedule
from workbench.load.targets import HttpTarget, InProcessTarget
from workbench.telemetry.histogram import LatencyHistogram
from workbench.telemetry.runs import environment
from workbench.telemetry.window import Window

log = logging.getLogger(__name__)

#: a generator whose event loop used more than this share of a core was the limit
MAX_GENERATOR_CPU = 0.9


def _stats(prefix: str, hist: LatencyHistogram) -> dict[str, Any]:
    return {f"{prefix}_{k}": v for k, v in hist.stats().to_dict().items()}


def summarize(*, dones: Sequence[Done], windows: Sequence[Window], schedule: Schedule, duration_s: float,
              max_lag_ms: float) -> dict[str, Any]:
    """The run's summary: a flat dict of plain values (the run record's ``summary.json``)."""
    latency = LatencyHistogram.merged(d.latency for d in dones)
    lag = LatencyHistogram.merged(d.lag for d in dones)
    errors: Counter[str] = Counter()
    for d in dones:
        errors.update(d.errors)
    sent, ok = sum(d.sent for d in dones), sum(d.ok for d in dones)
    t0 = min((d.t0 for d in dones), default=0.0)
    completions = [d.last_completion for d in dones if d.last_completion is not None]
    stopped_early = any(d.stopped_early for d in dones)
    elapsed = (max(completions) - t0) if completions else duration_s
    if not stopped_early:  # the schedule's length, or longer if answers came after its end
        elapsed = max(elapsed, duration_s)
    firsts = [d.first_send for d in dones if d.first_send is not None]
    lasts = [d.last_send for d in dones if d.last_send is not None]
    span = (max(lasts) - min(firsts)) if firsts and lasts else 0.0
    out: dict[str, Any] = {
        "schedule": schedule.describe(),
        "target_rps": round(schedule.mean_rate(duration_s), 3) if isinstance(schedule, OpenLoop) else None,
        "concurrency": schedule.concurrency if isinstance(schedule, Closed) else None,
        "duration_s": duration_s,
        "elapsed_s": round(elapsed, 4),
        "processes": len(dones),
        "sent": sent,
        "ok": ok,
        "errors": sum(errors.values()),
        "errors_by_kind": dict(sorted(errors.items())),
        "error_rate": round(sum(errors.values()) / sent, 6) if sent else 0.0,
        "not_sent": sum(d.not_sent for d in dones),
        "throughput_rps": round(ok / elapsed, 3) if elapsed > 0 else 0.0,
        "send_rate_rps": round((sent - 1) / span, 3) if sent > 1 and span > 0 else None,
        "stopped_early": stopped_early,
        "windows": len(windows),
        **_stats("latency", latency),
    }
    out.update(_generator_verdict(dones, lag, max_lag_ms, latency))
    out.update(_server_side(windows))
    return out


def _generator_verdict(dones: Sequence[Done], lag: LatencyHistogram, max_lag_ms: float,
                       latency: LatencyHistogram) -> dict[str, Any]:
    """Was the generator the limit? Yes if it sent late by more than ``max_lag_ms`` *and* by more than a
    tenth of the p99 latency (so its own delay, counted in the latencies, matters), or if its event loop
    was busy nearly all the time. A brief lag while a stalled server's backlog answers is not enough."""
    lag_p99_ms = lag.percentile(99) * 1e3 if lag.count else 0.0
    latency_p99_ms = latency.percentile(99) * 1e3 if latency.count else 0.0
    cpu = max((d.cpu_s / (d.ended_at - d.t0) for d in dones if d.ended_at > d.t0), default=0.0)
    ceiling = sum(d.sent / d.cpu_s for d in dones if d.cpu_s > 0 and d.sent >= 50)
    reasons = []
    if lag_p99_ms > max_lag_ms and lag_p99_ms > 0.1 * latency_p99_ms:
        reasons.append(f"it fell behind its schedule (send lag p99 {lag_p99_ms:.1f} ms, more than {max_lag_ms:g} ms "
                       f"and {lag_p99_ms / latency_p99_ms if latency_p99_ms else 1:.0%} of the latency p99)")
    if cpu >= MAX_GENERATOR_CPU:
        reasons.append(f"its event loop used {cpu:.0%} of a core")
    message = ""
    if reasons:
        message = ("this run was limited by the load generator, not by the server: " + " and ".join(reasons)
                   + (f"; it manages about {ceiling:,.0f} requests/s here" if ceiling else "")
                   + ". Spread the load over more generator processes (processes=N, --processes N) or lower the rate.")
    return {
        "generator_lag_p99_ms": round(lag_p99_ms, 3),
        "generator_lag_max_ms": round(lag.max_s * 1e3, 3),
        "generator_cpu": round(cpu, 4),
        "generator_ceiling_rps": round(ceiling, 1) if ceiling else None,
        "generator_limited": bool(reasons),
        "generator_message": message,
    }


def _server_side(windows: Sequence[Window]) -> dict[str, Any]:
    served = [w for w in windows if w.server_requests]
    if not served:
        return {}
    out: dict[str, Any] = {"server_requests": sum(w.server_requests for w in served)}
    errors: Counter[str] = Counter()
    batches: Counter[int] = Counter()
    busy: dict[str, list[float]] = {}
    for w in served:
        errors.update(w.server_errors)
        batches.update(w.batch_sizes)
        for worker, fraction in w.worker_busy.items():
            busy.setdefault(worker, []).append(fraction)
    out["server_errors_by_kind"] = dict(sorted(errors.items()))
    for name in ("server_latency", "queue_time", "compute_time"):
        encoded = [w.histograms[name] for w in served if name in w.histograms]
        if encoded:
            out.update(_stats(name, LatencyHistogram.merged(encoded)))
    n_batches = sum(batches.values())
    out["mean_batch_size"] = round(sum(k * v for k, v in batches.items()) / n_batches, 3) if n_batches else None
    out["max_queue_depth"] = max((sum(w.queue_depth.values()) for w in windows), default=0)
    out["worker_busy"] = {k: round(sum(v) / len(windows), 4) for k, v in sorted(busy.items())}
    return out


def run_context(*, target: HttpTarget | InProcessTarget, schedule: Schedule, info: dict[str, Any],
                variants: list[str], started_wall: float, settings: dict[str, Any],
                user: dict[str, Any]) -> dict[str, Any]:
    """Model, variant, serve config, target, schedule, run settings, versions and machine of a run."""
    context: dict[str, Any] = {
        "kind": "load_run",
        "model": target.model,
        "variant": info.get("variant") or (variants[0] if len(variants) == 1 else (variants or None)),
        "serve_config": info.get("serve_config"),
        "target": target.to_dict(),
        "target_info": info,
        "schedule": schedule.to_dict(),
        **settings,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started_wall)),
        "started_wall_time": started_wall,
        **environment(),
    }
    if isinstance(target, InProcessTarget) and hasattr(target.server, "stats"):
        try:
            context["server_stats"] = target.server.stats().get(target.model)
        except Exception:  # a stats failure must not lose the run record
            log.exception("server.stats() failed")
    context.update(user)
    return context


__all__ = ["run_context", "summarize"]
