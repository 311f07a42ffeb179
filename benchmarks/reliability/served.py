"""What the overload and soak runs share: ``workbench serve`` of a slow test double as a real process,
a sampler of its process tree (RSS, open files, processes), a direct-HTTP probe, and a capacity search
with the real load generator.

The double is ``workbench.testing``'s ``sleepy`` model: it sleeps ``batch_ms`` per batch whatever the
batch holds, so with one worker and batches of at most ``max_batch_size`` rows its capacity is
``max_batch_size / batch_ms`` requests/s (200 req/s at 4 rows per 20 ms) - small enough that ten times
it is within reach of one load-generator process on a 2-core machine.
"""

from __future__ import annotations

import http.client
import math
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

#: how much longer than its nominal ``batch_ms`` a batch of the double may take: the sleep's overshoot and the
#: worker's scheduling on a shared 2-core machine (measured in-process at 10x overload, load average ~4.5: a
#: 20 ms batch took 20.3 ms at p50, 25.6 ms at p99, 37 ms at most, by the server's request records)
BATCH_OVERSHOOT = 1.25
#: allowance on top of the queueing bound for HTTP, the pipes, the sleep's overshoot and the load generator's
#: own send lag on a shared 2-core machine (ms)
TRANSPORT_ALLOWANCE_MS = 100.0


@dataclass(frozen=True, kw_only=True)
class SlowService:
    """The service under test: the sleepy double behind ``workbench serve``, one worker."""

    batch_ms: float = 20.0
    max_batch_size: int = 4
    max_queue: int = 32
    timeout_ms: float = 1000.0
    features: int = 4096  # 16 KB of float32 per request: a leak of refused requests would show in RSS

    @property
    def nominal_rps(self) -> float:
        return self.max_batch_size * 1000.0 / self.batch_ms

    @property
    def queue_bound_ms(self) -> float:
        """The longest an accepted request can wait in the server's queue: the ``max_queue`` rows ahead of it,
        in batches of ``max_batch_size``, and the batch on the worker, each ``batch_ms`` × ``BATCH_OVERSHOOT``."""
        return (math.ceil(self.max_queue / self.max_batch_size) + 1) * self.batch_ms * BATCH_OVERSHOOT

    @property
    def latency_bound_ms(self) -> float:
        """The longest an accepted request can take: the queue ahead of it (``max_queue`` rows, in batches
        of ``max_batch_size``), the batch waiting on the worker's pipe, its own batch, each ``batch_ms`` ×
        ``BATCH_OVERSHOOT``, plus a transport allowance."""
        batches = math.ceil(self.max_queue / self.max_batch_size) + 2
        return batches * self.batch_ms * BATCH_OVERSHOOT + TRANSPORT_ALLOWANCE_MS

    def config_yaml(self) -> str:
        return (f"batching:\n  max_batch_size: {self.max_batch_size}\n  max_delay_ms: 0\n"
                f"admission:\n  max_queue: {self.max_queue}\n  timeout_ms: {self.timeout_ms}\n"
                f"placement:\n  replicas: 1\n  threads_per_worker: 1\n")

    def describe(self) -> str:
        return (f"`sleepy` double ({self.batch_ms:g} ms per batch, {self.features} float32 per request, binary "
                f"tensors), 1 worker, max_batch_size={self.max_batch_size}, max_delay_ms=0, "
                f"max_queue={self.max_queue} rows, timeout_ms={self.timeout_ms:g}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServedProcess:
    """``workbench serve <artifact> --config <yaml>`` in a child process on a free loopback port."""

    def __init__(self, service: SlowService, folder: Path, *, name: str = "slow"):
        from workbench.testing import make_artifact

        folder.mkdir(parents=True, exist_ok=True)
        artifact = folder / name
        if not (artifact / "manifest.json").is_file():
            make_artifact("sleepy", artifact, name=name, ms=service.batch_ms, shape=(service.features,))
        config = folder / "serve.yaml"
        config.write_text(service.config_yaml())
        self.service, self.model = service, name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / f"serve-{self.port}.log"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("WORKBENCH_TOKEN", None)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "workbench.cli", "serve", str(artifact), "--config", str(config),
                 "--port", str(self.port)], stdout=out, stderr=subprocess.STDOUT, env=env)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"workbench serve exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if request(self.url, "GET", "/v2/health/ready", timeout_s=5).status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"workbench serve not ready within {timeout_s} s:\n{self.output()}")
            time.sleep(0.1)  # polling a condition with a deadline

    def tree(self) -> list[Any]:
        """The server process and every process under it (its workers)."""
        import psutil

        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def stop(self, timeout_s: float = 30.0) -> list[int]:
        """SIGTERM, wait (kill after ``timeout_s``); returns the pids of children that outlived it (killed)."""
        return stop_tree(self.proc, timeout_s)

    def __enter__(self) -> ServedProcess:
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    latency_s: float = 0.0


