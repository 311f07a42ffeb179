"""How the tuner measures a config: one warm local ``Server`` behind HTTP on 127.0.0.1, driven by
``LoadRun`` (the project's load generator), each run saved as a run record.

The server stays up between trials. A change of batch size, delay or routing applies live
(``reconfigure``); replicas, stages and threads roll new workers in (``reconfigure``: new workers start
and old ones drain, the HTTP endpoint stays); a new variant rolls in by ``swap_variant``. When both the
placement and the variant change, the server restarts with both at once (one set of new workers instead
of two). Measured here: a rolling replica change ≈ 1.6 s, a restart ≈ 1.8 s + HTTP, a live change < 1 ms.

A run is stopped early once it clearly violates the latency bound (see :class:`EarlyStop`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.tune.space import LIVE_KNOBS, SERVE_KNOBS, restart_key

log = logging.getLogger("workbench.tune")

#: a run stops early once more than this share of its answers took over twice the bound (a p95, not a
#: p99: one hiccup in a short window must not end a run)
CLEARLY = 0.05
#: share of requests that may fail (errors, refusals, not sent) while a config still "keeps up"
MAX_ERROR_SHARE = 0.01


@dataclass
class Measurement:
    """One load run at one rate."""

    rate: float
    duration_s: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    throughput: float = 0.0
    sent: int = 0
    errors: int = 0
    not_sent: int = 0
    stopped_early: bool = False
    reason: str = ""
    run_id: str | None = None
    load_s: float = 0.0
    generator_limited: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def meets(self, p99_ms: float) -> bool:
        """p99 within the bound, and (nearly) every request answered: the server kept up with the rate."""
        if self.stopped_early or self.p99_ms is None or self.sent == 0:
            return False
        failed = self.errors + self.not_sent
        return self.p99_ms <= p99_ms and failed <= MAX_ERROR_SHARE * self.sent


class EarlyStop:
    """Watches a run's windows and stops it once it clearly violates the bound: after ``min_windows``
    windows, more than 5% of the requests answered so far took over ``factor`` × the bound, or more requests
    are outstanding than the rate could have in flight at that latency (a queue growing: those slow
    requests have not answered yet, so the p99 does not show them), or errors pass 5%."""

    def __init__(self, run: Any, *, p99_ms: float, rate: float, factor: float = 2.0, min_windows: int = 2):
        from workbench.telemetry.histogram import LatencyHistogram

        self._hist = LatencyHistogram()
        self.run, self.p99_ms, self.rate, self.factor, self.min_windows = run, p99_ms, rate, factor, min_windows
        self.windows = 0
        self.sent = self.errors = 0
        self.reason = ""
        self._lock = threading.Lock()

    def __call__(self, window: Any) -> None:
        from workbench.telemetry.histogram import LatencyHistogram

        with self._lock:
            if self.reason:
                return
            self.windows += 1
            self.sent += window.sent
            self.errors += sum(window.errors.values()) + window.not_sent
            encoded = window.histograms.get("latency")
            if encoded:
                self._hist.merge(LatencyHistogram.decode(encoded))
            if self.windows < self.min_windows:
                return
            bound = self.factor * self.p99_ms
            count = self._hist.count
            over = self._hist.count_above(bound / 1e3) if count else 0
            queue_limit = self.rate * bound / 1e3 + 16
            if over > max(3, CLEARLY * count):
                p99 = self._hist.percentile(99) * 1e3
                self.reason = (f"p99 {p99:.1f} ms after {self.windows} windows: {over} of {count} answers took over "
                               f"{self.factor:g}× the {self.p99_ms:g} ms bound")
            elif window.in_flight > queue_limit:
                self.reason = (f"{window.in_flight} requests outstanding (more than {queue_limit:.0f} at "
                               f"{self.rate:g} req/s within {bound:g} ms): the queue is growing")
            elif self.sent >= 20 and self.errors > 0.05 * self.sent:
                self.reason = f"{self.errors} of {self.sent} requests failed"
            if self.reason:
                self.run.stop_generators(f"tuner: {self.reason}")


class Bench:
    """A warm server behind HTTP, reconfigured between trials, and the load runs that measure it.

    ``sources``: variant name -> ``ModelArtifact`` (or anything ``Server`` accepts). Not thread-safe except
    :meth:`abort`, which stops the run in progress from another thread.
    """

    def __init__(self, name: str, sources: dict[str, Any], *, runs_dir: str | Path | None = None,
                 window_ms: float = 250.0, context: dict[str, Any] | None = None):
        self.name, self.sources, self.runs_dir, self.window_ms = name, sources, runs_dir, window_ms
        self.context = dict(context or {})
        self.server: Any = None
        self.http: Any = None
        self.current: dict[str, Any] | None = None
        self.restarts = 0
        self._run: Any = None
        self._aborted = threading.Event()
        self._lock = threading.Lock()

    # ------------------------------------------------------------ configs
    def apply(self, config: dict[str, Any]) -> str:
        """Serve ``config`` (serve settings + ``variant``); returns how: live, rolled, swapped or started."""
        from workbench.serving.config import ServeConfig

        settings = {k: config[k] for k in SERVE_KNOBS}
        serve_config = ServeConfig().replace(**settings)
        cur = self.current
        if self.server is None or cur is None:
            self._start(config, serve_config)
            how = "started"
        elif restart_key(cur) == restart_key(config):
            changes = {k: config[k] for k in LIVE_KNOBS if cur.get(k) != config[k]}
            if changes:
                self.server.reconfigure(self.name, **changes)
            how = "live"
        elif cur["variant"] == config["variant"]:
            self.server.reconfigure(self.name, serve_config)
            how = "rolled"
        elif all(cur[k] == config[k] for k in SERVE_KNOBS if k not in LIVE_KNOBS):
            self.server.reconfigure(self.name, serve_config)  # live part first: instant
            self.server.swap_variant(self.name, self.sources[config["variant"]])
            how = "swapped"
        else:
            self.close()
            self._start(config, serve_config)
            how = "restarted"
        self.current = dict(config)
        self._warm_up(config)
        return how

    def _start(self, config: dict[str, Any], serve_config: Any) -> None:
        from workbench.http.serve import serve_http
        from workbench.serving.server import Server

        server = Server(models={self.name: self.sources[config["variant"]]}, config=serve_config)
        server.start()
        try:
            self.http = serve_http(server, host="127.0.0.1", port=0)
        except BaseException:
            server.close()
            raise
        self.server = server
        self.restarts += 1

    def _warm_up(self, config: dict[str, Any]) -> None:
        """A few requests so new workers have run their first batch before the clock starts."""
        import numpy as np

        source = self.sources[config["variant"]]
        example = np.asarray(source.example() if callable(source.example) else source.example)
        for rows in (1, min(8, int(config["max_batch_size"])), 1):
            for _ in range(int(config["replicas"]) * 2):
                self.server.infer(self.name, np.repeat(example[:1], rows, axis=0), timeout_ms=10_000)

    # ------------------------------------------------------------ runs
    def measure(self, rate: float, duration_s: float, *, p99_ms: float, early_stop: bool = True,
                context: dict[str, Any] | None = None) -> Measurement:
        """One Poisson load run at ``rate`` for ``duration_s`` against the config being served."""
        from workbench.load import HttpTarget, LoadRun, Poisson

        if self._aborted.is_set():
            return Measurement(rate=rate, duration_s=0.0, stopped_early=True, reason="the tuner was stopped")
        timeout_s = min(5.0, max(1.0, 25 * p99_ms / 1e3))
        target = HttpTarget(url=self.http.url, model=self.name, timeout_s=timeout_s)
        run = LoadRun(target, Poisson(rate=rate, seed=0), duration_s=duration_s, window_ms=self.window_ms,
                      runs_dir=self.runs_dir, drain_s=timeout_s + 0.5,
                      context={"tuner": {**self.context, **(context or {}), "config": self.current}})
        stopper = EarlyStop(run, p99_ms=p99_ms, rate=rate) if early_stop else None
        if stopper is not None:
            run.subscribe(stopper)
        with self._lock:
            self._run = run
        started = time.monotonic()
        try:
            try:
                run.start()
            except WorkbenchError:
                if not self._aborted.is_set():
                    raise
                # stopped while its generator was starting: the generator ends without a report
                return Measurement(rate=rate, duration_s=0.0, stopped_early=True, reason="the tuner was stopped",
                                   load_s=time.monotonic() - started)
            if self._aborted.is_set():
                run.stop_generators("tuner stopped")
            if not run.wait(duration_s + timeout_s + 60):
                run.stop(timeout_s=5)
        finally:
            with self._lock:
                self._run = None
            if not run.done:
                run.stop(timeout_s=5)
        load_s = time.monotonic() - started
        if run.error is not None and self._aborted.is_set():  # stopped before the generator reported
            return Measurement(rate=rate, duration_s=0.0, stopped_early=True, reason="the tuner was stopped",
                               load_s=load_s)
        summary = run.summary()
        reason = stopper.reason if stopper is not None else ""
        if self._aborted.is_set() and not reason:
            reason = "the tuner was stopped"
        stopped = bool(summary.get("stopped_early")) or bool(reason)
        return Measurement(
            rate=rate, duration_s=float(summary.get("elapsed_s") or duration_s),
            p50_ms=summary.get("latency_p50_ms"), p99_ms=summary.get("latency_p99_ms"),
            throughput=float(summary.get("throughput_rps") or 0.0), sent=int(summary.get("sent") or 0),
            errors=int(summary.get("errors") or 0), not_sent=int(summary.get("not_sent") or 0),
            stopped_early=stopped, reason=reason, run_id=run.record.id if run.record is not None else None,
            load_s=load_s, generator_limited=bool(summary.get("generator_limited")),
            extra={"mean_batch_size": summary.get("mean_batch_size")})

    def abort(self) -> None:
        """Stop the run in progress (from any thread) and refuse new ones."""
        self._aborted.set()
        with self._lock:
            run = self._run
        if run is not None:
            run.stop_generators("tuner stopped")

    @property
    def aborted(self) -> bool:
        return self._aborted.is_set()

    def close(self) -> None:
        """Close the HTTP endpoint and the server (its workers). Safe to call twice."""
        http, server = self.http, self.server
        self.http = self.server = None
        self.current = None
        try:
            if http is not None:
                http.close()
        finally:
            if server is not None:
                server.close()


__all__ = ["CLEARLY", "MAX_ERROR_SHARE", "Bench", "EarlyStop", "Measurement"]
