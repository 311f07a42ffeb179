"""Faults under load: break a real local Server on purpose while the real load generator drives it, and
account for every request.

Each scenario starts a ``Server`` (a few replicas; a two-stage pipeline for the stage fault), serves its
OIP v2 HTTP API with ``serve_http`` on a free loopback port, drives steady open-loop load at it with
``LoadRun(HttpTarget(...), Constant(rate))`` (a generator process, as users run it), injects one fault once
the load is steady, and reports:

- ``sent``, ``ok``: the generator's own counters;
- ``failed_clear``: failures the server answered with a clear error (503 with ``Retry-After`` and an
  ``{"error": ...}`` body, 504; in process: ``Overloaded``, ``RequestTimeout``, ``BackendUnavailable``),
  or, where the fault is that the server stopped, a refused connection;
- ``failed_unclear``: any other failure (a 500, a dropped connection while the server runs, ...);
- ``lost``: requests that never got an answer: ``sent - ok - failed``, plus the generator's
  ``unfinished`` (cancelled after the drain time) and ``client_timeout`` (no answer within the client's
  timeout, which is set past the server's own deadline). Must be 0;
- ``service_back_s``: from the fault to the end of the first 250 ms window whose successful throughput is
  back at >= 90 % of the pre-fault median and whose p99 latency is at most twice the pre-fault median p99
  plus 25 ms (``None`` if the run ended first);
- ``full_strength_s``: from the fault until the pool again has every replica ready, none of them a victim
  (polled every 20 ms).

Faults (``FAULTS``): SIGKILL one worker, SIGTERM one worker, SIGKILL all workers but one, SIGKILL all of
them, SIGKILL one stage of a two-stage pipeline, hang one worker (SIGSTOP: the pool's hung-worker
watchdog must kill and replace it), SIGKILL the load generator process (the run must end with a clear
error; the server must stay healthy and serve a next run), and ``Server.close()`` while the load runs
(over HTTP and in process: every request ends; the generator ends by itself; nothing hangs). Every scenario ends by checking that
no process it started is left running.

Run: ``.venv/bin/python -m benchmarks.reliability.faults [--seconds 8] [--repeats 3] [--rate 150]
[--model mlp|sleepy] [--faults sigkill_one ...] [--markdown docs/reliability.md] [--json out.json]``
(``--markdown`` rewrites only the "Faults under load" section). The tests in
``tests/reliability/test_faults.py`` run the short versions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

#: error kinds (as the load generator names them) that carry a clear error from the server
CLEAR_KINDS = frozenset({"overloaded", "timeout"})  # 503 (+ Retry-After, {"error": ...}) and 504
#: kinds that mean no answer came at all
LOST_KINDS = frozenset({"unfinished", "client_timeout"})
MODEL = "m"
WINDOW_MS = 250.0


@dataclass(frozen=True, kw_only=True)
class Fault:
    """One fault scenario: how the server is laid out and what is done to it."""

    name: str
    description: str
    inject: Callable[[Context], list[int]]  # returns the victim pids (empty if none)
    replicas: int = 2
    stages: int = 1
    clear_kinds: frozenset[str] = CLEAR_KINDS
    server_stops: bool = False
    kills_generator: bool = False
    in_process: bool = False  # drive the Server through InProcessTarget instead of HTTP


@dataclass
class Context:
    """What an injection may act on."""

    server: Any
    run: Any
    generator_pids: list[int]


@dataclass
class FaultResult:
    fault: str
    sent: int
    ok: int
    failed_clear: int
    failed_unclear: int
    lost: int
    errors_by_kind: dict[str, int]
    service_back_s: float | None
    full_strength_s: float | None
    healthy_after: bool
    leftover_pids: list[int]
    run_error: str | None = None
    server_ok: int | None = None
    stop_s: float | None = None
    next_run_ok: bool | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- injections
def ready_workers(server: Any) -> dict[str, list[int]]:
    """Replica name -> stage pids of every ready replica, from the server's public stats."""
    return {name: w["pids"] for name, w in server.stats()[MODEL]["workers"].items() if w["state"] == "ready"}


