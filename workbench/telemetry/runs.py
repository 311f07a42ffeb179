"""Run records: one folder per load run, in plain JSON, to list, show and compare runs later.

::

    $WORKBENCH_RUNS (or $WORKBENCH_HOME/runs, or ~/.local/share/workbench/runs)/
      20261124-184512-3fa9c2/
        context.json     model, variant, serve config, target, load schedule, versions, machine
        windows.jsonl    one telemetry Window per line (Window.to_dict(), histograms HDR base64)
        summary.json     the run's figures (percentiles, rates, errors, generator verdict)

A run's id is its folder name; commands accept any unique prefix of it, or its last six characters.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from workbench.errors import ConfigError
from workbench.telemetry.window import Window


def runs_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """Where run records live: ``path``, else $WORKBENCH_RUNS, $WORKBENCH_HOME/runs or ~/.local/share/workbench/runs."""
    if path is not None:
        return Path(path).expanduser()
    if os.environ.get("WORKBENCH_RUNS"):
        return Path(os.environ["WORKBENCH_RUNS"]).expanduser()
    if os.environ.get("WORKBENCH_HOME"):
        return Path(os.environ["WORKBENCH_HOME"]).expanduser() / "runs"
    return Path.home() / ".local" / "share" / "workbench" / "runs"


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    """Versions and machine facts for a run's context (cheap: no heavy imports)."""
    import psutil

    versions = {"python": platform.python_version(), "workbench": _version("workbench")}
    for name in ("torch", "numpy", "aiohttp", "hdrhistogram", "onnxruntime", "ray"):
        if (v := _version(name)) is not None:
            versions[name] = v
    machine = {"hostname": socket.gethostname(), "platform": platform.platform(), "machine": platform.machine(),
               "cpu_count": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
               "python_executable": sys.executable}
    return {"versions": versions, "machine": machine}


def _json_default(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    return repr(value)


def _dumps(value: Any, **kw: Any) -> str:
    return json.dumps(value, default=_json_default, **kw)


@dataclass(frozen=True)
class RunRecord:
    """A saved run: its context, its windows and its summary."""

    id: str
    path: Path
    context: dict[str, Any]
    windows: tuple[Window, ...]
    summary: dict[str, Any]

    @classmethod
    def create(cls, *, context: dict[str, Any], windows: list[Window] | tuple[Window, ...], summary: dict[str, Any],
               directory: str | os.PathLike[str] | None = None) -> RunRecord:
        """Write a new run folder (atomically: a finished folder or none) and return its record."""
        root = runs_dir(directory)
        root.mkdir(parents=True, exist_ok=True)
        run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        context = {**context, "id": run_id, "saved_at": time.time()}
        tmp = root / f".{run_id}.tmp"
        tmp.mkdir()
        (tmp / "context.json").write_text(_dumps(context, indent=2, sort_keys=True) + "\n")
        with open(tmp / "windows.jsonl", "w") as f:
            for window in windows:
                f.write(_dumps(window.to_dict(), separators=(",", ":")) + "\n")
        (tmp / "summary.json").write_text(_dumps(summary, indent=2, sort_keys=True) + "\n")
        tmp.rename(root / run_id)
        return cls.load(run_id, directory=root)

    @classmethod
    def load(cls, run: str | os.PathLike[str], *, directory: str | os.PathLike[str] | None = None) -> RunRecord:
        """Load a run by id (or unique prefix, or its six-character suffix) or by folder path."""
        path = resolve_run(run, directory=directory)
        try:
            context = json.loads((path / "context.json").read_text())
            summary = json.loads((path / "summary.json").read_text())
            with open(path / "windows.jsonl") as f:
                windows = tuple(Window.from_dict(json.loads(line)) for line in f if line.strip())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"run record {path} is incomplete or damaged: {exc}") from None
        return cls(id=path.name, path=path, context=context, windows=windows, summary=summary)

    def to_frame(self) -> Any:
        """The windows as a pandas DataFrame, one row per window (see ``Window.to_row``)."""
        import pandas as pd

        return pd.DataFrame([w.to_row() for w in self.windows])

    def __repr__(self) -> str:
        return f"RunRecord(id={self.id!r}, windows={len(self.windows)}, path={str(self.path)!r})"


def resolve_run(run: str | os.PathLike[str], *, directory: str | os.PathLike[str] | None = None) -> Path:
    candidate = Path(run).expanduser()
    if candidate.is_dir() and (candidate / "context.json").is_file():
        return candidate
    root = runs_dir(directory)
    name = str(run)
    ids = [p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")] if root.is_dir() else []
    matches = [i for i in ids if i == name] or [i for i in ids if i.startswith(name) or i.endswith(name)]
    if len(matches) == 1:
        return root / matches[0]
    if not matches:
        raise ConfigError(f"no run {name!r} in {root}; `workbench runs list` shows the runs there")
    raise ConfigError(f"{name!r} matches {len(matches)} runs ({', '.join(sorted(matches)[:5])}...); give more of the id")


def list_runs(directory: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """One dict per saved run, oldest first (by when it was saved): id, path, context and summary (windows
    are not read)."""
    root = runs_dir(directory)
    if not root.is_dir():
        return []
    out = []
    for path in sorted(root.iterdir()):
        if not path.is_dir() or path.name.startswith(".") or not (path / "summary.json").is_file():
            continue
        try:
            context = json.loads((path / "context.json").read_text())
            summary = json.loads((path / "summary.json").read_text())
        except (OSError, ValueError):
            continue  # a damaged folder is skipped in listings; `runs show` reports it
        out.append({"id": path.name, "path": path, "context": context, "summary": summary})
    return sorted(out, key=lambda run: (run["context"].get("saved_at", 0.0), run["id"]))


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``; lists stay values."""
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


#: context fields that differ between any two runs and say nothing about them
_IGNORED_CONTEXT = ("id", "saved_at", "started_at", "started_wall_time", "machine.python_executable")


def compare_runs(a: RunRecord | str, b: RunRecord | str, *, directory: str | os.PathLike[str] | None = None) -> Any:
    """A DataFrame of what differs: context fields that differ, and every summary figure side by side.

    Columns: ``section`` ("context" or "summary"), ``field``, ``a``, ``b``, ``ratio`` (b / a, numbers only).
    """
    import pandas as pd

    ra = a if isinstance(a, RunRecord) else RunRecord.load(a, directory=directory)
    rb = b if isinstance(b, RunRecord) else RunRecord.load(b, directory=directory)
    rows = []
    ca, cb = flatten(ra.context), flatten(rb.context)
    for key in sorted(set(ca) | set(cb)):
        if key in _IGNORED_CONTEXT:
            continue
        va, vb = ca.get(key), cb.get(key)
        if va != vb:
            rows.append({"section": "context", "field": key, "a": va, "b": vb, "ratio": _ratio(va, vb)})
    sa, sb = flatten(ra.summary), flatten(rb.summary)
    for key in sorted(set(sa) | set(sb)):
        va, vb = sa.get(key), sb.get(key)
        rows.append({"section": "summary", "field": key, "a": va, "b": vb, "ratio": _ratio(va, vb)})
    frame = pd.DataFrame(rows, columns=["section", "field", "a", "b", "ratio"])
    frame.attrs.update(a=ra.id, b=rb.id)
    return frame


def _ratio(a: Any, b: Any) -> float | None:
    numbers = (int, float)
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, numbers) or not isinstance(b, numbers):
        return None
    return round(b / a, 4) if a else None


__all__ = ["RunRecord", "compare_runs", "environment", "flatten", "list_runs", "resolve_run", "runs_dir"]
