"""What the notebook shows as tables: the status of a session and its live figures cut into phases.

Pure functions of the session's state and telemetry windows (no panel, no bokeh), returning pandas
DataFrames, so they print in a terminal as well as in a notebook.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from workbench.telemetry.window import Window
from workbench.ui.live import merged_latency, point
from workbench.ui.state import WorkbenchState

PHASE_COLUMNS = ("phase", "from_s", "to_s", "p50_ms", "p99_ms", "rps", "mean_batch_size")


def status_frame(state: WorkbenchState) -> Any:
    """Model, server, URL, settings, load, the current figures, and running or failed tasks: a DataFrame
    indexed by ``what`` with one ``value`` column."""
    import pandas as pd

    m, s, ld, live = state.model, state.serve, state.load, state.live
    rows: list[tuple[str, Any]] = [
        ("model", f"{m.model_name} ({m.variant})" if m.model_name else "-"),
        ("server", f"{s.status} ({s.backend})"),
        ("url", s.url or "-"),
        ("replicas ready", f"{s.workers} of {s.applied.get('replicas', s.replicas)}" if s.serving else "-"),
        ("settings", " ".join(f"{k}={v}" for k, v in (s.applied or s.flat()).items())),
        ("load", ld.status),
        ("p50 latency (ms)", "-" if live.p50_ms is None else round(live.p50_ms, 2)),
        ("p99 latency (ms)", "-" if live.p99_ms is None else round(live.p99_ms, 2)),
        ("throughput (req/s)", round(live.rps, 1)),
        ("errors (/s)", round(live.errors_per_s, 2)),
        ("last change", live.last_change or "-"),
    ]
    for name in ("model", "compress", "serve", "load"):
        task = getattr(state, name).task
        if task.busy:
            rows.append((f"{name} task", f"{task.message} ({task.progress} %)"))
        if task.error:
            rows.append((f"{name} error", task.error))
    return pd.DataFrame(rows, columns=["what", "value"]).set_index("what")


def phases_frame(windows: Iterable[Window]) -> Any:
    """``windows`` cut at each configuration change: one row per phase (what the live plot shows between
    two change markers) with its latency percentiles, throughput and mean batch size. The window a change
    falls in is left out, as it mixes both settings; so are windows without answered requests."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    current: list[Window] = []
    label = "start"

    def close_phase() -> None:
        answered = [w for w in current if w.ok or w.server_requests]
        if not answered:
            return
        hist = merged_latency(answered)
        points = [point(w) for w in answered]
        seconds = sum(w.length_s for w in answered) or 1.0
        rows.append({
            "phase": label, "from_s": round(answered[0].start_s, 1), "to_s": round(answered[-1].end_s, 1),
            "p50_ms": None if hist is None else round(hist.percentile(50) * 1000, 2),
            "p99_ms": None if hist is None else round(hist.percentile(99) * 1000, 2),
            "rps": round(sum(p["rps"] * w.length_s for p, w in zip(points, answered)) / seconds, 1),
            "mean_batch_size": round(sum(w.mean_batch_size or 0.0 for w in answered) / len(answered), 2),
        })

    for window in windows:
        if window.changes:
            close_phase()
            current = []
            label = "; ".join(str(c.get("description", "")) for c in window.changes)
            continue
        current.append(window)
    close_phase()
    return pd.DataFrame(rows, columns=list(PHASE_COLUMNS))


__all__ = ["PHASE_COLUMNS", "phases_frame", "status_frame"]
