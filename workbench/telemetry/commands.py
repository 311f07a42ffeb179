"""``workbench runs``: list, show and compare saved load runs."""

from __future__ import annotations

from typing import Any

import click

_runs_dir_option = click.option("--runs-dir", type=click.Path(file_okay=False),
                                help="Where run records are (default: $WORKBENCH_RUNS, $WORKBENCH_HOME/runs or "
                                     "~/.local/share/workbench/runs).")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items()) or "-"
    return str(value)


@click.group()
def runs() -> None:
    """Saved load runs: list them, show one, compare two."""


@runs.command("list")
@_runs_dir_option
def list_command(runs_dir: str | None) -> None:
    """List saved runs, oldest first."""
    from rich.console import Console
    from rich.table import Table

    from workbench.telemetry.runs import list_runs
    from workbench.telemetry.runs import runs_dir as default_dir

    found = list_runs(runs_dir)
    console = Console()
    if not found:
        console.print(f"no runs in {default_dir(runs_dir)}")
        return
    table = Table(title=f"runs in {default_dir(runs_dir)}")
    for name in ("id", "model", "target", "schedule", "duration s", "req/s", "p50 ms", "p99 ms", "errors", "note"):
        table.add_column(name, justify="right" if name in ("duration s", "req/s", "p50 ms", "p99 ms", "errors") else "left",
                         no_wrap=name in ("id", "p99 ms", "req/s"))
    for run in found:
        c, s = run["context"], run["summary"]
        target = c.get("target", {})
        note = "generator-limited" if s.get("generator_limited") else ("stopped early" if s.get("stopped_early") else "")
        table.add_row(run["id"], str(c.get("model", "-")), str(target.get("url", target.get("kind", "-"))),
                      str(s.get("schedule", "-")), _fmt(s.get("duration_s")), _fmt(s.get("throughput_rps")),
                      _fmt(s.get("latency_p50_ms")), _fmt(s.get("latency_p99_ms")), _fmt(s.get("errors")), note)
    console.print(table)


@runs.command("show")
@click.argument("run_id")
@_runs_dir_option
def show_command(run_id: str, runs_dir: str | None) -> None:
    """Show RUN_ID (an id, a unique prefix, or its last six characters): context, summary, windows."""
    from rich.console import Console
    from rich.table import Table

    from workbench.telemetry.runs import RunRecord

    record = RunRecord.load(run_id, directory=runs_dir)
    console = Console()
    c = record.context
    context = Table(title=f"run {record.id}", show_header=False)
    for key in ("model", "variant", "started_at", "duration_s", "window_ms", "processes"):
        context.add_row(key, _fmt(c.get(key)))
    context.add_row("target", _fmt(c.get("target")))
    context.add_row("schedule", _fmt(c.get("schedule")))
    if c.get("serve_config"):
        context.add_row("serve config", _fmt(c["serve_config"]))
    context.add_row("versions", _fmt(c.get("versions")))
    context.add_row("machine", _fmt({k: v for k, v in c.get("machine", {}).items() if k != "python_executable"}))
    context.add_row("path", str(record.path))
    console.print(context)
    summary = Table(title="summary", show_header=False)
    for key, value in record.summary.items():
        if value not in (None, "", {}):
            summary.add_row(key, _fmt(value))
    console.print(summary)
    windows = Table(title=f"windows ({c.get('window_ms', '?')} ms)")
    for name in ("start s", "sent", "ok", "errors", "req/s", "p50 ms", "p99 ms", "max ms", "in flight", "queue", "lag ms"):
        windows.add_column(name, justify="right")
    for w in record.windows:
        lat = w.latency
        windows.add_row(_fmt(w.start_s), _fmt(w.sent), _fmt(w.ok), _fmt(sum(w.errors.values())),
                        _fmt(round(w.throughput_rps, 1)), _fmt(lat.p50_ms if lat else None),
                        _fmt(lat.p99_ms if lat else None), _fmt(lat.max_ms if lat else None), _fmt(w.in_flight),
                        _fmt(sum(w.queue_depth.values()) if w.queue_depth else None), _fmt(w.generator_lag_ms))
    console.print(windows)


@runs.command("compare")
@click.argument("run_a")
@click.argument("run_b")
@_runs_dir_option
@click.option("--all", "show_all", is_flag=True, help="Also list summary figures that are equal.")
def compare_command(run_a: str, run_b: str, runs_dir: str | None, show_all: bool) -> None:
    """Compare two runs: the context that differs and the summary figures side by side (b / a)."""
    from rich.console import Console
    from rich.table import Table

    from workbench.telemetry.runs import compare_runs

    frame = compare_runs(run_a, run_b, directory=runs_dir)
    a, b = frame.attrs["a"], frame.attrs["b"]
    table = Table(title=f"a = {a}   b = {b}")
    for name in ("", "field", "a", "b", "b / a"):
        table.add_column(name, justify="right" if name in ("a", "b", "b / a") else "left")
    for row in frame.itertuples(index=False):
        if row.section == "summary" and row.a == row.b and not show_all:
            continue
        ratio = "-" if row.ratio is None or row.ratio != row.ratio else f"{row.ratio:.3f}×"
        table.add_row(row.section, row.field, _fmt(row.a), _fmt(row.b), ratio)
    Console().print(table)


__all__ = ["runs"]
