"""Run ``workbench dashboard`` in a child process on a free port, and stop it as Ctrl+C would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Dashboard:
    url: str
    port: int
    proc: subprocess.Popen
    log: Path
    seen_children: set[int] = field(default_factory=set)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def note_children(self) -> set[int]:
        """Remember the dashboard's worker and load-generator processes running now (not multiprocessing's
        resource tracker, which lives as long as the dashboard)."""
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return self.seen_children
        for child in children:
            try:
                if "resource_tracker" not in " ".join(child.cmdline()):
                    self.seen_children.add(child.pid)
            except psutil.Error:
                pass
        return self.seen_children


@contextmanager
def running_dashboard(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
                      start_timeout_s: float = 60.0) -> Iterator[Dashboard]:
    """``workbench dashboard --port P *args``; waits until it says it is ready. On exit: SIGINT, then
    checks it stops within 60 s (killing it otherwise, and failing)."""
    port = free_port()
    log = tmp_path / f"dashboard-{port}.log"
    environment = {**os.environ, "WORKBENCH_RUNS": str(tmp_path / "runs"), **(env or {})}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "dashboard", "--port", str(port), *args],
                                stdout=out, stderr=subprocess.STDOUT, env=environment)
    dash = Dashboard(url=f"http://127.0.0.1:{port}/", port=port, proc=proc, log=log)
    try:
        deadline = time.monotonic() + start_timeout_s
        while "dashboard on " not in dash.output():
            if proc.poll() is not None:
                raise AssertionError(f"the dashboard exited with {proc.returncode}:\n{dash.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the dashboard did not start in {start_timeout_s} s:\n{dash.output()}")
            time.sleep(0.05)
        yield dash
    finally:
        dash.note_children()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            raise AssertionError(f"the dashboard did not stop within 60 s of Ctrl+C:\n{dash.output()}") from None
