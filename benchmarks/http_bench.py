"""HTTP benchmark: workbench's OIP v2 API (JSON and binary tensors) against peer servers, one run.

Work: the reference MLP 784-1024-1024-10 (fp32, seeded), one 784-float sample per request, HTTP/1.1
keep-alive, one load generator (``workbench.load``, latency from each request's intended send time)
on the same machine. Systems, each in its own process tree, one after another:

- ``workbench-json`` / ``workbench-binary``: ``workbench serve`` (one worker, dynamic batching up to
  32 rows), driven with JSON bodies or with the binary tensor extension;
- ``fastapi``: plain FastAPI, no batching (see :mod:`benchmarks.http_peers`);
- ``litserve-1`` / ``litserve-2``: LitServe with batching, 1 and 2 workers.

Ray Serve is not run here (it needs ~2 GB and ~25 s per start on 2 cores); its figures on this
machine kind are in ``shared/baselines/peers-2026-11-24.md`` (≈ 76 req/s open loop, 4.9 ms CPU per request).

For each system: closed loop at concurrency 1, 8 and 32 (throughput, p50, p99, server CPU per
request = the CPU time of the server's whole process tree over the run, divided by the answers),
then the highest open-loop (Poisson) rate whose p99 ≤ ``--slo-ms`` with no errors (a rate search in
steps of 1.2×).
Then the targets: workbench JSON ≥ 2× and binary ≥ 3× the best peer's open-loop rate (the ratio taken
within each round, then the median over rounds), and server CPU per request ≤ 0.2 ms with JSON at
concurrency 32.

Run: ``.venv/bin/python -m benchmarks.http_bench [--systems workbench-json fastapi] [--rounds 3]
[--duration-s 5] [--json out.json]``; figures are medians over the rounds. Peers need ``pip install -c constraints.txt fastapi litserve`` (benchmark-only).
A shared 2-core machine is noisy: compare systems within one run; open-loop maxima are lower bounds.
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

SYSTEMS = ("workbench-json", "workbench-binary", "fastapi", "litserve-1", "litserve-2")
TARGETS = {"json_ratio": 2.0, "binary_ratio": 3.0, "cpu_ms_per_request": 0.2}


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
        else:
            cmd = [sys.executable, "-m", "benchmarks.http_peers", "litserve", str(self.port), system.split("-")[1]]
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
        """SIGINT (LitServe leaves children behind on SIGTERM), then the whole session if it lingers."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # our own session: this system's leftovers only
        except ProcessLookupError:
            pass
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
            "generator_limited": s["generator_limited"], "sent": s["sent"], "ok": s["ok"]}


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


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def combine(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One system's rounds → medians of every figure (and the per-round open-loop rates)."""
    closed = {c: {k: _median([r["closed"][c][k] for r in rounds]) for k in ("rps", "p50_ms", "p99_ms",
                                                                           "cpu_ms_per_request")}
              for c in (1, 8, 32)}
    rates = [r["open"]["rate"] for r in rounds]
    return {"system": rounds[0]["system"], "cold_start_s": _median([r["cold_start_s"] for r in rounds]),
            "closed": closed, "open": {"rate": _median(rates), "rates": rates,
                                       "lower_bound": any(r["open"].get("lower_bound") for r in rounds)}}


def report(results: list[dict[str, Any]], rounds: dict[str, list[dict[str, Any]]],
           slo_ms: float) -> tuple[str, dict[str, Any]]:
    """The markdown table (medians over rounds) and the target checks. The throughput ratios are taken
    within each round (workbench / the round's best peer), then their median is the result."""
    lines = [f"| system | max open-loop rate, p99 ≤ {slo_ms:g} ms: median (each round) | c=1 req/s (p50/p99 ms) | "
             "c=8 req/s (p50/p99 ms) | c=32 req/s (p50/p99 ms) | server CPU/request at c=32 | cold start |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        c, o = r["closed"], r["open"]
        cells = [f"{c[k]['rps']:.0f} ({c[k]['p50_ms']:.2f}/{c[k]['p99_ms']:.1f})" for k in (1, 8, 32)]
        bound = " (a lower bound: the generator was the limit)" if o.get("lower_bound") else ""
        per_round = ", ".join(f"{x:.0f}" for x in o["rates"])
        lines.append(f"| {r['system']} | {o['rate']:.0f} ({per_round}){bound} | {' | '.join(cells)} | "
                     f"{c[32]['cpu_ms_per_request']:.3f} ms | {r['cold_start_s']:.1f} s |")
    by = {r["system"]: r for r in results}
    peers = [s for s in rounds if not s.startswith("workbench")]
    checks: dict[str, Any] = {}
    n = min(len(v) for v in rounds.values())
    if peers:
        best = [max(peers, key=lambda s: rounds[s][i]["open"]["rate"]) for i in range(n)]
        checks["best_peer_each_round"] = best
        for system, key in (("workbench-json", "json_ratio"), ("workbench-binary", "binary_ratio")):
            if system in rounds:
                ratios = [rounds[system][i]["open"]["rate"] / max(1e-9, rounds[best[i]][i]["open"]["rate"])
                          for i in range(n)]
                value = _median(ratios)
                checks[key] = {"value": round(value, 2), "each_round": [round(x, 2) for x in ratios],
                               "target": TARGETS[key], "met": value >= TARGETS[key]}
    if "workbench-json" in by:
        cpu = by["workbench-json"]["closed"][32]["cpu_ms_per_request"]
        checks["cpu_ms_per_request"] = {"value": cpu, "target": TARGETS["cpu_ms_per_request"],
                                        "met": cpu <= TARGETS["cpu_ms_per_request"]}
    lines.append("")
    for key, value in checks.items():
        lines.append(f"- {key}: {value}")
    return "\n".join(lines), checks


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
    args = parser.parse_args(argv)
    global GENERATOR_PROCESSES
    GENERATOR_PROCESSES = args.generator_processes

    from workbench.testing import make_artifact

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
    table, checks = report(results, rounds, args.slo_ms)
    print(table)
    if args.json:
        args.json.write_text(json.dumps({"results": results, "rounds": rounds, "checks": checks,
                                         "argv": sys.argv[1:], "machine": {"cpus": os.cpu_count()}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
