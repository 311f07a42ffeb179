"""``Server``: the in-process controller that serves models by name from worker processes.

::

    with Server(models={"mlp": load_model("mlp")}, config=ServeConfig(placement={"replicas": 2})) as server:
        y = server.infer("mlp", x)                 # sync, thread-safe
        y = await server.infer_async("mlp", x)     # from any event loop
        server.reconfigure("mlp", max_batch_size=16, replicas=3)
        server.stats()

The controller is asyncio-native and runs in one event-loop thread the server owns (uvloop when it is
installed): ``server.loop``. Code running *on* that loop (e.g. an HTTP app started with
``server.run_coroutine(...)``) awaits :meth:`Server.submit` and reaches the batcher with no thread hop.
Every other entry point hops onto the loop. Nothing blocking runs on it.

Records: every request leaves a :class:`RequestRecord`; :meth:`subscribe` callbacks receive them in
lists, on the loop thread, once per loop iteration that completed some (see :mod:`.hub`). Callbacks
must be quick and must not block.
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
from typing import Any

import numpy as np

from workbench.errors import BackendUnavailable, ConfigError, ModelLoadError, ModelNotFound, RequestTimeout
from workbench.serving.config import ServeConfig, as_serve_config, configs_for_models
from workbench.serving.hub import Hub
from workbench.serving.records import ConfigChange, RequestRecord
from workbench.serving.runtime import ModelRuntime
from workbench.serving.sources import check_placement, check_same_signature, resolve_artifact

log = logging.getLogger("workbench.serving")
_TICK_S = 0.1


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


class Server:
    """Serves models by name from local worker processes. See the module docstring."""

    def __init__(self, models: Mapping[str, Any] | None = None,
                 config: ServeConfig | Mapping[str, Any] | None = None, *, close_timeout_s: float = 10.0):
        self._sources: dict[str, Any] = dict(models or {})
        self._initial_configs = configs_for_models(list(self._sources), config)
        self.close_timeout_s = close_timeout_s
        self.loop: asyncio.AbstractEventLoop | None = None
        self._hub = Hub()
        self._thread: threading.Thread | None = None
        self._runtimes: dict[str, ModelRuntime] = {}
        self._ids = itertools.count(1)
        self._workdir: Path | None = None
        self._state = "new"
        self._lock = threading.Lock()
        self._loop_thread_id: int | None = None

    @property
    def changes(self) -> list[ConfigChange]:
        """Every configuration change so far, oldest first, each with its time."""
        return self._hub.changes

    # ------------------------------------------------------------- lifecycle
    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> Server:
        """Start the loop thread and every model's workers; returns when all are ready (or raises)."""
        with self._lock:
            if self._state != "new":
                if self._state == "running":
                    return self
                raise BackendUnavailable("this server was closed; create a new one")
            self._state = "running"
        self._workdir = Path(tempfile.mkdtemp(prefix="workbench-serve-"))
        self.loop = self._hub.loop = _new_loop()
        started = threading.Event()
        self._thread = threading.Thread(target=self._run_loop, args=(started,), name="workbench-serving", daemon=True)
        self._thread.start()
        started.wait(10)
        try:
            prepared = [self._prepare(name, source, self._initial_configs[name]) for name, source in self._sources.items()]
            timeout = max((p[2].placement.start_timeout_s for p in prepared), default=0) + 30
            self._call(self._add_all(prepared), timeout)  # every model's workers start at once
        except BaseException:
            self.close()
            raise
        return self

    async def _add_all(self, prepared: list[tuple[str, Any, ServeConfig]]) -> None:
        results = await asyncio.gather(*(self._add(*p) for p in prepared), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]

    def _run_loop(self, started: threading.Event) -> None:
        loop = self.loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        self._loop_thread_id = threading.get_ident()
        loop.call_soon(started.set)
        loop.call_soon(self._tick)
        try:
            loop.run_forever()
        finally:
            # tasks still pending (a forwarding coroutine, an HTTP handler) end cancelled, not destroyed
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.wait(pending, timeout=2.0))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _tick(self) -> None:
        now = time.monotonic()
        for rt in list(self._runtimes.values()):
            try:
                rt.tick(now)
            except Exception:  # the watchdog must keep running whatever happens
                log.exception("watchdog of model %r failed", rt.name)
        if self.loop is not None and self._state in ("running", "closing"):
            self.loop.call_later(_TICK_S, self._tick)

    def close(self, timeout_s: float | None = None) -> None:
        """Stop every worker (Shutdown, then end-of-file, then SIGKILL) within ``timeout_s``, then the loop.
        Requests still queued end with ``BackendUnavailable``. Safe to call twice."""
        with self._lock:
            if self._state != "running":
                self._state = "closed"
                return
            self._state = "closing"
        self._not_on_loop("close")
        timeout_s = self.close_timeout_s if timeout_s is None else timeout_s
        loop, thread = self.loop, self._thread
        assert loop is not None and thread is not None
        processes = self._all_processes()
        try:
            asyncio.run_coroutine_threadsafe(self._close_all(timeout_s), loop).result(timeout_s + 5)
        except Exception:
            log.exception("orderly shutdown failed; killing the workers")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        _kill_leftovers(processes)
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
        self._state = "closed"

    async def _close_all(self, timeout_s: float) -> None:
        runtimes = list(self._runtimes.values())
        await asyncio.gather(*(rt.stop(timeout_s, f"model {rt.name!r}: the server is closing") for rt in runtimes))
        self._runtimes.clear()

    def _all_processes(self) -> list[Any]:
        return [p for rt in list(self._runtimes.values()) for p in rt.pool.processes()]

    # -------------------------------------------------------------- requests
    async def submit(self, model: str, inputs: np.ndarray, *, timeout_ms: float | None = None) -> np.ndarray:
        """Infer on ``server.loop`` itself (e.g. from an HTTP handler running there): no thread hop."""
        loop = self.loop
        if asyncio.get_running_loop() is not loop or loop is None:
            raise RuntimeError("submit() must be awaited on server.loop; from other loops use infer_async()")
        future = loop.create_future()
        rt = self._runtime(model)
        request = rt.admit(next(self._ids), inputs, timeout_ms, future, time.monotonic())
        try:
            return await future
        except asyncio.CancelledError:
            rt.cancel(request)
            raise

    def infer(self, model: str, inputs: np.ndarray, *, timeout_ms: float | None = None) -> np.ndarray:
        """Infer from any thread but the server's loop thread (that would deadlock: await submit there)."""
        loop = self._running_loop()
        self._not_on_loop("infer")
        future: concurrent.futures.Future = concurrent.futures.Future()
        try:
            loop.call_soon_threadsafe(self._admit, model, inputs, timeout_ms, future, time.monotonic())
        except RuntimeError:  # the loop closed in between
            raise BackendUnavailable("the server is closed") from None
        try:
            return future.result(timeout=self._wait_s(model, timeout_ms))
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise RequestTimeout(f"no answer from model {model!r} in time (is the server's loop blocked?)",
                                 model=model) from None

    async def infer_async(self, model: str, inputs: np.ndarray, *, timeout_ms: float | None = None) -> np.ndarray:
        """Infer from any event loop (a notebook's, another server's); on ``server.loop`` it is ``submit``."""
        loop = self._running_loop()
        if asyncio.get_running_loop() is loop:
            return await self.submit(model, inputs, timeout_ms=timeout_ms)
        future: concurrent.futures.Future = concurrent.futures.Future()
        try:
            loop.call_soon_threadsafe(self._admit, model, inputs, timeout_ms, future, time.monotonic())
        except RuntimeError:  # the loop closed in between
            raise BackendUnavailable("the server is closed") from None
        return await asyncio.wrap_future(future)

    def _admit(self, model: str, inputs: Any, timeout_ms: float | None, future: Any, received_at: float) -> None:
        try:
            self._runtime(model).admit(next(self._ids), inputs, timeout_ms, future, received_at)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)

    def _wait_s(self, model: str, timeout_ms: float | None) -> float:
        rt = self._runtimes.get(model)
        ms = timeout_ms if timeout_ms is not None else (rt.config.admission.timeout_ms if rt else 10_000.0)
        return ms / 1000.0 + 10.0  # the controller ends every request by its deadline; this is a safety net

    def run_coroutine(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future:
        """Run ``coro`` on ``server.loop`` (e.g. an HTTP server) and return a concurrent future of its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._running_loop())

    # ---------------------------------------------------------------- models
    def models(self) -> list[str]:
        return sorted(self._runtimes)

    def add_model(self, name: str, source: Any, config: ServeConfig | Mapping[str, Any] | None = None) -> None:
        """Serve another model under ``name``; returns when its workers are ready."""
        prepared = self._prepare(name, source, config)
        self._call(self._add(*prepared), prepared[2].placement.start_timeout_s + 30)

    def _prepare(self, name: str, source: Any, config: Any) -> tuple[str, Any, ServeConfig]:
        """Check the name and config and resolve the artifact, in the caller's thread (it may load files)."""
        if not isinstance(name, str) or not name or "/" in name:
            raise ConfigError(f"model name must be a non-empty string without '/', got {name!r}")
        if name in self._runtimes:
            raise ConfigError(f"a model named {name!r} is already served; remove_model() it first")
        cfg = as_serve_config(config)
        self._running_loop()
        assert self._workdir is not None
        artifact = resolve_artifact(source, self._workdir, name)
        check_placement(artifact, cfg.placement.stages, cfg.placement.split)
        return name, artifact, cfg

    async def _add(self, name: str, artifact: Any, config: ServeConfig) -> None:
        if name in self._runtimes:
            raise ConfigError(f"a model named {name!r} is already served")
        rt = ModelRuntime(name, artifact, config, self._loop_or_raise(), self._hub.record)
        self._runtimes[name] = rt
        rt.start()
        pool = rt.pool
        await pool.wait_for(lambda: pool.settled() or pool.failed is not None, config.placement.start_timeout_s)
        if not pool.settled():
            why = pool.failed or f"its workers were not ready within {config.placement.start_timeout_s:g} s"
            rt.closed = True
            await pool.close(5.0)
            del self._runtimes[name]
            raise ModelLoadError(f"cannot serve model {name!r}: {why}")
        self._change(name, {"model": [None, artifact.variant]}, f"serving {name} ({artifact.variant})")

    def remove_model(self, name: str) -> None:
        """Stop serving ``name``: queued requests finish (bounded), then its workers stop."""
        self._runtime(name)
        self._call(self._remove(name), self.close_timeout_s + 5)

    async def _remove(self, name: str) -> None:
        rt = self._runtimes[name]
        await rt.stop(self.close_timeout_s, f"model {name!r} was removed")
        self._runtimes.pop(name, None)
        self._change(name, {"model": [rt.variant, None]}, f"stopped serving {name}")

    def model_info(self, name: str) -> dict[str, Any]:
        rt = self._runtime(name)
        return {"name": name, "signature": rt.signature.to_dict(), "variant": rt.variant,
                "artifact": str(rt.artifact.path), "config": rt.config.to_dict(), "ready": rt.pool.counts()["ready"] > 0}

    # ------------------------------------------------------------ live changes
    def reconfigure(self, model: str, config: ServeConfig | Mapping[str, Any] | None = None, *,
                    wait: bool = True, **changes: Any) -> ServeConfig:
        """Change how ``model`` is served, under load, dropping nothing. Give a whole ``config`` and/or
        flat settings (``max_batch_size=16``, ``replicas=3``, ``routing="round_robin"``). Batching,
        routing and admission apply at once; replicas scale by starting new workers and draining old
        ones; stages, split, threads and device roll. With ``wait`` it returns once the pool has settled."""
        rt = self._runtime(model)
        new = as_serve_config(config) if config is not None else rt.config
        new = new.replace(**changes) if changes else new
        check_placement(rt.artifact, new.placement.stages, new.placement.split)
        return self._call(self._reconfigure(model, new, None, wait), new.placement.start_timeout_s + 30)

    async def reconfigure_async(self, model: str, config: ServeConfig | Mapping[str, Any] | None = None, *,
                                wait: bool = True, **changes: Any) -> ServeConfig:
        """:meth:`reconfigure` for event loops (``server.loop`` included). A stage change is checked in
        a thread (it rebuilds the model to find the cut)."""
        rt = self._runtime(model)
        new = as_serve_config(config) if config is not None else rt.config
        new = new.replace(**changes) if changes else new
        if new.placement.stages > 1:
            await asyncio.to_thread(check_placement, rt.artifact, new.placement.stages, new.placement.split)
        coro = self._reconfigure(model, new, None, wait)
        if asyncio.get_running_loop() is self.loop:
            return await coro
        return await asyncio.wrap_future(self.run_coroutine(coro))

    def swap_variant(self, model: str, source: Any, *, wait: bool = True) -> None:
        """Serve another variant (e.g. a compressed model) of ``model`` by rolling replacement: new
        workers start, and old ones drain only as new ones are ready. Its signature must be the same.
        If the new variant cannot start, the old one keeps serving and ModelLoadError is raised."""
        rt = self._runtime(model)
        assert self._workdir is not None
        artifact = resolve_artifact(source, self._workdir, model)
        check_same_signature(model, rt.artifact, artifact)
        check_placement(artifact, rt.config.placement.stages, rt.config.placement.split)
        self._call(self._reconfigure(model, rt.config, artifact, wait), rt.config.placement.start_timeout_s + 30)

    async def _reconfigure(self, model: str, config: ServeConfig, artifact: Any, wait: bool) -> ServeConfig:
        rt = self._runtime(model)
        old_config, old_spec = rt.config, rt.pool.spec
        changes: dict[str, list[Any]] = old_config.diff(config)
        if artifact is not None:
            changes["variant"] = [old_spec.variant, artifact.variant]
            changes["artifact"] = [str(old_spec.artifact.path), str(artifact.path)]
        if not changes:
            return config
        rt.apply(config, artifact)
        text = ", ".join(f"{k} {v[0]} → {v[1]}" for k, v in changes.items() if k != "artifact")
        self._change(model, changes, text)
        if wait and (artifact is not None or config.placement != old_config.placement):
            pool = rt.pool
            settled = await pool.wait_for(lambda: pool.settled() or pool.failed is not None,
                                          config.placement.start_timeout_s)
            if not settled or pool.failed is not None:
                why = pool.failed or f"new workers were not ready within {config.placement.start_timeout_s:g} s"
                rt.restore(old_config, old_spec)
                self._change(model, {k: [v[1], v[0]] for k, v in changes.items()}, f"reverted: {why}")
                raise ModelLoadError(f"model {model!r}: the change did not take effect, the previous workers "
                                     f"keep serving: {why}")
        return config

    def _change(self, model: str, changes: dict[str, list[Any]], description: str) -> None:
        self._hub.change(model, changes, description)

    # ---------------------------------------------------------- observation
    def stats(self) -> dict[str, dict[str, Any]]:
        """Per model: queue depth, in flight, replicas by state, counts by outcome, restarts, config."""
        if self._state != "running":
            return {}
        if threading.get_ident() == self._loop_thread_id:
            return self._stats()
        return self._call(self._stats_async(), 10)

    async def _stats_async(self) -> dict[str, dict[str, Any]]:
        return self._stats()

    def _stats(self) -> dict[str, dict[str, Any]]:
        return {name: rt.stats() for name, rt in self._runtimes.items()}

    def subscribe(self, callback: Callable[[list[RequestRecord]], None]) -> Callable[[], None]:
        """Receive request records in lists on the loop thread (see :mod:`.hub`); returns an
        unsubscribe function."""
        return self._hub.subscribe(callback)

    def subscribe_changes(self, callback: Callable[[ConfigChange], None]) -> Callable[[], None]:
        """Receive every :class:`ConfigChange` as it happens (on the loop thread)."""
        return self._hub.subscribe_changes(callback)

    # --------------------------------------------------------------- helpers
    def _runtime(self, model: str) -> ModelRuntime:
        try:
            return self._runtimes[model]
        except KeyError:
            if self._state in ("closing", "closed"):  # not "no such model": the server is going away
                raise BackendUnavailable(f"model {model!r}: the server is closing", model=model) from None
            raise ModelNotFound(f"no model named {model!r} is served; served: {sorted(self._runtimes)}",
                                model=model) from None

    def _loop_or_raise(self) -> asyncio.AbstractEventLoop:
        if self.loop is None:
            raise BackendUnavailable("the server is not started: call start() or use it as a context manager")
        return self.loop

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._state != "running":
            raise BackendUnavailable(
                "the server is not running: call start() or use it as a context manager" if self._state == "new"
                else "the server is closed")
        return self._loop_or_raise()

    def _not_on_loop(self, what: str) -> None:
        if threading.get_ident() == self._loop_thread_id:
            raise RuntimeError(f"{what}() blocks, so it cannot run on server.loop; use its async form there")

    def _call(self, coro: Coroutine[Any, Any, Any], timeout_s: float) -> Any:
        self._not_on_loop("this method")
        future = asyncio.run_coroutine_threadsafe(coro, self._running_loop())
        return future.result(timeout=timeout_s)


def _kill_leftovers(processes: list[Any]) -> None:
    """Last resort after close(): SIGKILL any worker process that is somehow still running. These are
    our own ``multiprocessing`` children, so a reaped one is never signalled (its pid may be reused)."""
    for proc in processes:
        if proc.is_alive():
            proc.kill()
            proc.join(timeout=2)


__all__ = ["Server"]
