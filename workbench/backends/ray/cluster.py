"""Connecting to Ray (a running cluster, or a local one we start) and Serve; leaving nothing behind.

A local cluster starts no dashboard, and Serve runs without its HTTP proxy: our own HTTP API is the
front (``proxy_location="Disabled"``), bound to 127.0.0.1. Ray 2.60's own gRPC ports (GCS, raylet,
workers) still listen on every interface whatever ``ray.init`` is told (it turns 127.0.0.1 into the
node's address); Ray's token authentication, on by default since 2.5x, guards them. A cluster we
connect to is left running.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from workbench.errors import BackendUnavailable

log = logging.getLogger("workbench.backends.ray")

#: process names (or command-line fragments) of a Ray node's processes
_RAY_MARKERS = ("raylet", "gcs_server", "ray::", "default_worker.py", "log_monitor.py", "monitor.py",
                "dashboard", "runtime_env/agent", "ray_client_server")


@dataclass
class RayConnection:
    """How this process is attached to Ray: ``started`` a local cluster (ours to stop), ``connected``
    by calling ``ray.init`` (ours to disconnect), or neither (someone else initialised Ray)."""

    started: bool
    connected: bool
    address: str


def connect(address: str | None = None, init_options: dict[str, Any] | None = None) -> RayConnection:
    """Attach to Ray: reuse an initialised Ray; else ``address`` (or ``$RAY_ADDRESS``: ``auto``,
    ``host:port`` or ``ray://host:10001``); else start a local cluster (see :func:`start_local`)."""
    import ray

    if ray.is_initialized():
        return RayConnection(started=False, connected=False, address=_address())
    address = address or os.environ.get("RAY_ADDRESS") or None
    options = {"log_to_driver": False, **(init_options or {})}
    if address is None:
        start_local(**options)
        return RayConnection(started=True, connected=True, address=_address())
    try:
        ray.init(address=address, **options)
    except Exception as exc:  # ConnectionError, or Ray's own when nothing listens there
        raise BackendUnavailable(
            f"cannot connect to the Ray cluster at {address!r}: {exc}. Start one (`ray start --head`, or a "
            "KubeRay RayCluster) or leave the Ray address unset to start a local one") from None
    return RayConnection(started=False, connected=True, address=_address())


def start_local(num_cpus: int | None = None, **init_options: Any) -> None:
    """Start a single-node Ray here, without a dashboard."""
    import ray

    options = {"include_dashboard": False, "log_to_driver": False, **init_options}
    ray.init(num_cpus=num_cpus, **options)


def _address() -> str:
    import ray

    try:
        return str(ray.get_runtime_context().gcs_address)
    except Exception:  # descriptive only
        return "?"


def start_serve() -> None:
    """Start Serve on the cluster (or attach to the running one) without its HTTP proxy."""
    from ray import serve

    serve.start(proxy_location="Disabled")


def ray_processes() -> list[Any]:
    """This process's descendants that belong to a Ray node (GCS, raylet, workers, agents)."""
    import psutil

    out = []
    for proc in psutil.Process().children(recursive=True):
        try:
            text = " ".join([proc.name(), *proc.cmdline()])
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if any(marker in text for marker in _RAY_MARKERS):
            out.append(proc)
    return out


def release(connection: RayConnection, timeout_s: float = 30.0) -> list[int]:
    """Undo :func:`connect`: stop Serve and the cluster if we started it (and wait until every one of
    its processes has exited, killing stragglers after ``timeout_s``), or just disconnect. Returns the
    pids that had to be killed."""
    import ray

    if not connection.connected or not ray.is_initialized():
        return []
    if not connection.started:
        ray.shutdown()  # disconnects this driver; the cluster keeps running
        return []
    return stop_local(timeout_s)


def stop_local(timeout_s: float = 30.0) -> list[int]:
    """Shut down Serve and the local Ray this process started; wait (bounded) for its processes."""
    import psutil
    import ray
    from ray import serve

    processes = ray_processes()
    try:
        serve.shutdown()
    except Exception:  # Serve may not be running; the node goes down next anyway
        log.debug("serve.shutdown failed", exc_info=True)
    ray.shutdown()
    _, alive = psutil.wait_procs(processes, timeout=timeout_s)
    killed = []
    for proc in alive:  # our own descendants: safe to signal (wait_procs checked they are the same)
        try:
            proc.kill()
            killed.append(proc.pid)
        except psutil.NoSuchProcess:
            pass
    if killed:
        log.warning("Ray processes %s did not exit within %.0f s and were killed", killed, timeout_s)
        psutil.wait_procs(alive, timeout=5)
    return killed


def wait_for(condition: Any, timeout_s: float, interval_s: float = 0.1) -> Any:
    """Poll ``condition`` until truthy (returned) or ``timeout_s`` passes (``None``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval_s)


__all__ = ["RayConnection", "connect", "ray_processes", "release", "start_local", "start_serve", "stop_local"]
