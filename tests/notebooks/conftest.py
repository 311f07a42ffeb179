"""Fixtures for the notebook tests: a real Jupyter kernel (this venv's ``python3`` kernel, started by
``jupyter_client``) that always shuts down, and helpers to run code in it and to watch its processes."""

from __future__ import annotations

import os
import queue
import time
from dataclasses import dataclass, field
from typing import Any

import psutil
import pytest


@dataclass
class CellResult:
    """What one execution printed and displayed (text/plain of displays), and its error if it raised."""

    stdout: str = ""
    stderr: str = ""
    displays: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def text(self) -> str:
        return "\n".join([self.stdout, self.stderr, *self.displays])


class Kernel:
    """A running kernel; :meth:`run` executes code and gathers its outputs (with a timeout)."""

    def __init__(self, manager: Any, client: Any):
        self.manager, self.client = manager, client
        self.pid = int(manager.provisioner.process.pid)  # the kernel's process (kept after it has ended)

    def run(self, code: str, timeout_s: float = 120.0) -> CellResult:
        msg_id = self.client.execute(code)
        result = CellResult()
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"the kernel did not finish {code!r} within {timeout_s} s")
            try:
                msg = self.client.get_iopub_msg(timeout=remaining)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                if content["name"] == "stdout":
                    result.stdout += content["text"]
                else:
                    result.stderr += content["text"]
            elif kind in ("display_data", "execute_result"):
                result.displays.append(str(content["data"].get("text/plain", "")))
            elif kind == "error":
                result.error = f"{content['ename']}: {content['evalue']}\n" + "\n".join(content["traceback"])
            elif kind == "status" and content["execution_state"] == "idle":
                return result

    def ok(self, code: str, timeout_s: float = 120.0) -> CellResult:
        """Run ``code``; fail the test if it raised or printed a UsageError."""
        result = self.run(code, timeout_s)
        assert result.error is None, result.error
        assert "UsageError" not in result.stderr, result.stderr
        return result

    def descendants(self) -> set[int]:
        """The kernel's child processes (workers, load generators, ...), recursively, alive now."""
        try:
            return {p.pid for p in psutil.Process(self.pid).children(recursive=True) if _alive(p.pid)}
        except psutil.NoSuchProcess:
            return set()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def process_group(pgid: int) -> set[int]:
    """Live processes of process group ``pgid`` (Jupyter starts a kernel as the leader of its own group)."""
    members = set()
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid and _alive(p.pid):
                members.add(p.pid)
        except (psutil.Error, OSError):
            pass
    return members


def wait_gone(pids: set[int], timeout_s: float = 30.0) -> set[int]:
    """Wait until every process in ``pids`` has ended; returns those still alive at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = {pid for pid in pids if _alive(pid)}
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


@pytest.fixture
def kernel(tmp_path):
    """A fresh ``python3`` kernel of this environment, cwd and run records in ``tmp_path``."""
    from jupyter_client import KernelManager

    env = {**os.environ, "WORKBENCH_RUNS": str(tmp_path / "runs"), "PYTHONUNBUFFERED": "1"}
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(cwd=str(tmp_path), env=env)
    client = manager.client()
    client.start_channels()
    k = Kernel(manager, client)
    try:
        client.wait_for_ready(timeout=60)
        yield k
    finally:
        leftovers = k.descendants() | process_group(k.pid)
        client.stop_channels()
        if manager.is_alive():
            manager.shutdown_kernel(now=False)
        for pid in wait_gone(leftovers, timeout_s=15):  # never leave a process behind, whatever failed
            try:
                psutil.Process(pid).kill()
            except psutil.NoSuchProcess:
                pass


def window(index: int, latencies_ms: tuple[float, ...] = (), changes: tuple[str, ...] = (),
           batch_sizes: dict[int, int] | None = None, window_s: float = 0.5) -> Any:
    """A real telemetry Window of the client latencies ``latencies_ms``, with configuration changes."""
    from workbench.telemetry.histogram import LatencyHistogram
    from workbench.telemetry.window import Window

    fields: dict[str, Any] = {"histograms": {}}
    if latencies_ms:
        h = LatencyHistogram()
        h.record_many([v / 1000 for v in latencies_ms])
        fields.update(latency=h.stats(), ok=len(latencies_ms), sent=len(latencies_ms))
        fields["histograms"]["latency"] = h.encode()
    marks = tuple({"at_s": (index + 0.5) * window_s, "description": c, "changes": {}} for c in changes)
    return Window(index=index, start_s=index * window_s, end_s=(index + 1) * window_s, wall_time=1e9 + index,
                  batch_sizes=dict(batch_sizes or {}), changes=marks, **fields)


@pytest.fixture
def session(tmp_path):
    """A real WorkbenchSession (hub, task threads) that always closes."""
    from workbench.ui.session import WorkbenchSession

    s = WorkbenchSession(runs_dir=str(tmp_path / "runs"))
    try:
        yield s
    finally:
        s.close()
