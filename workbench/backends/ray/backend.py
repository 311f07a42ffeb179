"""``RayBackend``: the Backend protocol on Ray Serve, so a config that runs locally runs on a cluster.

::

    with RayBackend(models={"mlp": load_model("mlp")}, config=ServeConfig(placement={"replicas": 2}),
                    address=None) as backend:                 # None: $RAY_ADDRESS, else a local Ray
        y = backend.infer("mlp", x)
        backend.reconfigure("mlp", max_batch_size=16, replicas=3)   # live, replicas keep running
        serve_http(backend, port=8000)                         # the same OIP v2 API as the local backend

Each model is one Serve application (``<app_prefix><model>``) of one deployment per pipeline stage
(see :mod:`.options` for how ServeConfig maps onto Ray Serve). Like the local ``Server``, the backend
owns an event-loop thread (``backend.loop``) on which the HTTP app and :meth:`submit` run; requests
await Ray's deployment handles there. Request records and configuration changes reach subscribers on
that thread. A status thread polls ``serve.status()`` once a second for replica counts (``stats``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.errors import BackendUnavailable, ConfigError, ModelLoadError, ModelNotFound, RequestTimeout
from workbench.serving.config import ServeConfig, as_serve_config, configs_for_models
from workbench.serving.hub import Hub
from workbench.serving.records import ConfigChange, RequestRecord
from workbench.serving.sources import check_placement, check_same_signature, resolve_artifact

from .options import ROUTING, RayOptions

if TYPE_CHECKING:
    from .cluster import RayConnection
    from .served import ServedModel

log = logging.getLogger("workbench.backends.ray")
_STATUS_INTERVAL_S = 1.0


class RayBackend:
    """Serves models by name on Ray Serve. See the module docstring.

    ``address``: ``None`` (``$RAY_ADDRESS`` if set, else start a local Ray; stopped at close),
    ``"auto"`` (the cluster this machine belongs to), ``"host:6379"`` or ``"ray://host:10001"``; an
    already initialised Ray is used as it is. ``artifact_dir``: where models given as objects are saved
    for the replicas to load; on a multi-node cluster it must be a folder every node can read (a shared
    filesystem). ``init_options`` go to ``ray.init`` (e.g. ``num_cpus``, ``runtime_env``);
    ``ray_actor_options``, ``autoscaling``, ``max_ongoing_requests`` and ``app_prefix`` are
    :class:`~workbench.backends.ray.options.RayOptions`."""

    kind = "ray"

    def __init__(self, models: Mapping[str, Any] | None = None, config: ServeConfig | Mapping[str, Any] | None = None,
                 *, address: str | None = None, artifact_dir: str | Path | None = None,
                 init_options: Mapping[str, Any] | None = None, ray_actor_options: Mapping[str, Any] | None = None,
                 autoscaling: Mapping[str, Any] | None = None, max_ongoing_requests: int | None = None,
                 app_prefix: str = "workbench-", close_timeout_s: float = 30.0):
        self._sources: dict[str, Any] = dict(models or {})
        self._initial_configs = configs_for_models(list(self._sources), config)
        self.options = RayOptions(ray_actor_options=dict(ray_actor_options) if ray_actor_options else None,
                                  autoscaling=dict(autoscaling) if autoscaling else None,
                                  max_ongoing_requests=max_ongoing_requests, app_prefix=app_prefix)
        if address is not None and (not isinstance(address, str) or not address):
            raise ConfigError(f"address must be 'auto', 'host:port' or 'ray://host:port', got {address!r}")
        self.address = address
        self.init_options = dict(init_options or {})
        self.close_timeout_s = close_timeout_s
        self.loop: asyncio.AbstractEventLoop | None = None
        self.connection: RayConnection | None = None
        self._artifact_dir = Path(artifact_dir) if artifact_dir is not None else None
        self._workdir: Path | None = None
        self._hub = Hub()
        self._models: dict[str, ServedModel] = {}
        self._ids = itertools.count(1)
        self._state = "new"
        self._lock = threading.Lock()
        self._deploy_lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._loop_thread_id: int | None = None
        self._status_thread: threading.Thread | None = None
        self._stop_status = threading.Event()

    @property
    def changes(self) -> list[ConfigChange]:
        """Every configuration change so far, oldest first."""
        return self._hub.changes

    # -------------------------------------------------------------- lifecycle
    def __enter__(self) -> RayBackend:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> RayBackend:
        """Attach to Ray, start Serve (without its HTTP proxy) and deploy every model; returns when each
        has a running replica (or raises ModelLoadError / BackendUnavailable)."""
        with self._lock:
            if self._state != "new":
                if self._state == "running":
                    return self
                raise BackendUnavailable("this backend was closed; create a new one")
            self._state = "running"
        try:
            from ray import serve  # noqa: F401  (fail here, clearly, when the extra is missing)

            from . import cluster
        except ImportError as exc:
            self._state = "closed"
            raise BackendUnavailable(f"the Ray backend needs Ray Serve: pip install 'workbench[ray]' ({exc})") from None
        self._workdir = Path(tempfile.mkdtemp(prefix="workbench-ray-", dir=self._artifact_dir))
        self.loop = self._hub.loop = asyncio.new_event_loop()
        started = threading.Event()
        self._thread = threading.Thread(target=self._run_loop, args=(started,), name="workbench-ray", daemon=True)
        self._thread.start()
        started.wait(10)
        try:
            self.connection = cluster.connect(self.address, self.init_options)
            cluster.start_serve()
            for name, source in self._sources.items():
                self.add_model(name, source, self._initial_configs[name])
        except BaseException:
            self.close()
            raise
        self._status_thread = threading.Thread(target=self._watch_status, name="workbench-ray-status", daemon=True)
        self._status_thread.start()
        return self

    def _run_loop(self, started: threading.Event) -> None:
        loop = self.loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        self._loop_thread_id = threading.get_ident()
        loop.call_soon(started.set)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def close(self, timeout_s: float | None = None) -> None:
        """Refuse new requests, let in-flight ones finish (40 % of ``timeout_s``), delete this backend's
        Serve applications, and stop the local Ray if this backend started it (waiting until its
        processes have exited). A cluster it connected to keeps running. Safe to call twice."""
        with self._lock:
            if self._state != "running":
                self._state = "closed"
                return
            self._state = "closing"
        self._not_on_loop("close")
        timeout_s = self.close_timeout_s if timeout_s is None else timeout_s
        for served in self._models.values():
            served.closed = True
        deadline = time.monotonic() + timeout_s * 0.4
        while time.monotonic() < deadline and any(m.in_flight_requests for m in list(self._models.values())):
            time.sleep(0.01)
        self._stop_status.set()
        if self._status_thread is not None:
            self._status_thread.join(timeout=5)
        for name in list(self._models):
            self._delete_app(name)
        if self.loop is not None and self._thread is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
        if self.connection is not None:
            from .cluster import release

            release(self.connection, timeout_s)
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
        self._state = "closed"

    def _delete_app(self, name: str) -> None:
        from ray import serve

        served = self._models.pop(name)
        try:
            serve.delete(served.app_name)
        except Exception as exc:  # the cluster may be gone already
            log.warning("could not delete Serve application %r: %s", served.app_name, exc)

    # --------------------------------------------------------------- requests
    async def submit(self, model: str, inputs: np.ndarray, *, timeout_ms: float | None = None) -> np.ndarray:
        """Infer on ``backend.loop`` itself (the HTTP app does): no thread hop."""
        if asyncio.get_running_loop() is not self.loop:
            raise RuntimeError("submit() must be awaited on backend.loop; from other loops use infer_async()")
        received = time.monotonic()
        served = self._served(model)
        if self._state != "running":
            raise BackendUnavailable("the Ray backend is closing", model=model)
        return await served.serve(next(self._ids), inputs, timeout_ms, received)

    def infer(self, model: str, inputs: np.ndarray, *, timeout_ms: float | None = None) -> np.ndarray:
        """Infer from any thread but the backend's loop thread."""
        self._not_on_loop("infer")
        loop = self._running_loop()
        future = asyncio.run_coroutine_threadsafe(self.submit(model, inputs, timeout_ms=timeout_ms), loop)
        try:
            return future.result(timeout=self._wait_s(model, timeout_ms))
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise RequestTimeout(f"no answer from model {model!r} in time (is the backend's loop blocked?)",
                                 model=model) from None

    async def infer_async(self, model: str, inputs: np.ndarray, *, timeout_ms: float | None = None) -> np.ndarray:
        """Infer from any event loop; on ``backend.loop`` it is :meth:`submit`."""
        loop = self._running_loop()
        if asyncio.get_running_loop() is loop:
            return await self.submit(model, inputs, timeout_ms=timeout_ms)
        future = asyncio.run_coroutine_threadsafe(self.submit(model, inputs, timeout_ms=timeout_ms), loop)
        return await asyncio.wrap_future(future)

    def _wait_s(self, model: str, timeout_ms: float | None) -> float:
        served = self._models.get(model)
        ms = timeout_ms if timeout_ms is not None else (served.config.admission.timeout_ms if served else 10_000.0)
        return ms / 1000.0 + 10.0  # every request ends by its deadline; this is a safety net

    def run_coroutine(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future:
        """Run ``coro`` on ``backend.loop`` (e.g. the HTTP server); returns a concurrent future."""
        return asyncio.run_coroutine_threadsafe(coro, self._running_loop())

    # ----------------------------------------------------------------- models
    def models(self) -> list[str]:
        return sorted(self._models)

    def add_model(self, name: str, source: Any, config: ServeConfig | Mapping[str, Any] | None = None) -> None:
        """Serve another model under ``name`` (a new Serve application); returns when it runs."""
        from .apps import deploy, wait_running
        from .served import ServedModel

        if not isinstance(name, str) or not name or "/" in name or "#" in name:
            raise ConfigError(f"model name must be a non-empty string without '/' or '#', got {name!r}")
        if name in self._models:
            raise ConfigError(f"a model named {name!r} is already served; remove_model() it first")
        self._running_loop()
        cfg = as_serve_config(config)
        assert self._workdir is not None
        artifact = resolve_artifact(source, self._workdir, name)
        check_placement(artifact, cfg.placement.stages, cfg.placement.split)
        served = ServedModel(name, f"{self.options.app_prefix}{name}", artifact, cfg, self.options, self._record)
        with self._deploy_lock:
            self._models[name] = served
            try:
                deploy(served, cfg, artifact)
                wait_running(served, cfg, cfg.placement.start_timeout_s)
            except BaseException:
                self._delete_app(name)
                raise
        self._change(name, {"model": [None, artifact.variant]}, f"serving {name} ({artifact.variant}) on Ray Serve")

    def remove_model(self, name: str) -> None:
        """Stop serving ``name`` (its Serve application is deleted)."""
        served = self._served(name)
        with self._deploy_lock:
            served.closed = True
            self._delete_app(name)
        self._change(name, {"model": [served.variant, None]}, f"stopped serving {name}")

    def model_info(self, name: str) -> dict[str, Any]:
        served = self._served(name)
        return {"name": name, "signature": served.artifact.signature.to_dict(), "variant": served.variant,
                "artifact": str(served.artifact.path), "config": served.config.to_dict(), "ready": served.ready(),
                "backend": "ray", "routing": ROUTING, "application": served.app_name,
                "deployments": served.deployments}

    # ----------------------------------------------------------- live changes
    def reconfigure(self, model: str, config: ServeConfig | Mapping[str, Any] | None = None, *,
                    wait: bool = True, **changes: Any) -> ServeConfig:
        """Change how ``model`` is served, live. Batching (size, delay, on/off), replicas and the queue
        limit update the running replicas in place; stages, split, threads and device roll new ones
        (Ray replaces replicas gradually); timeouts and retries apply on the driver at once; ``routing``
        is recorded but Ray's router keeps deciding. With ``wait`` it returns once Serve reports the
        application running again."""
        self._not_on_loop("reconfigure")
        served = self._served(model)
        new = as_serve_config(config) if config is not None else served.config
        new = new.replace(**changes) if changes else new
        return self._apply(served, new, None, wait)

    async def reconfigure_async(self, model: str, config: ServeConfig | Mapping[str, Any] | None = None, *,
                                wait: bool = True, **changes: Any) -> ServeConfig:
        """:meth:`reconfigure` for event loops (it runs in a thread: Serve's API blocks)."""
        served = self._served(model)
        new = as_serve_config(config) if config is not None else served.config
        new = new.replace(**changes) if changes else new
        return await asyncio.to_thread(self._apply, served, new, None, wait)

    def swap_variant(self, model: str, source: Any, *, wait: bool = True) -> None:
        """Serve another variant of ``model`` (same signature): Ray rolls its replicas over to it."""
        served = self._served(model)
        assert self._workdir is not None
        artifact = resolve_artifact(source, self._workdir, model)
        check_same_signature(model, served.artifact, artifact)
        self._apply(served, served.config, artifact, wait)

    def _apply(self, served: ServedModel, new: ServeConfig, artifact: Any, wait: bool) -> ServeConfig:
        from .apps import deploy, wait_running

        check_placement(artifact or served.artifact, new.placement.stages, new.placement.split)
        if self.options.autoscaling is not None and new.placement.replicas != served.config.placement.replicas:
            raise ConfigError(f"model {served.name!r} autoscales between {self.options.autoscaling.get('min_replicas', 1)}"
                              f" and {self.options.autoscaling.get('max_replicas', 1)} replicas on Ray; its replica "
                              "count cannot be set")
        with self._deploy_lock:
            old_config, old_artifact = served.config, served.artifact
            changes: dict[str, list[Any]] = old_config.diff(new)
            if artifact is not None:
                changes["variant"] = [old_artifact.variant, artifact.variant]
                changes["artifact"] = [str(old_artifact.path), str(artifact.path)]
            if not changes:
                return new
            deploy(served, new, artifact or old_artifact)
            text = ", ".join(f"{k} {v[0]} → {v[1]}" for k, v in changes.items() if k != "artifact")
            if "routing" in changes:
                text += " (routing stays Ray Serve's own)"
            self._change(served.name, changes, text)
            if wait:
                try:
                    wait_running(served, new, new.placement.start_timeout_s)
                except ModelLoadError as exc:
                    deploy(served, old_config, old_artifact)
                    self._change(served.name, {k: [v[1], v[0]] for k, v in changes.items()}, f"reverted: {exc}")
                    raise ModelLoadError(f"model {served.name!r}: the change did not take effect, the previous "
                                         f"config is deployed again: {exc}") from None
        return new

    def _change(self, model: str, changes: dict[str, list[Any]], description: str) -> None:
        """Record a change on the loop thread (where subscribers are called), and wait for it."""
        async def change() -> None:
            self._hub.change(model, changes, description)

        self.run_coroutine(change()).result(timeout=10)

    # ------------------------------------------------------------ observation
    def stats(self) -> dict[str, dict[str, Any]]:
        """Per model: in flight, replicas by state (from Serve), outcomes, restarts, config."""
        if self._state != "running":
            return {}
        if threading.get_ident() == self._loop_thread_id:
            return self._stats()

        async def stats() -> dict[str, dict[str, Any]]:
            return self._stats()

        return self.run_coroutine(stats()).result(timeout=10)

    def _stats(self) -> dict[str, dict[str, Any]]:
        return {name: served.stats() for name, served in self._models.items()}

    def subscribe(self, callback: Callable[[list[RequestRecord]], None]) -> Callable[[], None]:
        """Receive request records in lists on the loop thread; returns an unsubscribe function."""
        return self._hub.subscribe(callback)

    def subscribe_changes(self, callback: Callable[[ConfigChange], None]) -> Callable[[], None]:
        """Receive every :class:`ConfigChange` as it happens (on the loop thread)."""
        return self._hub.subscribe_changes(callback)

    def _record(self, record: RequestRecord) -> None:
        self._hub.record(record)

    def _watch_status(self) -> None:
        from .apps import watch_status

        watch_status(lambda: list(self._models.values()), self._stop_status, _STATUS_INTERVAL_S)

    # ---------------------------------------------------------------- helpers
    def _served(self, model: str) -> ServedModel:
        try:
            return self._models[model]
        except KeyError:
            raise ModelNotFound(f"no model named {model!r} is served; served: {sorted(self._models)}",
                                model=model) from None

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._state not in ("running", "closing") or self.loop is None:
            raise BackendUnavailable("the Ray backend is not running: call start() or use it as a context manager"
                                     if self._state == "new" else "the Ray backend is closed")
        return self.loop

    def _not_on_loop(self, what: str) -> None:
        if threading.get_ident() == self._loop_thread_id:
            raise RuntimeError(f"{what}() blocks, so it cannot run on backend.loop; use its async form there")


__all__ = ["RayBackend"]
