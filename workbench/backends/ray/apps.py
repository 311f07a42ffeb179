"""A model's Serve application: deploying it (again) and reading Serve's status of it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ray import serve

from workbench.errors import ModelLoadError
from workbench.serving.config import ServeConfig

from .deployments import build_application
from .served import ServedModel

log = logging.getLogger("workbench.backends.ray")


def deploy(served: ServedModel, config: ServeConfig, artifact: Any) -> None:
    """(Re)deploy ``served``'s application with ``config`` and ``artifact``; returns once Serve has
    taken it (its status is then DEPLOYING), without waiting for replicas. Settings that the code
    version does not cover update the running replicas in place (see :func:`.options.code_version`)."""
    served.generation += 1
    app = build_application(served.name, artifact, config, served.options, served.generation)
    [handle] = serve.run_many([serve.RunTarget(target=app, name=served.app_name, route_prefix=None)],
                              wait_for_applications_running=False)
    served.handle, served.config, served.artifact = handle, config, artifact


def wait_running(served: ServedModel, config: ServeConfig, timeout_s: float) -> None:
    """Until Serve reports the application running with every stage at its replica count (with
    autoscaling: at least one); ModelLoadError if it fails to deploy or takes longer than ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = snapshot(serve.status(), served.app_name)
        served.status = status
        app_status = status.get("app")
        if app_status == "DEPLOY_FAILED" or (app_status == "UNHEALTHY" and time.monotonic() > deadline):
            raise ModelLoadError(f"cannot serve model {served.name!r} on Ray: {status.get('message') or app_status}")
        if app_status == "RUNNING" and served.ready() and _settled(served, config, status):
            return
        if time.monotonic() > deadline:
            raise ModelLoadError(f"model {served.name!r} was not running on Ray within {timeout_s:g} s "
                                 f"(status {app_status}: {status.get('message') or 'no message'}); are there "
                                 "enough CPUs in the cluster for its replicas?")
        time.sleep(0.1)


def _settled(served: ServedModel, config: ServeConfig, status: dict[str, Any]) -> bool:
    if served.options.autoscaling is not None:
        return True
    deployments = status.get("deployments", {})
    want = {"RUNNING": config.placement.replicas}
    return all(deployments.get(d, {}).get("replicas") == want for d in served.deployments)


def watch_status(models: Callable[[], list[ServedModel]], stop: threading.Event, interval_s: float) -> None:
    """Every ``interval_s`` until ``stop``: give each served model its application's latest status."""
    while not stop.wait(interval_s):
        try:
            status = serve.status()
        except Exception as exc:  # the cluster may be restarting; keep the last known status
            log.debug("serve.status() failed: %s", exc)
            continue
        for served in models():
            served.status = snapshot(status, served.app_name)


def snapshot(status: Any, app_name: str) -> dict[str, Any]:
    """The part of ``serve.status()`` about one application, as plain data."""
    app = status.applications.get(app_name)
    if app is None:
        return {"app": "NOT_STARTED", "message": "", "deployments": {}}
    return {"app": str(getattr(app.status, "value", app.status)), "message": app.message,
            "deployments": {name: {"status": str(getattr(d.status, "value", d.status)), "message": d.message,
                                   "replicas": {str(getattr(k, "value", k)): int(v)
                                                for k, v in d.replica_states.items()}}
                            for name, d in app.deployments.items()}}


__all__ = ["deploy", "snapshot", "wait_running", "watch_status"]
