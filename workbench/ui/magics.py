"""The IPython extension: ``%load_ext workbench`` registers the ``%workbench`` line magic.

::

    %workbench serve cnn --replicas 2 --max-delay-ms 2     # returns at once; the line shows progress
    %workbench load --rate 200 --duration 30                # starts as soon as the server is up
    %workbench plot                                         # the compact live latency plot
    %workbench knobs                                        # serving and load knobs
    %workbench dashboard                                    # the whole dashboard, inline
    %workbench apply --max-batch-size 8                     # change serving settings live
    %workbench status                                       # a table
    %workbench wait                                         # block until the background starts are done
    %workbench tune mlp --p99-ms 20 --rate 200 --budget-s 30   # search settings in the background, live view
    %workbench tune mlp --p99-ms 20 --max-rate --knobs max_batch_size,replicas
    %workbench stop [load|serve|tune|all]
    wb = %workbench                                         # the kernel's workbench, for Python

Everything runs on the kernel's :class:`~workbench.ui.kernel.KernelWorkbench`, which stops the load,
the HTTP API and the workers when the kernel shuts down. A user mistake is one line (IPython's
``UsageError``), never a traceback.
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class

from workbench.errors import WorkbenchError
from workbench.ui.state import ROUTING, SCHEDULE_KINDS

VIEWS = ("plot", "knobs", "compression", "dashboard")


class _Done(Exception):
    """argparse printed help; nothing more to do."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports mistakes as IPython UsageErrors (one line, no traceback)."""

    def error(self, message: str) -> Any:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")

    def exit(self, status: int = 0, message: str | None = None) -> Any:
        if message:
            print(message)
        raise _Done


