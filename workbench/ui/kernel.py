"""The workbench of one Jupyter kernel: what ``%workbench`` drives, also usable from Python.

A :class:`KernelWorkbench` wraps one :class:`~workbench.ui.session.WorkbenchSession` (the object
behind the dashboard, so the notebook views and the dashboard show the same state) and adds what a
notebook needs on top: serve a model in one call (load it, start the workers, expose HTTP, in the
background), start load as soon as the server is up, wait for background work, a status table, and
a clean stop when the kernel shuts down (``atexit``) or the user says so::

    wb = kernel_workbench()
    wb.serve("mlp", replicas=2, max_delay_ms=2)      # returns at once; a Future of the whole start
    wb.load(rate=200, duration_s=30)                 # starts once the server is up
    wb.status()                                      # a DataFrame
    await wb.until(lambda: wb.session.state.live.windows >= 10)   # the kernel stays responsive
    wb.stop()

Inside a kernel (a running asyncio loop on the main thread) every state change is applied on that
thread by a small pump task, so Panel views and ipywidgets are only touched from the kernel's own
thread. Without a loop (plain IPython), changes apply at once.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from workbench.errors import ConfigError
from workbench.ui.state import FILE_SOURCE, ServeState, set_outputs

log = logging.getLogger("workbench.ui")

SERVE_SETTINGS = ServeState.CONFIG_FIELDS
LOAD_SETTINGS = ("schedule", "rate", "concurrency", "duration_s", "until_stopped", "step_rates", "step_s", "end_rate",
                 "ramp_s", "spike_rate", "spike_at_s", "spike_length_s")
PUMP_PERIOD_S = 0.2

_current: KernelWorkbench | None = None
_current_lock = threading.Lock()


def _update(obj: Any, settings: dict[str, Any], allowed: tuple[str, ...], what: str) -> None:
    """Set ``settings`` on a state object; unknown names and out-of-bounds values become ConfigError."""
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown {what} setting(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    try:
        obj.param.update(**settings)
    except ValueError as exc:  # param's bounds and selector checks
        raise ConfigError(str(exc).replace(f"{type(obj).__name__}.", "")) from None


def chain(session: Any, steps: list[Callable[[], Future[Any] | None]]) -> Future[Any]:
    """Run ``steps`` one after the other; each returns the Future of its background work (or None).

    The first step runs now, so a refusal raises here; the next ones run through ``session.updates``
    (on the kernel's thread) once the previous one succeeded. The returned Future ends with the last
    step, or with the first failure."""
    overall: Future[Any] = Future()  # left pending (not running) so that cancel() abandons the next steps

    def run(i: int, previous: Any = None) -> None:
        if overall.done():
            return
        if i == len(steps) or session.closed:
            overall.set_result(previous)
            return
        try:
            future = steps[i]()
        except BaseException as exc:
            if i == 0:
                raise
            overall.set_exception(exc)
            return
        if future is None:
            run(i + 1)
            return

        def next_step(f: Future[Any]) -> None:
            if f.cancelled():
                overall.cancel()
            elif f.exception() is not None:
                overall.set_exception(f.exception())  # type: ignore[arg-type]
            else:
                result = f.result()
                session.updates.post(lambda: run(i + 1, result))
        future.add_done_callback(next_step)

    run(0)
    return overall


class KernelWorkbench:
    """One kernel's session plus the notebook conveniences. See the module docstring."""

    def __init__(self, session: Any = None, *, runs_dir: str | None = None):
        from workbench.ui.session import WorkbenchSession

        self.session = session or WorkbenchSession(runs_dir=runs_dir)
        self.views: list[Any] = []
        self.starting: Future[Any] | None = None  # loading + serving + HTTP, while it runs
        self.load_starting: Future[Any] | None = None
        self._pump_task: asyncio.Task[None] | None = None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None and threading.current_thread() is threading.main_thread():
            self.session.updates.attach()
            self._pump_task = loop.create_task(self._pump_forever())

    # -------------------------------------------------------------- driving
    async def _pump_forever(self) -> None:
        while not self.session.closed:
            try:
                self.session.pump()
            except Exception:  # a broken update must not stop the pump
                log.exception("pumping the workbench session failed")
            await asyncio.sleep(PUMP_PERIOD_S)

    def pump(self) -> None:
        if not self.session.closed:
            self.session.pump()

    @property
    def state(self) -> Any:
        return self.session.state

    # -------------------------------------------------------------- serving
    def serve(self, source: str, *, backend: str | None = None, port: int | None = None, http: bool = True,
              **settings: Any) -> Future[Any]:
        """Load ``source`` (a zoo name or a model file) if needed, serve it with ``settings`` and expose
        the HTTP API (on ``port``, default a free one). Returns at once with the Future of the start."""
        session, s = self.session, self.state.serve
        self.pump()
        if self._busy(self.starting) or s.status not in ("stopped", "failed"):
            where = f" at {s.url}" if s.url else ""
            raise ConfigError(f"already serving {s.model or source}{where} ({s.status}); stop it first "
                              "(%workbench stop serve)")
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535):
            raise ConfigError(f"port must be in 0..65535 (0 picks a free one), got {port!r}")
        _update(s, settings, SERVE_SETTINGS, "serve")
        if backend is not None:
            _update(s, {"backend": backend}, ("backend",), "serve")
        s.to_config()  # a bad combination fails now, not in the background
        s.http = bool(http) and not port  # a chosen port is opened below, after the workers are up
        m = self.state.model
        loaded = session.model is not None and (m.source == source or (m.source == FILE_SOURCE and m.file_path == source))
        steps: list[Callable[[], Future[Any] | None]] = []
        if not loaded:
            steps.append(lambda: session.load_model(source))
        steps.append(session.start_serving)
        if http and port:
            steps.append(lambda: self._open_http(port))
        self.starting = chain(session, steps)
        return self.starting

    def _open_http(self, port: int) -> Future[Any]:
        """Expose the running server's HTTP API on ``port`` (the session opens port 0 by itself)."""
        session, s = self.session, self.state.serve

        def work(progress: Any) -> str:
            from workbench.http.serve import serve_http

            progress(0.5, f"starting the HTTP API on port {port}")
            handle = serve_http(session.server, host="127.0.0.1", port=port)
            with session._lock:
                session.http = handle
            return str(handle.url)

        def done(url: str) -> None:
            set_outputs(s, url=url)
            set_outputs(s.task, message=f"serving {s.model} ({s.variant}) on {url}")

        return session.tasks.submit(s.task, "starting the HTTP API", work, done)

    def apply(self, **settings: Any) -> Future[Any]:
        """Change serving settings live (batch size, delay, routing, queue at once; replicas, stages and
        threads by starting new workers while the old ones drain)."""
        self.pump()
        if self._busy(self.starting):
            raise ConfigError("the server is still starting; wait for it (%workbench wait)")
        _update(self.state.serve, settings, SERVE_SETTINGS, "serve")
        return self.session.apply()

    # ----------------------------------------------------------------- load
    def load(self, **settings: Any) -> Future[Any]:
        """Start load with ``settings`` (``rate``, ``concurrency``, ``duration_s``, ``schedule``, ...),
        at once if the server is up, else as soon as it is. Returns the Future of the start."""
        self.pump()
        ld = self.state.load
        if ld.running or self._busy(self.load_starting):
            raise ConfigError("load is running already; stop it first (%workbench stop load)")
        serving_soon = self._busy(self.starting)
        if not serving_soon and not self.state.serve.serving:
            raise ConfigError("nothing is served yet: serve a model first (%workbench serve mlp)")
        if "concurrency" in settings and "schedule" not in settings:
            settings["schedule"] = "closed"
        _update(ld, settings, LOAD_SETTINGS, "load")
        ld.to_schedule()  # a bad schedule fails now
        if serving_soon:
            starting = self.starting
            self.load_starting = chain(self.session, [lambda: starting, self.session.start_load])
        else:
            self.load_starting = self.session.start_load()
        return self.load_starting

    # ----------------------------------------------------------------- stop
    def stop(self, what: str = "all") -> Future[Any] | None:
        """Stop ``"load"``, ``"serve"`` (the load too) or ``"all"``, in the background. None if nothing ran."""
        if what not in ("load", "serve", "all"):
            raise ConfigError(f"stop takes load, serve or all, got {what!r}")
        self.pump()
        s, ld = self.state.serve, self.state.load
        queued = self._busy(self.load_starting) and self.load_starting.cancel()  # type: ignore[union-attr]
        if what == "load":
            if not ld.running:
                if queued:
                    return None
                raise ConfigError("no load is running")
            return self.session.stop_load()
        if self._busy(self.starting) or s.status == "starting":
            raise ConfigError("the server is still starting; stop it once it is up (%workbench wait, then stop)")
        if s.status in ("stopped", "stopping"):
            if what == "serve":
                raise ConfigError("nothing is being served")
            return self.session.stop_load() if ld.running else None
        return self.session.stop_serving()

    # ----------------------------------------------------------------- wait
    def wait(self, what: str = "ready", timeout_s: float = 300.0) -> None:
        """Block until the background starts are done (``"ready"``) or the load has ended (``"load"``);
        a failed start raises its error. Keeps the session's state up to date while waiting."""
        if what not in ("ready", "load"):
            raise ConfigError(f"wait takes ready or load, got {what!r}")
        deadline = time.monotonic() + timeout_s
        while True:
            self.pump()
            if self._settled(what):
                self._raise_failure()
                return
            if time.monotonic() > deadline:
                raise ConfigError(f"still {self._doing()} after {timeout_s:g} s")
            time.sleep(0.05)

    async def until(self, condition: Callable[[], object] | None = None, timeout_s: float = 120.0,
                    interval_s: float = 0.1) -> None:
        """Await ``condition()`` (default: the background starts are done) without blocking the kernel,
        so live views keep drawing meanwhile."""
        deadline = time.monotonic() + timeout_s
        check = condition or (lambda: self._settled("ready"))
        while True:
            self.pump()
            if check():
                if condition is None:
                    self._raise_failure()
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the condition did not hold within {timeout_s:g} s ({self._doing()})")
            await asyncio.sleep(interval_s)

    def _settled(self, what: str) -> bool:
        busy = self._busy(self.starting) or self._busy(self.load_starting) or self.session.tasks.busy()
        if what == "load":
            return not busy and not self.state.load.running
        return not busy

    def _raise_failure(self) -> None:
        for future in (self.starting, self.load_starting):
            if future is not None and future.done() and not future.cancelled() and future.exception() is not None:
                error = future.exception()
                if future is self.starting:
                    self.starting = None
                else:
                    self.load_starting = None
                raise error  # type: ignore[misc]

    def _doing(self) -> str:
        tasks = [getattr(self.state, name).task for name in ("model", "compress", "serve", "load")]
        busy = [f"{t.task} ({t.progress} %)" for t in tasks if t.busy]
        if self.state.load.running:
            busy.append(f"load {self.state.load.status}")
        return ", ".join(busy) or "waiting"

    @staticmethod
    def _busy(future: Future[Any] | None) -> bool:
        return future is not None and not future.done()

    # --------------------------------------------------------------- status
    def status(self) -> Any:
        """What the kernel's workbench is doing, as a DataFrame indexed by ``what`` (a ``value`` column)."""
        from workbench.ui.tables import status_frame

        self.pump()
        return status_frame(self.state)

    def phases(self) -> Any:
        """The recent live figures cut at each configuration change, one row per phase (a DataFrame;
        see :func:`workbench.ui.tables.phases_frame`)."""
        from workbench.ui.tables import phases_frame

        self.pump()
        return phases_frame(self.session.feed.recent)

    def describe(self, *, load: bool = True) -> str:
        """One line: what is served where (with how many replicas), and the load."""
        s, ld = self.state.serve, self.state.load
        if s.serving:
            replicas = s.applied.get("replicas", s.replicas)
            line = (f"serving {s.model} ({s.variant}) on {s.backend}, {replicas} replica{'s' * (replicas != 1)}"
                    + (f", at {s.url}" if s.url else ""))
        else:
            line = f"server {s.status}"
        return f"{line}; load {ld.status}" if load else line

    # ---------------------------------------------------------------- views
    def plot(self, **kw: Any) -> Any:
        """The compact live latency plot of this session (a Panel view)."""
        from workbench.ui.notebook import LiveLatencyPlot

        return self._view(LiveLatencyPlot(self.session, **kw))

    def knobs(self) -> Any:
        """The serving and load knobs of this session, with Start/Apply/Stop (a Panel view)."""
        from workbench.ui.notebook import Knobs

        return self._view(Knobs(self.session))

    def compression(self) -> Any:
        """The compression comparison (table and Pareto plot) of this session (a Panel view)."""
        from workbench.ui.notebook import CompressionTable

        return self._view(CompressionTable(self.session))

    def dashboard(self) -> Any:
        """The whole dashboard on this session (a Panel view)."""
        from workbench.ui.notebook import NotebookDashboard

        return self._view(NotebookDashboard(self.session))

    def _view(self, view: Any) -> Any:
        from workbench.ui.notebook import setup_notebook

        setup_notebook()
        self.views.append(view)
        return view

    # ------------------------------------------------------------ lifecycle
    def close(self, timeout_s: float = 30.0) -> None:
        """Stop the load, the HTTP API, the workers and every live view. Safe twice, and from any thread
        (the kernel's shutdown handler runs on its control thread)."""
        if threading.current_thread() is threading.main_thread():
            for view in self.views:
                try:
                    view.stop()
                except Exception:
                    log.exception("stopping a notebook view failed")
        self.views.clear()  # elsewhere: each view stops by itself at its next tick, seeing the session closed
        self.session.close(timeout_s=timeout_s)
        task, self._pump_task = self._pump_task, None
        if task is not None and not task.done():
            try:
                task.get_loop().call_soon_threadsafe(task.cancel)
            except RuntimeError:  # at exit the kernel's loop is closed already; the task ended with it
                pass

    @property
    def closed(self) -> bool:
        return bool(self.session.closed)

    def __repr__(self) -> str:
        return f"KernelWorkbench({self.describe()})"


def kernel_workbench() -> KernelWorkbench:
    """The workbench of this kernel (made on first use, and anew after it was closed)."""
    global _current
    with _current_lock:
        if _current is None or _current.closed:
            _current = KernelWorkbench()
        return _current


def close_kernel_workbench(timeout_s: float = 30.0) -> None:
    """Close this kernel's workbench if there is one (kernel shutdown, ``%unload_ext workbench``)."""
    global _current
    with _current_lock:
        current, _current = _current, None
    if current is not None and not current.closed:
        current.close(timeout_s=timeout_s)


atexit.register(close_kernel_workbench, 10.0)

__all__ = ["KernelWorkbench", "chain", "close_kernel_workbench", "kernel_workbench"]
