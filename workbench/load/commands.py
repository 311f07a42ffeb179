"""``workbench bench``: load-test an OIP v2 endpoint, print the latency table, save a run record."""

from __future__ import annotations

from typing import Any

import click

from workbench.errors import ConfigError


def _sweep_schedules(text: str, arrival: str, seed: int) -> list[Any]:
    """``rate=100,200,400`` or ``concurrency=1,4,16`` → one schedule per value."""
    from workbench.load.schedules import Closed, Constant, Poisson

    kind, eq, values = text.partition("=")
    kind = kind.strip().lower()
    if not eq or kind not in ("rate", "concurrency"):
        raise click.BadParameter(f"{text!r}: use rate=R1,R2,... or concurrency=C1,C2,...", param_hint="--sweep")
    try:
        numbers = [float(v) for v in values.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r}: the values must be numbers", param_hint="--sweep") from None
    if not numbers:
        raise click.BadParameter(f"{text!r}: give at least one value", param_hint="--sweep")
    if kind == "concurrency":
        if any(n != int(n) for n in numbers):
            raise click.BadParameter(f"{text!r}: concurrency values must be integers", param_hint="--sweep")
        return [Closed(concurrency=int(n)) for n in numbers]
    return [Poisson(rate=n, seed=seed) if arrival == "poisson" else Constant(rate=n) for n in numbers]


def _schedules(rate: float | None, concurrency: int | None, schedule: str | None, sweep: str | None,
               arrival: str, seed: int) -> list[Any]:
    from workbench.load.schedules import Closed, Constant, Poisson, parse_schedule

    given = [name for name, value in (("--rate", rate), ("--concurrency", concurrency), ("--schedule", schedule),
                                      ("--sweep", sweep)) if value is not None]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --rate R, --concurrency C, --schedule SPEC or --sweep SPEC"
                               + (f" (got {', '.join(given)})" if given else ""))
    if rate is not None:
        return [Poisson(rate=rate, seed=seed) if arrival == "poisson" else Constant(rate=rate)]
    if concurrency is not None:
        return [Closed(concurrency=concurrency)]
    if schedule is not None:
        return [parse_schedule(schedule)]
    return _sweep_schedules(sweep or "", arrival, seed)


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _result_table(rows: list[tuple[Any, dict[str, Any]]], title: str) -> Any:
    from rich.table import Table

    table = Table(title=title)
    table.add_column("schedule", min_width=20)
    for name in ("target\nreq/s", "achieved\nreq/s", "p50\nms", "p90\nms", "p99\nms", "max\nms", "errors"):
        table.add_column(name, justify="right", no_wrap=True)
    for _, s in rows:
        errors = ", ".join(f"{k} {v}" for k, v in s["errors_by_kind"].items()) or "0"
        target = _fmt(s["target_rps"], 1) if s["target_rps"] is not None else f"c={s['concurrency']}"
        mark = " [yellow]*[/]" if s["generator_limited"] else ""
        table.add_row(s["schedule"], target, _fmt(s["throughput_rps"], 1) + mark, _fmt(s["latency_p50_ms"]),
                      _fmt(s["latency_p90_ms"]), _fmt(s["latency_p99_ms"]), _fmt(s["latency_max_ms"]), errors)
    table.caption = ("latency from each request's intended send time (open loop) or its send (closed loop); "
                     "* = limited by the load generator")
    return table


def _run_with_progress(console: Any, run: Any, label: str) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), TextColumn("{task.fields[live]}"))
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(label, total=run.duration_s, live="starting…")
        run.start()
        while not run.wait(timeout_s=0.25):
            windows = run.windows
            if windows:
                w = windows[-1]
                p99 = f"{w.latency.p99_ms:,.2f} ms" if w.latency else "-"
                errors = sum(w.errors.values())
                progress.update(task, completed=min(run.duration_s, w.end_s - windows[0].start_s),
                                live=f"{w.throughput_rps:,.0f} req/s  p99 {p99}  errors {errors}  in flight {w.in_flight}")
        progress.update(task, completed=run.duration_s)