def _signal_replicas(count: int | None, sig: int, stage: int = 0) -> Callable[[Context], list[int]]:
    def inject(ctx: Context) -> list[int]:
        replicas = sorted(ready_workers(ctx.server).items())
        chosen = replicas if count is None else replicas[:count]
        pids = [pids[stage] for _, pids in chosen]
        for pid in pids:
            os.kill(pid, sig)
        return pids
    return inject


def _all_but_one(ctx: Context) -> list[int]:
    replicas = sorted(ready_workers(ctx.server).items())
    pids = [pids[0] for _, pids in replicas[1:]]
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    return pids


def _kill_generator(ctx: Context) -> list[int]:
    for pid in ctx.generator_pids:
        os.kill(pid, signal.SIGKILL)
    return list(ctx.generator_pids)


def _stop_server(ctx: Context) -> list[int]:
    ctx.server.close()
    return []


FAULTS: dict[str, Fault] = {f.name: f for f in (
    Fault(name="sigkill_one", description="SIGKILL one worker", inject=_signal_replicas(1, signal.SIGKILL)),
    Fault(name="sigterm_one", description="SIGTERM one worker", inject=_signal_replicas(1, signal.SIGTERM)),
    Fault(name="sigkill_all_but_one", description="SIGKILL 2 of 3 workers at once", replicas=3,
          inject=_all_but_one),
    Fault(name="sigkill_all", description="SIGKILL all 3 workers at once", replicas=3,
          inject=_signal_replicas(None, signal.SIGKILL)),
    Fault(name="kill_stage", description="SIGKILL stage 2 of a 2-stage pipeline replica", stages=2,
          inject=_signal_replicas(1, signal.SIGKILL, stage=1)),
    Fault(name="hang_one", description="hang one worker (SIGSTOP)", inject=_signal_replicas(1, signal.SIGSTOP)),
    Fault(name="kill_loadgen", description="SIGKILL the load generator process", inject=_kill_generator,
          kills_generator=True),
    Fault(name="server_close", description="Server.close() under HTTP load", inject=_stop_server,
          server_stops=True, clear_kinds=CLEAR_KINDS | {"connection"}),
    Fault(name="server_close_inprocess", description="Server.close() under in-process load", inject=_stop_server,
          server_stops=True, in_process=True, clear_kinds=frozenset({"overloaded", "timeout", "unavailable"})),
)}


# ----------------------------------------------------------------------------- helpers
def own_children(exclude: set[int] | frozenset[int] = frozenset()) -> set[int]:
    """Live child processes of this process (recursive), except multiprocessing's resource tracker."""
    out = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if child.pid in exclude or child.status() == psutil.STATUS_ZOMBIE:
                continue
            if "resource_tracker" not in " ".join(child.cmdline()):
                out.add(child.pid)
        except psutil.NoSuchProcess:
            continue
    return out


def leftovers(before: set[int], timeout_s: float = 10.0) -> list[int]:
    """Processes started since ``before`` that are still running after ``timeout_s`` (then killed)."""
    procs = []
    for pid in own_children(before):
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout_s)
    for proc in alive:
        proc.kill()
    return sorted(p.pid for p in alive)


