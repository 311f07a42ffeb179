"""HTTP benchmark: workbench's OIP v2 API (JSON and binary tensors) against peer servers, one run.

Work: the reference MLP 784-1024-1024-10 (fp32, seeded), one 784-float sample per request, HTTP/1.1
keep-alive, one load generator (``workbench.load``: its lean raw-asyncio + httptools client, latency
from each request's intended send time) on the same machine. Systems, each in its own process tree
(its own session), one after another:

- ``workbench-json`` / ``workbench-binary``: ``workbench serve`` (one worker, dynamic batching up to
  32 rows), driven with JSON bodies or with the binary tensor extension;
- ``fastapi``: plain FastAPI, no batching (see :mod:`benchmarks.http_peers`);
- ``litserve-1`` / ``litserve-2``: LitServe with batching, 1 and 2 workers;
- ``ray-1`` / ``ray-2``: Ray Serve with ``@serve.batch``, 1 and 2 replicas, behind its own HTTP proxy
  (a fresh local Ray per system: ≈ 25 s and ≈ 2 GB to start on 2 cores, counted as its cold start).

Every peer gets the same OIP v2 JSON body from the same generator. For each system: closed loop at
concurrency 1, 8 and 32 (throughput, p50, p99, server CPU per request = the CPU time of the server's
whole process tree over the run, divided by the answers; for Ray that tree is the whole local node:
GCS, raylet, agents, Serve controller, proxy, replicas), then the highest open-loop (Poisson) rate
whose p99 ≤ ``--slo-ms`` with no errors (a rate search in steps of 1.2×). Then the targets
(:mod:`benchmarks.http_report`): workbench JSON ≥ 2× and binary ≥ 3× the best peer's open-loop rate
(the ratio taken within each round, then the median over rounds), and server CPU per request ≤ 0.2 ms
with JSON at concurrency 32.

Run: ``.venv/bin/python -m benchmarks.http_bench [--systems workbench-json fastapi ray-1] [--rounds 3]
[--duration-s 5] [--json out.json] [--markdown docs/performance.md]`` (``--markdown`` rewrites only
the "## HTTP API" section); figures are medians over the rounds. Peers need ``pip install -c
constraints.txt -e '.[bench,ray]'`` (benchmark-only). A shared 2-core machine is noisy: compare
systems within one run; open-loop maxima are lower bounds.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.http_report import checks, combine, markdown
from benchmarks.markdown import write_section

SYSTEMS = ("workbench-json", "workbench-binary", "fastapi", "litserve-1", "litserve-2", "ray-1", "ray-2")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """One system under test, started in its own session so its whole tree can be measured and stopped."""

    def __init__(self, system: str, artifact: Path, log_dir: Path, max_delay_ms: float = 0.0):
        self.system = system
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if system.startswith("workbench"):
            cmd = [sys.executable, "-m", "workbench.cli", "serve", str(artifact), "--name", "mlp",
                   "--port", str(self.port), "--max-batch-size", "32", "--max-delay-ms", str(max_delay_ms)]
        elif system == "fastapi":
            cmd = [sys.executable, "-m", "benchmarks.http_peers", "fastapi", str(self.port)]
        else:  # litserve-N, ray-N: N workers / replicas
            peer, count = system.split("-")
            cmd = [sys.executable, "-m", "benchmarks.http_peers", peer, str(self.port), count]
        self.log = (log_dir / f"{system}.log").open("wb")
        started = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.cold_start_s = self._wait_ready(started)

    def _wait_ready(self, started: float, timeout_s: float = 180.0) -> float:
        while time.monotonic() - started < timeout_s:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.system} exited with {self.proc.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(f"{self.url}/v2/models/mlp", timeout=2) as r:
                    if r.status == 200:
                        return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.system} was not ready within {timeout_s} s")

    def cpu_s(self) -> float:
        import psutil

        total = 0.0
        try:
            root = psutil.Process(self.proc.pid)
            for p in [root, *root.children(recursive=True)]:
                try:
                    t = p.cpu_times()
                    total += t.user + t.system
                except psutil.NoSuchProcess:
                    pass
        except psutil.NoSuchProcess:
            pass
        return total

    def stop(self) -> None:
        """SIGINT (LitServe leaves children behind on SIGTERM; Ray shuts Serve and its node down), then
        SIGKILL to whatever is left: the session's process group, and every process of the tree as it was
        just before (Ray puts its actors in process groups of their own)."""
        import psutil

        try:
            tree = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # our own session: this system's leftovers only
        except ProcessLookupError:
            pass
        for p in tree[1:]:  # psutil checks each is still the same process (pid and start time)
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(tree[1:], timeout=10)
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)
        self.log.close()


#: load generator processes (the schedule is spread over them); set by --generator-processes
GENERATOR_PROCESSES = 1


def _load(server: ServerProcess, binary: bool, schedule: Any, duration_s: float) -> dict[str, Any]:
    from workbench.load import Closed, HttpTarget, LoadRun

    processes = 1 if isinstance(schedule, Closed) and schedule.concurrency < 8 else GENERATOR_PROCESSES
    cpu0 = server.cpu_s()
    with LoadRun(HttpTarget(url=server.url, model="mlp", binary=binary), schedule, duration_s=duration_s,
                 save=False, max_connections=256, processes=processes) as run:
        run.wait()
    cpu1 = server.cpu_s()
    s = run.summary()
    ok = max(1, s["ok"])
    return {"rps": s["throughput_rps"], "p50_ms": s["latency_p50_ms"], "p99_ms": s["latency_p99_ms"],
            "errors": s["errors"], "cpu_ms_per_request": round((cpu1 - cpu0) / ok * 1e3, 4),
            "generator_limited": s["generator_limited"], "sent": s["sent"], "ok": s["ok"],
            "generator_cpu_us_per_request": round(1e6 / s["generator_ceiling_rps"], 1)
            if s["generator_ceiling_rps"] else None}


def _passes(result: dict[str, Any], rate: float, slo_ms: float) -> bool:
    return result["errors"] == 0 and result["p99_ms"] <= slo_ms and result["rps"] >= 0.9 * rate


def max_open_rate(server: ServerProcess, binary: bool, start_rate: float, duration_s: float,
                  slo_ms: float, max_trials: int = 10) -> dict[str, Any]:
    """The highest Poisson rate with p99 ≤ slo_ms and no errors. From ``start_rate`` go up by 1.2× until
    two trials in a row fail (if the first fails, go down by 0.6×). A failed trial during which the load
    generator itself fell behind its schedule measured the machine, not the server: it is run again once."""
    from workbench.load import Poisson

    best: dict[str, Any] = {"rate": 0.0}
    trials: list[dict[str, Any]] = []
    rate, failures, passed_any, retried = max(20.0, start_rate), 0, False, False
    while len(trials) < max_trials:
        result = _load(server, binary, Poisson(rate=rate, seed=len(trials)), duration_s)
        trials.append({"rate": round(rate, 1), **result})
        if _passes(result, rate, slo_ms):
            passed_any, failures, retried = True, 0, False
            if rate > best["rate"]:
                best = {"rate": round(rate, 1), **result}
            if result["generator_limited"]:
                best["lower_bound"] = True
                break
            rate *= 1.2
            continue
        if result["generator_limited"] and not retried:
            retried = True
            continue  # the same rate once more
        retried = False
        if not passed_any:
            rate *= 0.6
            continue
        failures += 1
        if failures == 2:
            break
        rate *= 1.2
    return {**best, "trials": trials}


def bench_system(system: str, artifact: Path, log_dir: Path, args: argparse.Namespace,
                 start_rate: float | None) -> dict[str, Any]:
    from workbench.load import Closed

    binary = system == "workbench-binary"
    server = ServerProcess(system, artifact, log_dir, args.max_delay_ms)
    try:
        _load(server, binary, Closed(concurrency=8), 1.0)  # warm-up
        closed = {c: _load(server, binary, Closed(concurrency=c), args.duration_s) for c in (1, 8, 32)}
        start = start_rate if start_rate else 0.6 * closed[32]["rps"]
        open_loop = max_open_rate(server, binary, start, args.open_duration_s, args.slo_ms)
    finally:
        server.stop()
    return {"system": system, "cold_start_s": round(server.cold_start_s, 2), "closed": closed, "open": open_loop}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--duration-s", type=float, default=5.0, help="each closed-loop measurement")
    parser.add_argument("--open-duration-s", type=float, default=4.0, help="each open-loop trial")
    parser.add_argument("--slo-ms", type=float, default=50.0)
    parser.add_argument("--max-delay-ms", type=float, default=0.0, help="workbench's batching delay")
    parser.add_argument("--rounds", type=int, default=1, help="rounds; the systems' order rotates each round")
    parser.add_argument("--generator-processes", type=int, default=1,
                        help="spread the load generator over N processes (it shares the machine's cores)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--markdown", type=Path, help='rewrite the "## HTTP API" section of this Markdown file')
    args = parser.parse_args(argv)
    global GENERATOR_PROCESSES
    GENERATOR_PROCESSES = args.generator_processes

    from workbench.testing import make_artifact

    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="http-bench-") as tmp:
        artifact = Path(tmp) / "mlp"
        make_artifact("reference_mlp", artifact, name="mlp")
        rounds: dict[str, list[dict[str, Any]]] = {s: [] for s in args.systems}
        for i in range(args.rounds):
            order = args.systems[i % len(args.systems):] + args.systems[:i % len(args.systems)]
            for system in order:
                print(f"== round {i + 1}: {system}", file=sys.stderr, flush=True)
                previous = rounds[system][-1]["open"]["rate"] if rounds[system] else None
                rounds[system].append(bench_system(system, artifact, Path(tmp), args, previous))
                last = rounds[system][-1]
                print(json.dumps({"closed": last["closed"], "open_rate": last["open"]["rate"]}),
                      file=sys.stderr, flush=True)
    results = [combine(rounds[s]) for s in args.systems]
    found = checks(results, rounds)
    context = _context(args, argv, load_start)
    text = markdown(results, rounds, found, context)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"results": results, "rounds": rounds, "checks": found,
                                         "context": context}, indent=2))
    if args.markdown:
        write_section(args.markdown, text)
    return 0


def _context(args: argparse.Namespace, argv: list[str] | None, load_start: float) -> dict[str, Any]:
    """What the section says about the run: command, date, versions, load, settings."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    def v(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    command = " ".join([".venv/bin/python -m benchmarks.http_bench", *(sys.argv[1:] if argv is None else argv)])
    peers = {"fastapi": "FastAPI", "litserve": "LitServe", "ray": "Ray"}
    systems = {s.split("-")[0] for s in args.systems}
    return {"command": command, "date": time.strftime("%Y-%m-%d"), "python": platform.python_version(),
            "torch": v("torch"), "cpus": os.cpu_count(), "load_start": load_start, "load_end": os.getloadavg()[0],
            "generator_processes": args.generator_processes, "rounds": args.rounds,
            "max_delay_ms": args.max_delay_ms, "duration_s": args.duration_s,
            "open_duration_s": args.open_duration_s, "slo_ms": args.slo_ms,
            "peer_versions": ", ".join(f"{label} {v(name)}" for name, label in peers.items() if name in systems)
            or "none run", "uvicorn": v("uvicorn")}


if __name__ == "__main__":
    sys.exit(main())