def request(url: str, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
            timeout_s: float = 10.0, conn: http.client.HTTPConnection | None = None) -> Answer:
    """One HTTP request (on ``conn`` if given, else a fresh connection), timed."""
    parts = urlsplit(url)
    own = conn is None
    c = conn or http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
    try:
        start = time.perf_counter()
        c.request(method, path, body=body, headers=headers or {})
        response = c.getresponse()
        data = response.read()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, data,
                      time.perf_counter() - start)
    finally:
        if own:
            c.close()


def stop_tree(proc: subprocess.Popen, timeout_s: float = 30.0) -> list[int]:
    """Stop a server process and its workers: SIGTERM, wait (kill after ``timeout_s``), then kill any child
    still alive 10 s later. Returns the pids of the children that outlived their parent (killed)."""
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    _, alive = psutil.wait_procs(children, timeout=10)
    for child in alive:
        child.kill()
    return [p.pid for p in alive]


@dataclass
class Sample:
    t: float  # monotonic
    rss_mb: float  # server + workers
    rss_by_process_mb: dict[str, float]  # role-pid -> MB
    fds: int
    processes: int
    threads: int
    server_cpu_s: float = 0.0  # user + system CPU seconds the server process has used so far
    queue_buckets: dict[float, float] | None = None  # the server's queue-time histogram: le (s) -> count


def _role(process: Any, index: int) -> str:
    """``server`` (the root), ``tracker`` (multiprocessing's resource tracker) or ``worker``."""
    if index == 0:
        return "server"
    try:
        return "tracker" if "resource_tracker" in " ".join(process.cmdline()) else "worker"
    except Exception:  # gone or unreadable: count it as a worker
        return "worker"


class TreeSampler:
    """Samples the served process tree every ``interval_s`` on a thread (measurement, not synchronisation)."""

    def __init__(self, served: ServedProcess, interval_s: float = 1.0, scrape: bool = False):
        self.served, self.interval_s, self.scrape = served, interval_s, scrape
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reliability-sampler", daemon=True)

    def sample(self) -> Sample:
        import psutil

        rss: dict[str, float] = {}
        fds = threads = 0
        server_cpu = 0.0
        procs = self.served.tree()
        for i, p in enumerate(procs):
            try:
                with p.oneshot():
                    rss[_role(p, i) + f"-{p.pid}"] = p.memory_info().rss / 2**20
                    fds += p.num_fds()
                    threads += p.num_threads()
                    if i == 0:
                        times = p.cpu_times()
                        server_cpu = times.user + times.system
            except psutil.NoSuchProcess:
                continue
        buckets = queue_buckets(self.served) if self.scrape else None
        return Sample(time.monotonic(), sum(rss.values()), rss, fds, len(rss), threads, server_cpu, buckets)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self.sample())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def between(self, t0: float, t1: float) -> list[Sample]:
        return [s for s in self.samples if t0 <= s.t <= t1]