def wait_for(condition: Callable[[], Any], timeout_s: float, interval_s: float = 0.02) -> Any:
    """Poll ``condition`` until truthy (returned) or ``timeout_s`` passes (then its last value)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval_s)


def service_back_s(windows: list[Any], origin: float, fault_at: float) -> float | None:
    """See the module docstring: the first window after the fault back at pre-fault throughput and p99."""
    before = [w for w in windows if origin + w.end_s <= fault_at and w.ok]
    if len(before) < 2:
        return None
    before = before[1:]  # the first window holds the start-up
    rate = statistics.median(w.throughput_rps for w in before)
    p99 = statistics.median(w.latency.p99_ms for w in before if w.latency is not None)
    for w in windows:
        if origin + w.end_s <= fault_at or w.latency is None:
            continue
        if w.throughput_rps >= 0.9 * rate and w.latency.p99_ms <= 2 * p99 + 25:
            return round(origin + w.end_s - fault_at, 3)
    return None


def _full_strength(server: Any, replicas: int, victims: set[int]) -> bool:
    ready = ready_workers(server)
    return len(ready) == replicas and not victims & {p for ps in ready.values() for p in ps}


def healthy(url: str, example: np.ndarray, timeout_s: float = 5.0) -> bool:
    """The server says it is ready and answers one inference request with 200."""
    import urllib.request

    import orjson

    try:
        with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=timeout_s) as resp:
            if resp.status != 200:
                return False
        with urllib.request.urlopen(f"{url}/v2/models/{MODEL}", timeout=timeout_s) as resp:
            name = orjson.loads(resp.read())["inputs"][0]["name"]
        body = orjson.dumps({"inputs": [{"name": name, "shape": list(example.shape), "datatype": "FP32",
                                         "data": example.ravel().tolist()}]})
        request = urllib.request.Request(f"{url}/v2/models/{MODEL}/infer", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            return resp.status == 200 and "outputs" in orjson.loads(resp.read())
    except OSError:
        return False


# ------------------------------------------------------------------------------ runner
def run_fault(fault: Fault | str, source: Any, *, example: np.ndarray, seconds: float = 4.0, fault_at_s: float = 1.25,
              rate: float = 120.0, recover_timeout_s: float = 30.0) -> FaultResult:
    """Run one fault scenario against ``source`` (anything ``Server`` serves); see the module docstring."""
    from workbench.http.serve import serve_http
    from workbench.load import Constant, HttpTarget, InProcessTarget, LoadRun
    from workbench.serving import ServeConfig, Server

    fault = FAULTS[fault] if isinstance(fault, str) else fault
    before = own_children()
    config = ServeConfig(placement={"replicas": fault.replicas, "stages": fault.stages},
                         batching={"max_batch_size": 8, "max_delay_ms": 2},
                         admission={"timeout_ms": 8000, "compute_timeout_ms": 500})
    server = Server(models={MODEL: source}, config=config).start()
    handle = None
    records: list[Any] = []
    notes: list[str] = []
    try:
        server.subscribe(records.extend)
        handle = serve_http(server, port=0, drain_timeout_s=5.0)
        url = handle.url
        target: Any = (InProcessTarget(server=server, model=MODEL, example=example, timeout_s=15.0) if fault.in_process
                       else HttpTarget(url=url, model=MODEL, example=example, timeout_s=15.0))
        run = LoadRun(target, Constant(rate=rate), duration_s=seconds, window_ms=WINDOW_MS, save=False,
                      drain_s=16.0)
        serving = own_children(before)
        run.start()
        generators = sorted(own_children(before) - serving)
        assert run.t0 is not None and run.hub is not None
        origin = run.hub.origin
        fault_at = run.t0 + fault_at_s
        wait_for(lambda: time.monotonic() >= fault_at, fault_at_s + 5, interval_s=0.005)
        fault_at = time.monotonic()
        victims = set(fault.inject(Context(server=server, run=run, generator_pids=generators)))
        stop_s = round(time.monotonic() - fault_at, 3) if fault.server_stops else None
        full_s = None
        if not fault.server_stops:
            if wait_for(lambda: _full_strength(server, fault.replicas, victims), recover_timeout_s):
                full_s = round(time.monotonic() - fault_at, 3)
        finished = run.wait(seconds + 40.0)
        if not finished:
            notes.append("the load run did not finish in time")
            run.stop(timeout_s=5)
        run_error = None if run.error is None else f"{type(run.error).__name__}: {run.error}"
        result = _account(fault, run, records, origin, fault_at, notes)
        result.run_error, result.stop_s, result.full_strength_s = run_error, stop_s, full_s
        if fault.kills_generator:  # the generator's counters died with it: the server's records tell
            idle = wait_for(lambda: (s := server.stats()[MODEL])["in_flight"] == 0 and s["queue_requests"] == 0
                            and s["retrying"] == 0, recover_timeout_s)
            ended = [r for r in records if r.received_at >= run.t0]
            result.sent = len(ended)
            result.ok = sum(r.outcome == "ok" for r in ended)
            result.failed_clear = len(ended) - result.ok
            result.lost = 0 if idle else server.stats()[MODEL]["in_flight"]
            result.service_back_s = round(time.monotonic() - fault_at, 3) if idle else None  # server idle again
            result.full_strength_s = None  # the pool was not touched
            next_run = LoadRun(target, Constant(rate=rate), duration_s=1.0, window_ms=WINDOW_MS, save=False).run()
            s = next_run.summary()
            result.next_run_ok = s["ok"] == s["sent"] > 0 and not s["errors"]
        result.healthy_after = (not fault.server_stops) and healthy(url, example)
    finally:
        if handle is not None:
            handle.close()
        server.close()
    result.leftover_pids = leftovers(before)
    return result


def _account(fault: Fault, run: Any, records: list[Any], origin: float, fault_at: float,
             notes: list[str]) -> FaultResult:
    if run.error is not None or not run.done:
        return FaultResult(fault=fault.name, sent=0, ok=0, failed_clear=0, failed_unclear=0, lost=0, errors_by_kind={},
                           service_back_s=None, full_strength_s=None, healthy_after=False, leftover_pids=[],
                           notes=notes)
    s = run.summary()
    errors: dict[str, int] = dict(s["errors_by_kind"])
    lost = s["sent"] - s["ok"] - s["errors"] + sum(errors.get(k, 0) for k in LOST_KINDS)
    clear = sum(n for k, n in errors.items() if k in fault.clear_kinds)
    unclear = sum(n for k, n in errors.items() if k not in fault.clear_kinds and k not in LOST_KINDS)
    if s["not_sent"]:
        notes.append(f"{s['not_sent']} requests not sent (generator behind)")
    server_ok = sum(r.outcome == "ok" for r in records)
    return FaultResult(fault=fault.name, sent=s["sent"], ok=s["ok"], failed_clear=clear, failed_unclear=unclear,
                       lost=lost, errors_by_kind=errors, service_back_s=service_back_s(run.windows, origin, fault_at),
                       full_strength_s=None, healthy_after=False, leftover_pids=[], server_ok=server_ok, notes=notes)


# ---------------------------------------------------------------------------- the CLI
def _source(model: str, folder: Path) -> tuple[Any, np.ndarray]:
    if model == "sleepy":
        from workbench.testing import make_artifact

        return make_artifact("sleepy", folder / "sleepy", ms=2, shape=(4,), layers=2), np.ones((1, 4), np.float32)
    from workbench.models import load_zoo

    zoo = load_zoo(model, progress=False)
    return zoo.save(folder / model), np.asarray(zoo.example[:1], dtype=np.float32)


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 2) if present else None


def table(results: dict[str, list[FaultResult]]) -> list[dict[str, Any]]:
    """One row per fault: totals over the repeats, medians of the recovery times."""
    rows = []
    for name, runs in results.items():
        rows.append({
            "fault": FAULTS[name].description, "repeats": len(runs),
            "sent": sum(r.sent for r in runs), "ok": sum(r.ok for r in runs),
            "failed_clear": sum(r.failed_clear for r in runs), "failed_unclear": sum(r.failed_unclear for r in runs),
            "lost": sum(r.lost for r in runs),
            "service_back_s": _median([r.service_back_s for r in runs]),
            "full_strength_s": _median([r.full_strength_s for r in runs]),
            "healthy_after": all(r.healthy_after for r in runs) if not FAULTS[name].server_stops else None,
            "leftovers": sum(len(r.leftover_pids) for r in runs),
            "errors_by_kind": dict(sum((_counter(r.errors_by_kind) for r in runs), _counter({}))),
            "notes": sorted({n for r in runs for n in r.notes} | _notes(name, runs)),
        })
    return rows


def _counter(d: dict[str, int]) -> Any:
    from collections import Counter

    return Counter(d)


def _notes(name: str, runs: list[FaultResult]) -> set[str]:
    fault, out = FAULTS[name], set()
    if fault.kills_generator:
        error = (runs[0].run_error or "no error").replace(" gen0-", " ").split("(")
        out.add("counted from the server's records; *service back* = no request of the dead generator left in "
                f"the server; the run ended with `{error[0].split()[0]} ... ({error[-1]}`; "
                f"next run clean: {all(r.next_run_ok for r in runs)}")
    if fault.server_stops:
        out.add(f"close() took {_median([r.stop_s for r in runs])} s (median); every answer the server gave "
                f"reached the client: {all(r.server_ok == r.ok + 1 for r in runs)}")
    return out


def _fmt(value: Any) -> str:
    return "—" if value is None else str(value)


def markdown(rows: list[dict[str, Any]], *, command: str, seconds: float, rate: float, model: str) -> str:
    lines = [
        "## Faults under load", "",
        f"Each fault hits a real local Server ({model}; 2 replicas, 3 for the multi-kill faults, a 2-stage "
        f"pipeline for the stage fault; batches of up to 8, `compute_timeout_ms=500`, deadline 8 s) under "
        f"open-loop load of {rate:g} requests/s from the real load generator over HTTP (in process for one "
        f"row), {seconds:g} s per run, the fault {seconds / 3:.1f} s in. Counts are totals over the repeats.",
        "",
        "- *failed (clear)*: 503 with `Retry-After` and an `{\"error\": ...}` body, 504, the matching "
        "exception in process, or, once the server has stopped, a refused connection. *failed (other)*: "
        "anything else. *lost*: sent but never answered (no response, or none within the client's timeout, "
        "which is past the server's deadline).",
        "- *service back*: fault → end of the first 250 ms window with successful throughput ≥ 90 % of the "
        "pre-fault median and p99 ≤ 2 × the pre-fault p99 + 25 ms (— if the run ended first). *full "
        "strength*: fault → every replica ready again, none of them a victim. Medians over the repeats.",
        "- A dead or hung worker's batches are retried once on another replica, so one victim costs no request. "
        "With every worker dead, requests wait in the queue for the replacements (all start at once; on 2 "
        "shared cores that takes several seconds); those that pass their deadline end with a 504.",
        "",
        "| fault | sent | ok | failed (clear) | failed (other) | lost | service back s | full strength s | "
        "healthy after | leftover processes | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for r in rows:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(r["errors_by_kind"].items()))
        notes = "; ".join(([f"errors: {kinds}"] if kinds else []) + r["notes"])
        lines.append(f"| {r['fault']} | {r['sent']} | {r['ok']} | {r['failed_clear']} | {r['failed_unclear']} | "
                     f"{r['lost']} | {_fmt(r['service_back_s'])} | {_fmt(r['full_strength_s'])} | "
                     f"{_fmt(r['healthy_after'])} | {r['leftovers']} | {notes} |")
    lines += ["", f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()} with {os.cpu_count()} cores, "
              "shared with other work (recovery times are noisy; counts are not). Command:", "",
              f"    {command}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each load run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rate", type=float, default=150.0, help="requests per second")
    parser.add_argument("--model", default="mlp", choices=["mlp", "cnn", "sleepy"])
    parser.add_argument("--faults", nargs="+", default=list(FAULTS), choices=list(FAULTS))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args(argv)
    results: dict[str, list[FaultResult]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        source, example = _source(args.model, Path(tmp))
        for repeat in range(args.repeats):
            for name in args.faults:
                result = run_fault(name, source, example=example, seconds=args.seconds, fault_at_s=args.seconds / 3,
                                   rate=args.rate)
                results.setdefault(name, []).append(result)
                print(f"[{repeat + 1}/{args.repeats}] {name}: sent {result.sent} ok {result.ok} "
                      f"clear {result.failed_clear} other {result.failed_unclear} lost {result.lost} "
                      f"back {result.service_back_s} full {result.full_strength_s} {result.errors_by_kind}",
                      flush=True)
    rows = table(results)
    command = ".venv/bin/python -m benchmarks.reliability.faults " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "runs": {k: [r.to_dict() for r in v]
                                                                for k, v in results.items()}}, indent=2))
    if args.markdown:
        from benchmarks.markdown import write_section

        write_section(args.markdown, markdown(rows, command=command.strip(), seconds=args.seconds, rate=args.rate,
                                              model=args.model), title="# Reliability")
    bad = [r["fault"] for r in rows if r["lost"] or r["failed_unclear"] or r["leftovers"]]
    print("every request accounted for" if not bad else f"PROBLEMS in: {', '.join(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