def _serve_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--replicas", type=int, help="data-parallel worker copies")
    parser.add_argument("--stages", type=int, help="pipeline stages per replica (model parallelism)")
    parser.add_argument("--threads", type=int, dest="threads_per_worker", help="intra-op threads per worker")
    parser.add_argument("--max-batch-size", type=int, help="rows per batch at most (1: no batching)")
    parser.add_argument("--max-delay-ms", type=float, help="longest a batch's oldest request waits for more")
    parser.add_argument("--routing", choices=ROUTING, help="which replica gets the next batch")
    parser.add_argument("--max-queue", type=int, help="rows that may wait before requests are refused (503)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="%workbench", description="Serve, load-test and watch a model from this notebook.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    serve = sub.add_parser("serve", help="load NAME (a zoo model or a file) and serve it, in the background")
    serve.add_argument("name", help="zoo model (mlp, cnn, transformer, mlp1d) or a model file")
    _serve_options(serve)
    serve.add_argument("--backend", choices=("local", "ray"), help="local worker processes (default) or Ray Serve")
    serve.add_argument("--port", type=int, help="HTTP port on 127.0.0.1 (default: a free one)")
    serve.add_argument("--no-http", action="store_true", help="serve in process only (load then goes in process)")

    load = sub.add_parser("load", help="put load on the served model, in the background")
    how = load.add_mutually_exclusive_group()
    how.add_argument("--rate", type=float, help="requests per second (open loop)")
    how.add_argument("--concurrency", type=int, help="clients that each wait for their answer (closed loop)")
    length = load.add_mutually_exclusive_group()
    length.add_argument("--duration", type=float, dest="duration_s", help="seconds (default 60)")
    length.add_argument("--until-stopped", action="store_true", default=None, help="run until %%workbench stop load")
    load.add_argument("--schedule", choices=SCHEDULE_KINDS, help="arrival pattern (default poisson)")
    load.add_argument("--rates", dest="step_rates", help="step: the rates in turn, e.g. 100,200,400")
    load.add_argument("--step-s", type=float, help="step: seconds per rate")
    load.add_argument("--end-rate", type=float, help="ramp: the rate at the end")
    load.add_argument("--ramp-s", type=float, help="ramp: seconds the ramp takes")
    load.add_argument("--spike-rate", type=float, help="spike: the rate during the spike")
    load.add_argument("--spike-at-s", type=float, help="spike: when it starts (s into the run)")
    load.add_argument("--spike-length-s", type=float, help="spike: how long it lasts (s)")

    apply = sub.add_parser("apply", help="change serving settings live")
    _serve_options(apply)

    _tune_parser(sub)

    stop = sub.add_parser("stop", help="stop the load, the server (and its load), the tuner, or all")
    stop.add_argument("what", nargs="?", default="all", choices=("load", "serve", "tune", "all"))
    wait = sub.add_parser("wait", help="block until the background starts are done (ready), the load ended (load) "
                                       "or the tuner finished (tune)")
    wait.add_argument("what", nargs="?", default="ready", choices=("ready", "load", "tune"))
    wait.add_argument("--timeout", type=float, default=300.0, help="seconds (default 300)")
    sub.add_parser("status", help="what runs, where, and the current figures (a table)")
    sub.add_parser("plot", help="the compact live latency plot")
    sub.add_parser("knobs", help="the serving and load knobs")
    sub.add_parser("compression", help="the compression comparison of this session")
    sub.add_parser("dashboard", help="the whole dashboard, inline")
    sub.add_parser("help", help="this help")
    return parser


def _tune_parser(sub: Any) -> None:
    from workbench.ui.tuning import KNOBS

    tune = sub.add_parser("tune", help="search serving settings of NAME for a latency objective, in the background")
    tune.add_argument("name", help="zoo model (mlp, cnn, transformer, mlp1d) or a model file; the loaded model "
                                   "(with its compressed variants) when it is the one named")
    tune.add_argument("--p99-ms", type=float, required=True, help="the p99 latency target (ms)")
    goal = tune.add_mutually_exclusive_group()
    goal.add_argument("--rate", type=float, help="hold this rate (req/s) with p99 at most the target (default)")
    goal.add_argument("--max-rate", action="store_true", help="find the highest rate with p99 at most the target")
    tune.add_argument("--min-accuracy", type=float, help="leave out variants less accurate than this fraction")
    tune.add_argument("--budget-s", type=float, help="seconds of measuring (default 30)")
    tune.add_argument("--knobs", type=lambda text: [k.strip() for k in text.split(",") if k.strip()],
                      help=f"knobs to search, comma separated, from {','.join(KNOBS)} "
                           "(default max_batch_size,max_delay_ms)")


def tune_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The Tune state settings that ``%workbench tune ...`` gives."""
    settings: dict[str, Any] = {"p99_ms": args.p99_ms}
    if args.max_rate:
        settings["goal"] = "highest rate"
    elif args.rate is not None:
        settings.update(goal="fixed rate", rate=args.rate)
    if args.min_accuracy is not None:
        settings["min_accuracy"] = args.min_accuracy
    if args.budget_s is not None:
        settings["budget_s"] = args.budget_s
    if args.knobs is not None:
        settings["knobs"] = args.knobs
    return settings


def _given(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


@magics_class
class WorkbenchMagics(Magics):
    """``%workbench COMMAND ...``: see the module docstring, or ``%workbench help``."""

    parser = build_parser()

    @line_magic
    def workbench(self, line: str = "") -> Any:
        """Serve, load-test and watch a model from this notebook. ``%workbench help`` lists the commands."""
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"cannot read the arguments: {exc}") from None
        if not words:
            from workbench.ui.kernel import kernel_workbench

            return kernel_workbench()
        try:
            args = self.parser.parse_args(words)
        except _Done:
            return None
        try:
            return self._run(args)
        except WorkbenchError as exc:  # a refusal or a failed background start: its own words, one line
            raise UsageError(str(exc)) from None

    def _run(self, args: argparse.Namespace) -> Any:
        from workbench.ui.kernel import LOAD_SETTINGS, SERVE_SETTINGS, kernel_workbench

        command = args.command
        if command in (None, "help"):
            self.parser.print_help()
            return None
        wb = kernel_workbench()
        future: Any
        if command == "serve":
            future = wb.serve(args.name, backend=args.backend, port=args.port, http=not args.no_http,
                              **_given(args, SERVE_SETTINGS))
            self._follow(wb, future, ("model", "serve"), lambda: wb.describe(load=False))
        elif command == "load":
            future = wb.load(**_given(args, LOAD_SETTINGS))
            self._follow(wb, future, ("load",), lambda: f"load {wb.state.load.status}")
        elif command == "apply":
            changes = _given(args, SERVE_SETTINGS)
            future = wb.apply(**changes)
            self._follow(wb, future, ("serve",), lambda: "applied " + ", ".join(f"{k}={v}" for k, v in changes.items()))
        elif command == "tune":
            return self._tune(wb, args)
        elif command == "stop" and args.what == "tune":
            wb.session.tuning.stop()
            print("the tuner stops after the current trial (cut short); the best so far is kept")
        elif command == "wait" and args.what == "tune":
            self._wait_tune(wb, args.timeout)
        elif command == "stop":
            tuning = args.what == "all" and wb.session.tuning.running
            if tuning:
                wb.session.tuning.stop()
            future = wb.stop(args.what)
            if future is None:
                print("the tuner stops after the current trial" if tuning else "nothing to stop")
            else:
                self._follow(wb, future, ("load", "serve"), wb.describe)
        elif command == "wait":
            wb.wait(args.what, timeout_s=args.timeout)
            print(wb.describe())
        elif command == "status":
            self._display(wb.status())
        elif command in VIEWS:
            self._display(getattr(wb, command)())
        return None

    def _tune(self, wb: Any, args: argparse.Namespace) -> None:
        """Start the session's tuner on ``args.name`` and show its live view (the cell returns at once)."""
        from workbench.ui.kernel import _update
        from workbench.ui.notebook import tune_view
        from workbench.ui.state import FILE_SOURCE
        from workbench.ui.tuning import TUNE_SETTINGS

        tuning = wb.session.tuning
        if tuning.running:
            raise UsageError("the tuner is running already; stop it first (%workbench stop tune)")
        _update(tuning.state, tune_settings(args), TUNE_SETTINGS, "tune")
        m = wb.state.model
        current = m.file_path if m.source == FILE_SOURCE else m.source
        loaded = wb.session.model is not None and args.name == current
        view = tune_view(session=wb.session, objective=tuning.state.to_objective())  # follows the next tuner
        try:
            tuning.start(model=None if loaded else args.name)
        except BaseException:
            view.stop()
            tuning.on_tuner.remove(view.attach)
            raise
        wb._view(view)
        self._display(view)

    @staticmethod
    def _wait_tune(wb: Any, timeout_s: float) -> None:
        import time

        tuning = wb.session.tuning
        deadline = time.monotonic() + timeout_s
        while tuning.running:
            wb.pump()
            if time.monotonic() > deadline:
                raise UsageError(f"the tuner is still running after {timeout_s:g} s (%workbench stop tune stops it)")
            time.sleep(0.05)
        wb.pump()
        future = tuning._future
        if future is not None and not future.cancelled() and future.exception() is not None:
            raise UsageError(f"tuning failed: {future.exception()}")
        print(tuning.result.message if tuning.result is not None else "the tuner has not run")

    def _follow(self, wb: Any, future: Any, sections: tuple[str, ...], finished: Any) -> None:
        """Show a line that follows the background work (in a kernel), else say how to follow it."""
        if getattr(self.shell, "kernel", None) is None:
            print("started in the background: %workbench status shows how far it is, %workbench wait waits")
            return
        from workbench.ui.statusline import StatusLine

        StatusLine(wb.session, future, [getattr(wb.state, name).task for name in sections], finished).show()

    @staticmethod
    def _display(obj: Any) -> None:
        from IPython.display import display

        display(obj)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext workbench``: register the ``%workbench`` magic, and stop everything it started when the
    kernel shuts down or restarts."""
    ipython.register_magics(WorkbenchMagics)
    _close_on_kernel_shutdown(getattr(ipython, "kernel", None))


#: how long the kernel's shutdown waits for the workbench to stop in order; jupyter_client sends SIGTERM to
#: the kernel's process group half its ``shutdown_wait_time`` (default 5 s) after asking it to shut down
SHUTDOWN_CLOSE_S = 1.5


def _close_on_kernel_shutdown(kernel: Any) -> None:
    """Close the kernel's workbench when the kernel is asked to shut down or restart.

    IPython 9 has no shutdown hook, and at exit is too late: on a shutdown request ipykernel terminates
    every child process (SIGTERM) before the interpreter exits, so the workers and load generators would
    be killed mid-request and the load run left unrecorded. The kernel's ``do_shutdown`` runs first: the
    workbench stops there, in order (load, HTTP API, workers), for at most ``SHUTDOWN_CLOSE_S``. What has
    not stopped by then (a Ray cluster takes longer) is killed, as the kernel would be terminated next and
    leave it orphaned. ``atexit`` stays as the fallback (plain IPython, scripts)."""
    if kernel is None or getattr(kernel, "_workbench_closes_on_shutdown", False):
        return
    original = kernel.do_shutdown

    def do_shutdown(restart: bool) -> Any:
        import threading

        from workbench.ui.kernel import close_kernel_workbench

        closer = threading.Thread(target=_close_quietly, args=(close_kernel_workbench,), name="workbench-shutdown",
                                  daemon=True)
        closer.start()
        closer.join(SHUTDOWN_CLOSE_S)
        if closer.is_alive():
            _kill_children()
        return original(restart)

    kernel.do_shutdown = do_shutdown
    kernel._workbench_closes_on_shutdown = True


def _close_quietly(close: Any) -> None:
    try:
        close(timeout_s=10.0)
    except Exception:  # the kernel must shut down whatever happens here
        import logging

        logging.getLogger("workbench.ui").exception("closing the workbench at kernel shutdown failed")


def _kill_children(timeout_s: float = 1.0) -> None:
    """SIGKILL every process this kernel started and wait for them, at most ``timeout_s``: its descendants,
    and, when the kernel leads its process group (as Jupyter starts kernels), the group's other members
    (a Ray node's agents outlive their raylet, re-parented away from the kernel)."""
    import os

    import psutil

    me = os.getpid()
    processes = psutil.Process().children(recursive=True)
    if os.getpgid(0) == me:
        known = {p.pid for p in processes}
        for p in psutil.process_iter():
            try:
                if p.pid != me and p.pid not in known and os.getpgid(p.pid) == me:
                    processes.append(p)
            except (psutil.Error, OSError):
                pass
    for p in processes:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(processes, timeout=timeout_s)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext workbench``: stop everything the magic started."""
    from workbench.ui.kernel import close_kernel_workbench

    close_kernel_workbench()


__all__ = ["WorkbenchMagics", "build_parser", "tune_settings", "load_ipython_extension", "unload_ipython_extension"]
