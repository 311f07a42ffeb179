"""``WorkbenchSession``: the controller behind one dashboard (or notebook) session. No Panel here.

It owns what the user's clicks start: the loaded model and its compressed variants, the serving
backend, the HTTP API in front of it, the load run, and a telemetry hub that lives as long as the
session (so the time axis of the live plots never restarts). Slow work runs on a small thread pool
(:class:`~workbench.ui.tasks.TaskRunner`) and reports progress into the section's ``TaskState``.

::

    session = WorkbenchSession()
    session.load_model("mlp").result(120)
    session.start_serving().result(120)
    session.start_load().result(60)
    session.pump()                      # on the UI thread: apply state updates, return new windows
    session.state.serve.max_batch_size = 8
    session.apply().result(60)          # live, marked on the time axis
    session.close()
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from typing import Any

from workbench.errors import ConfigError
from workbench.telemetry.window import Window
from workbench.ui.facts import model_facts, ray_available
from workbench.ui.live import LiveFeed, summarize
from workbench.ui.runner import LoadController
from workbench.ui.state import FILE_SOURCE, WorkbenchState, set_outputs
from workbench.ui.tasks import Progress, TaskRunner, Updates
from workbench.ui.tuning import TuneController

log = logging.getLogger("workbench.ui")


class WorkbenchSession:
    """Model → compress → serve → load → watch, for one user session. See the module docstring."""

    def __init__(self, state: WorkbenchState | None = None, *, window_ms: float = 500, max_workers: int = 3,
                 runs_dir: str | None = None):
        from workbench.telemetry.hub import TelemetryHub

        self.state = state or WorkbenchState()
        self.updates = Updates()
        self.tasks = TaskRunner(self.updates, max_workers=max_workers)
        self.hub = TelemetryHub(window_ms=window_ms).start()
        self.feed = LiveFeed(self.hub)
        self.runs_dir = runs_dir
        self.model: Any = None
        self.variants: dict[str, Any] = {}
        self.reports: list[Any] = []
        self.server: Any = None
        self.served_model = ""  # the served model's name, and the Model (or variant) it serves
        self.served_variant: Any = None
        self.http: Any = None
        self.last_stats: dict[str, Any] = {}
        self._undo: list[Any] = []
        self._lock = threading.RLock()
        self._closed = False
        self.load = LoadController(self)
        self.tuning = TuneController(self)  # the Tune section (workbench.ui.tuning)

    # ------------------------------------------------------------------ model
    def load_model(self, source: str | None = None) -> Future[Any]:
        """Load a zoo model (training it the first time) or a file; ``source`` overrides the state's choice."""
        self._check_open()
        m = self.state.model
        if source is not None:
            if source in m.param.source.objects and source != FILE_SOURCE:
                m.source = source
            else:
                m.param.update(source=FILE_SOURCE, file_path=source)
        spec = m.source_spec()
        if self.server is not None:
            raise ConfigError("stop serving before loading another model")

        def work(progress: Progress) -> dict[str, Any]:
            from workbench.models import ZOO, load_file, load_zoo

            if spec in ZOO:
                model = load_zoo(spec, progress=False,
                                 callback=lambda done, total: progress(0.9 * done / max(1, total),
                                                                       f"training {spec}: step {done}/{total}"))
            else:
                progress(0.1, f"reading {spec}")
                model = load_file(spec)
            progress(0.95, "evaluating")
            facts = model_facts(model)
            with self._lock:
                self.model, self.variants, self.reports = model, {}, []
            return facts

        def done(facts: dict[str, Any]) -> None:
            set_outputs(m, **facts)
            set_outputs(m.task, message=f"loaded {facts['model_name']} ({facts['variant']})")
            c = self.state.compress
            set_outputs(c, variants=[], table=[])
            c.param.serve_variant.objects = ["original"]
            c.serve_variant = "original"

        return self.tasks.submit(m.task, f"loading {spec}", work, done)

    def _check_open(self) -> None:
        if self._closed:
            raise ConfigError("this workbench session is closed; open a new one")

    def _require_model(self) -> Any:
        self._check_open()
        if self.model is None:
            raise ConfigError("load a model first (Model section)")
        return self.model

    # --------------------------------------------------------------- compress
    def compress(self) -> Future[Any]:
        """Compress the loaded model with the chosen methods; the variant joins the comparison table."""
        model = self._require_model()
        steps = self.state.compress.steps()

        def work(progress: Progress) -> tuple[str, list[dict[str, Any]]]:
            from workbench.compression import compress
            from workbench.compression.report import rows

            def callback(stage: str, done: int, total: int) -> None:
                progress(done / max(1, total), f"{stage} {done}/{total}")

            variant, report = compress(model, steps, progress=False, callback=callback)
            with self._lock:
                if self.model is not model:
                    raise ConfigError("another model was loaded while compressing; compress it again")
                name = variant.variant
                n = 2
                while name in self.variants:
                    name, n = f"{variant.variant} ({n})", n + 1
                self.variants[name] = variant
                self.reports.append(report)
                table = rows(self.reports)
            return name, table

        def done(result: tuple[str, list[dict[str, Any]]]) -> None:
            name, table = result
            self.state.compress.add_variant(name, table)
            set_outputs(self.state.compress.task, message=f"made {name}")

        return self.tasks.submit(self.state.compress.task, "compressing", work, done)

    def chosen_variant(self) -> Any:
        """The model or compressed variant the Compress section picked to serve."""
        model = self._require_model()
        name = self.state.compress.serve_variant
        return model if name in (None, "original") else self.variants[name]

    # ------------------------------------------------------------------ serve
    def start_serving(self) -> Future[Any]:
        """Start the chosen variant on the chosen backend (and the HTTP API); progress in Serve's task."""
        s = self.state.serve
        if self.server is not None:
            raise ConfigError("the model is being served already; stop serving first")
        if s.backend != "local" and not ray_available():
            raise ConfigError("the Ray backend is not installed here; choose 'local' (or install workbench[ray])")
        model = self._require_model()
        variant = self.chosen_variant()
        config = s.to_config()
        backend, with_http = s.backend, s.http

        def work(progress: Progress) -> dict[str, Any]:
            from workbench.backends import create_backend

            progress(0.1, f"starting {config.placement.replicas} worker(s) for {model.name} ({variant.variant})")
            server = create_backend(backend, models={model.name: variant}, config=config)
            server.start()
            try:
                undo = [server.subscribe(self.hub.add_records), server.subscribe_changes(self.hub.add_change),
                        self.hub.add_gauge(lambda: self._gauge(server))]
                for change in list(getattr(server, "changes", [])):  # "serving mlp" happened during start()
                    self.hub.add_change(change)
                http = None
                if with_http:
                    from workbench.http.serve import serve_http

                    progress(0.9, "starting the HTTP API")
                    http = serve_http(server, host="127.0.0.1", port=0)
            except BaseException:
                server.close()
                raise
            with self._lock:
                self.server, self.http, self._undo = server, http, undo
                self.served_model, self.served_variant = model.name, variant
                closed = self._closed
            if closed:
                self._teardown()
                raise ConfigError("the session closed while the server was starting")
            return {"model": model.name, "variant": variant.variant, "url": http.url if http else "",
                    "config": server.model_info(model.name)["config"]}

        def done(info: dict[str, Any]) -> None:
            from workbench.serving.config import ServeConfig

            s.show_config(ServeConfig.from_dict(info["config"]))
            set_outputs(s, status="serving", url=info["url"], model=info["model"], variant=info["variant"])
            set_outputs(s.task, message=f"serving {info['model']} ({info['variant']})"
                        + (f" on {info['url']}" if info["url"] else ""))

        future = self.tasks.submit(s.task, "starting the server", work, done,
                                   before=lambda: set_outputs(s, status="starting"))
        self._on_failure(future, lambda: set_outputs(s, status="failed"))
        return future

    def _on_failure(self, future: Future[Any], fn: Any) -> None:
        """Post ``fn`` (a state update) if ``future`` fails or is cancelled."""
        def check(f: Future[Any]) -> None:
            if f.cancelled() or f.exception() is not None:
                self.updates.post(fn)
        future.add_done_callback(check)

    def _gauge(self, server: Any) -> dict[str, int]:
        """Called by the hub at each window's end (its thread): queue depth per model; keeps the stats."""
        stats = server.stats()
        self.last_stats = stats
        return {name: int(entry.get("queue_requests", 0)) for name, entry in stats.items()}

    def apply(self) -> Future[Any]:
        """Apply the Serve settings changed since they took effect (and a newly picked variant), live."""
        from workbench.serving.config import ServeConfig

        self._check_open()
        s = self.state.serve
        server, name = self.server, self.served_model
        if server is None:
            raise ConfigError("nothing is being served: start serving first")
        in_effect = ServeConfig.from_dict(server.model_info(name)["config"]).flat()
        pending = {k: v for k, v in s.flat().items() if in_effect.get(k) != v}
        chosen = self.state.compress.serve_variant or "original"
        variant = self.chosen_variant()
        swap = variant is not self.served_variant
        if not pending and not swap:
            raise ConfigError("nothing to apply: change a setting first")

        def work(progress: Progress) -> dict[str, Any]:
            if pending:
                progress(0.1, "applying " + ", ".join(f"{k}={v}" for k, v in pending.items()))
                server.reconfigure(name, **pending)
            if swap:
                progress(0.5, f"swapping in {chosen}")
                server.swap_variant(name, variant)
                with self._lock:
                    self.served_variant = variant
            return server.model_info(name)

        def done(info: dict[str, Any]) -> None:
            from workbench.serving.config import ServeConfig

            s.show_config(ServeConfig.from_dict(info["config"]))
            set_outputs(s, status="serving", variant=info.get("variant", s.variant))

        future = self.tasks.submit(s.task, "applying changes", work, done,
                                   before=lambda: set_outputs(s, status="applying"))
        self._on_failure(future, self._after_failed_apply)
        return future

    def _after_failed_apply(self) -> None:
        if self.server is not None and self.state.serve.status == "applying":
            set_outputs(self.state.serve, status="serving")

    def stop_serving(self) -> Future[Any]:
        """Stop the load (if any), the HTTP API and the workers."""
        s = self.state.serve
        if self.server is None:
            raise ConfigError("nothing is being served")

        def work(progress: Progress) -> None:
            progress(0.1, "stopping the load")
            self.load.stop_now()
            progress(0.3, "stopping the workers")
            self._teardown()

        def done(_: None) -> None:
            set_outputs(s, status="stopped", url="", model="", variant="", workers=0, applied={})
            set_outputs(s.task, message="stopped")

        future = self.tasks.submit(s.task, "stopping the server", work, done,
                                   before=lambda: set_outputs(s, status="stopping"))
        self._on_failure(future, lambda: set_outputs(s, status="failed"))
        return future

    def _teardown(self) -> None:
        with self._lock:
            server, http, undo = self.server, self.http, self._undo
            self.server, self.http, self._undo = None, None, []
            self.served_model, self.served_variant = "", None
        if http is not None:
            http.close()
        for fn in undo:
            try:
                fn()
            except Exception:
                log.exception("unsubscribing from the server failed")
        if server is not None:
            server.close()

    # -------------------------------------------------------------- load, demo
    def start_load(self) -> Future[Any]:
        """Start load as the Load section says (over HTTP when the API runs, else in process)."""
        if self.tuning.running:
            raise ConfigError("the tuner is measuring on these cores; live load now would spoil its trials and "
                              "itself: wait for it to finish or stop it (Tune section)")
        return self.load.start()

    def stop_load(self) -> Future[Any]:
        return self.load.stop()

    def demo(self, *, rate: float = 150.0) -> None:
        """Load the default model, serve it on local workers and start a light Poisson load that runs until
        stopped, one step after the other (each in the background); show the Live section."""
        from workbench.models.zoo import DEFAULT_MODEL

        self.state.load.param.update(schedule="poisson", rate=rate, until_stopped=True)
        self.state.section = "Live"

        def serve(f: Future[Any]) -> None:
            if not f.cancelled() and f.exception() is None and not self._closed:
                self.updates.post(lambda: self._chain(self.start_serving, start_load))

        def start_load(f: Future[Any]) -> None:
            if not f.cancelled() and f.exception() is None and not self._closed:
                self.updates.post(lambda: self._chain(self.start_load, None))

        self.load_model(DEFAULT_MODEL).add_done_callback(serve)

    def _chain(self, step: Any, then: Any) -> None:
        try:
            future = step()
        except Exception as exc:  # shown in the section's task; the chain stops here
            log.warning("demo step failed: %s", exc)
            return
        if then is not None:
            future.add_done_callback(then)

    # ------------------------------------------------------------------- runs
    def refresh_runs(self) -> list[str]:
        """Read the run records on disk into the Runs section (newest first)."""
        from workbench.telemetry.runs import list_runs

        ids = [r["id"] for r in reversed(list_runs(self.runs_dir))]
        self.state.runs.set_runs(ids)
        return ids

    # -------------------------------------------------------------- UI thread
    def pump(self) -> list[Window]:
        """Call on the UI thread, often (the dashboard: every 250 ms): apply the state updates the
        background work posted, and return the telemetry windows closed since the last call."""
        self.updates.drain()
        windows = self.feed.drain()
        if windows:
            summarize(self.state.live, self.feed.recent, added=len(windows))
            stats = self.last_stats.get(self.served_model) if self.served_model else None
            if stats is not None:
                set_outputs(self.state.serve, workers=int(stats.get("replicas", {}).get("ready", 0)))
        return windows

    # -------------------------------------------------------------- lifecycle
    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop the load, the HTTP API, the workers, the hub and the background threads. Safe twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self.load.stop_now()
        except Exception:
            log.exception("stopping the load failed")
        self.tuning.close(timeout_s)
        self.tasks.close(timeout_s)
        try:
            self._teardown()
        finally:
            self.feed.close()
            self.hub.close(flush=False)
            self.updates.post(lambda: set_outputs(self.state.serve, status="stopped", url="", workers=0, applied={}))

    def __enter__(self) -> WorkbenchSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        s = self.state.serve
        return (f"WorkbenchSession(model={getattr(self.model, 'name', None)!r}, serving={s.status!r}, "
                f"load={self.state.load.status!r})")


__all__ = ["WorkbenchSession"]