def queue_buckets(served: ServedProcess) -> dict[float, float] | None:
    """The server's own ``workbench_queue_seconds`` histogram (cumulative counts by upper bound, seconds),
    read from its ``/metrics``: how long accepted requests waited in the controller's queue."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = request(served.url, "GET", "/metrics", timeout_s=5).body.decode()
    except (OSError, http.client.HTTPException):
        return None
    out: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "workbench_queue_seconds":
            for s in family.samples:
                if s.name.endswith("_bucket") and s.labels.get("model") == served.model:
                    out[float(s.labels["le"])] = s.value
    return out


def bucket_percentile_ms(before: dict[float, float] | None, after: dict[float, float] | None,
                         q: float) -> tuple[float | None, int]:
    """The upper bound (ms) of the histogram bucket holding the ``q``-th percentile of what was counted
    between two scrapes, and how many were counted."""
    if not before or not after:
        return None, 0
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return None, 0
    bound = next(b for b, c in zip(bounds, counts, strict=True) if c >= q / 100 * total)
    return round(bound * 1e3, 3), int(total)


@dataclass
class ProbeResult:
    t: float
    status: int
    latency_s: float
    retry_after: str | None


@dataclass
class Probe:
    """Sends one inference request every ``interval_s`` on its own keep-alive connection, outside the load
    generator, and keeps each answer's status, latency and ``Retry-After`` header (the generator counts
    refusals but does not time them)."""

    served: ServedProcess
    interval_s: float = 0.02
    results: list[ProbeResult] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)  # failed requests by exception type

    def __post_init__(self) -> None:
        import numpy as np

        from workbench.load.http_client import build_body

        x = np.zeros((1, self.served.service.features), np.float32)
        self._body, self._headers = build_body([("input", x)], binary=True)
        self._path = f"/v2/models/{self.served.model}/infer"
        self._stop = threading.Event()
        self._jitter = random.Random(0)
        self._thread = threading.Thread(target=self._run, name="reliability-probe", daemon=True)

    def _run(self) -> None:
        parts = urlsplit(self.served.url)
        # a short timeout: one stuck request must not blind the probe for the rest of the overload
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=2)
        try:
            while not self._stop.is_set():
                t = time.monotonic()
                try:
                    a = request(self.served.url, "POST", self._path, self._body, self._headers, conn=conn)
                    self.results.append(ProbeResult(t, a.status, a.latency_s, a.headers.get("retry-after")))
                except Exception as exc:  # noqa: BLE001 - the probe must outlive any failed request
                    conn.close()
                    self.errors[type(exc).__name__] = self.errors.get(type(exc).__name__, 0) + 1
                    self.results.append(ProbeResult(t, 0, time.monotonic() - t, None))
                # a random pause after each answer: sending right after an answer would land just after a
                # batch left the queue (when there is room), and would time admissions, not refusals
                self._stop.wait(self._jitter.uniform(0.5, 1.5) * self.interval_s)
        finally:
            conn.close()

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)

    def between(self, t0: float, t1: float) -> list[ProbeResult]:
        return [r for r in self.results if t0 <= r.t <= t1]


def percentile_ms(values_s: list[float], q: float) -> float | None:
    if not values_s:
        return None
    import numpy as np

    return round(float(np.percentile(np.asarray(values_s) * 1e3, q)), 2)


def load_run(served: ServedProcess, schedule: Any, duration_s: float, *, window_ms: float = 500) -> Any:
    """A finished ``LoadRun`` of the real load generator (one process, binary tensors) against ``served``."""
    import numpy as np

    from workbench.load import HttpTarget, LoadRun

    target = HttpTarget(url=served.url, model=served.model, binary=True, timeout_s=10.0,
                        example=np.zeros((1, served.service.features), np.float32))
    return LoadRun(target, schedule, duration_s=duration_s, window_ms=window_ms, save=False).run()


def find_capacity(served: ServedProcess, *, step_s: float = 2.0, fractions: tuple[float, ...] = (
        0.5, 0.7, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1)) -> dict[str, Any]:
    """The highest open-loop (constant) rate the service sustains: a short step search in one load run,
    one step per rate (``fractions`` of the nominal capacity), ending at the first step that fails. A step
    is sustained when none of its requests failed and, after its first window, its throughput was ≥ 95 %
    of the rate and its p99 within the latency bound."""
    from workbench.load import Step
    from workbench.telemetry.histogram import LatencyHistogram

    service = served.service
    rates = [round(f * service.nominal_rps, 1) for f in fractions]
    run = load_run(served, Step(rates=tuple(rates), step_s=step_s), step_s * len(rates))
    windows = run.windows
    steps = []
    capacity = 0.0
    for k, rate in enumerate(rates):
        inside = [w for w in windows if k * step_s <= w.start_s < (k + 1) * step_s]
        settled = inside[1:]
        errors = sum(sum(w.errors.values()) + w.not_sent for w in inside)
        hist = LatencyHistogram.merged(w.histograms["latency"] for w in settled if "latency" in w.histograms)
        p99 = round(hist.percentile(99) * 1e3, 2) if hist.count else None
        seconds = sum(w.end_s - w.start_s for w in settled)
        throughput = sum(w.ok for w in settled) / seconds if seconds else 0.0
        ok = bool(settled) and errors == 0 and throughput >= 0.95 * rate and p99 is not None \
            and p99 <= service.latency_bound_ms
        steps.append({"rate": rate, "errors": errors, "throughput_rps": round(throughput, 1), "p99_ms": p99, "ok": ok})
        if not ok:
            break
        capacity = rate
    summary = run.summary()
    return {"capacity_rps": capacity, "steps": steps, "generator_limited": summary["generator_limited"],
            "generator_message": summary["generator_message"]}


__all__ = ["Answer", "Probe", "bucket_percentile_ms", "queue_buckets", "ServedProcess", "SlowService", "TreeSampler", "find_capacity", "load_run",
           "percentile_ms", "request"]