@click.command()
@click.argument("target")
@click.option("--model", "-m", required=True, help="The model's name on the server (the OIP path).")
@click.option("--rate", type=float, help="Open loop at R requests/s.")
@click.option("--concurrency", type=int, help="Closed loop with C clients.")
@click.option("--schedule", help="A schedule: 'poisson:200', 'step:rates=100/200/400,step_s=2', "
                                 "'ramp:50,500', 'spike:100,1000,at_s=3,length_s=1', 'closed:8'.")
@click.option("--sweep", help="Several runs one after the other: 'rate=100,200,400' or 'concurrency=1,4,16'.")
@click.option("--duration", "duration_s", type=float, default=10.0, show_default=True, help="Seconds per run.")
@click.option("--arrival", type=click.Choice(["constant", "poisson"]), default="poisson", show_default=True,
              help="Arrival process for --rate and rate sweeps.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of Poisson arrivals.")
@click.option("--binary/--json", default=False, show_default=True, help="Binary tensor extension or JSON bodies.")
@click.option("--batch-size", type=int, default=1, show_default=True, help="Rows per request.")
@click.option("--timeout", "timeout_s", type=float, default=10.0, show_default=True, help="Client timeout, seconds.")
@click.option("--processes", type=int, default=1, show_default=True, help="Load generator processes.")
@click.option("--max-connections", type=int, help="Connection pool size (default: 256 open loop, C closed loop).")
@click.option("--window-ms", type=float, default=500, show_default=True, help="Telemetry window length.")
@click.option("--runs-dir", type=click.Path(file_okay=False), help="Where run records go (default: $WORKBENCH_RUNS).")
@click.option("--no-save", is_flag=True, help="Do not save run records.")
def bench(target: str, model: str, rate: float | None, concurrency: int | None, schedule: str | None,
          sweep: str | None, duration_s: float, arrival: str, seed: int, binary: bool, batch_size: int,
          timeout_s: float, processes: int, max_connections: int | None, window_ms: float, runs_dir: str | None,
          no_save: bool) -> None:
    """Load-test TARGET (an OIP v2 base URL such as http://127.0.0.1:8000) and print the latencies.

    Latency is measured from each request's intended send time, so stalls are never hidden. Each run
    is saved as a run record (see `workbench runs`).
    """
    from rich.console import Console

    from workbench.load.run import LoadRun
    from workbench.load.targets import HttpTarget

    schedules = _schedules(rate, concurrency, schedule, sweep, arrival, seed)
    http_target = HttpTarget(url=target, model=model, binary=binary, batch_size=batch_size, timeout_s=timeout_s)
    if not 0 < duration_s <= 86_400:
        raise ConfigError(f"--duration must be > 0 and <= 86400 seconds, got {duration_s}")
    console = Console()
    rows = []
    for i, sched in enumerate(schedules):
        run = LoadRun(http_target, sched, duration_s=duration_s, window_ms=window_ms, processes=processes,
                      max_connections=max_connections, save=not no_save, runs_dir=runs_dir,
                      context={"cli": "bench", "sweep": sweep, "sweep_step": i} if sweep else {"cli": "bench"})
        try:
            _run_with_progress(console, run, f"{model} {sched.describe()}")
        finally:
            run.stop()
        if run.error is not None:
            raise run.error
        rows.append((run, run.summary()))
    console.print(_result_table(rows, title=f"{model} at {http_target.url} ({duration_s:g} s per run, "
                                             f"{'binary' if binary else 'JSON'})"))
    for run, s in rows:
        if s["generator_limited"]:
            console.print(f"[yellow]* {s['schedule']}: {s['generator_message']}[/]")
        ceiling = f", ceiling ≈ {s['generator_ceiling_rps']:,.0f} req/s" if s["generator_ceiling_rps"] else ""
        console.print(f"{s['schedule']}: load generator lag p99 {s['generator_lag_p99_ms']:.2f} ms, "
                      f"CPU {s['generator_cpu']:.0%} of a core per process{ceiling}")
        if run.record is not None:
            console.print(f"run record: {run.record.path}")


__all__ = ["bench"]
