"""Where a generator runs: its own spawned process (the default) or a thread (in-process targets).

Either way it runs ``generator_main``: prepare the sender, say ``Ready``, wait for ``Go``, run the
engine, say ``Done`` (or ``Failed``). It listens to its control pipe on its event loop, so ``Stop``
takes effect at once; end-of-file on that pipe means the parent is gone, and the generator stops.
A generator process also asks Linux to kill it if its parent dies (PR_SET_PDEATHSIG), and never
runs past its schedule plus the drain time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from multiprocessing.connection import Connection
from typing import Any

from workbench.errors import WorkbenchError
from workbench.load.generator import Engine
from workbench.load.messages import Failed, GeneratorSpec, Go, Ready, Stop

log = logging.getLogger(__name__)


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent thread exits. False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(1, int(sig), 0, 0, 0) == 0  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return False


def _run(coro: Any, *, use_uvloop: bool) -> None:
    factory = asyncio.new_event_loop
    if use_uvloop:
        try:
            import uvloop

            factory = uvloop.new_event_loop
        except ImportError:
            pass
    loop = factory()
    try:
        loop.run_until_complete(coro)
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


def generator_main(spec: GeneratorSpec, results: Connection, control: Connection, parent_pid: int | None = None,
                   death_signal: bool = False) -> None:
    """Entry point of a generator process (``parent_pid`` given) or thread."""
    if death_signal:
        set_parent_death_signal()
    if parent_pid is not None and os.getppid() != parent_pid:
        return  # the parent died before we started
    if parent_pid is not None:
        # A generator process stops when its parent says so (or dies), not on a Ctrl-C aimed at the
        # parent's process group: a Jupyter interrupt must not kill a run the user did not stop.
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _run(_generator(spec, results, control), use_uvloop=spec.use_uvloop)
    except BaseException as exc:  # report anything unexpected rather than dying silently
        _send(results, Failed(source=spec.source, error_type=type(exc).__name__, message=f"{exc!r}"))
        if not isinstance(exc, Exception):
            raise
    finally:
        results.close()
        control.close()


def _send(conn: Connection, message: Any) -> bool:
    try:
        conn.send(message)
        return True
    except (OSError, ValueError):  # the parent is gone (broken pipe) or closed its end
        return False


async def _generator(spec: GeneratorSpec, results: Connection, control: Connection) -> None:
    loop = asyncio.get_running_loop()
    go_event = asyncio.Event()
    state: dict[str, Any] = {"go": None, "stop": False, "engine": None}

    def stop() -> None:
        state["stop"] = True
        go_event.set()
        if state["engine"] is not None:
            state["engine"].request_stop()

    def on_control() -> None:
        try:
            message = control.recv()
        except (EOFError, OSError):  # the parent is gone
            loop.remove_reader(control.fileno())
            stop()
            return
        if isinstance(message, Go):
            state["go"] = message
            go_event.set()
        elif isinstance(message, Stop):
            stop()

    def emit(message: Any) -> None:
        if not _send(results, message):
            stop()

    loop.add_reader(control.fileno(), on_control)
    sender = spec.target.sender(max_connections=spec.max_connections)
    try:
        info = await sender.open()
        engine = state["engine"] = Engine(spec, sender, emit)
        emit(Ready(source=spec.source, info=info))
        try:
            await asyncio.wait_for(go_event.wait(), spec.start_timeout_s)
        except asyncio.TimeoutError:
            emit(Failed(source=spec.source, error_type="BackendUnavailable",
                        message=f"the load generator got no start signal within {spec.start_timeout_s} s"))
            return
        if state["stop"] or state["go"] is None:
            return
        emit(await engine.run(state["go"]))
    except WorkbenchError as exc:
        emit(Failed(source=spec.source, error_type=type(exc).__name__, message=str(exc)))
    finally:
        try:
            loop.remove_reader(control.fileno())
        except (OSError, ValueError):
            pass
        await sender.close()


def start_thread(spec: GeneratorSpec, results: Connection, control: Connection) -> threading.Thread:
    thread = threading.Thread(target=generator_main, args=(spec, results, control),
                              name=f"workbench-loadgen-{spec.source}", daemon=True)
    thread.start()
    return thread


__all__ = ["generator_main", "set_parent_death_signal", "start_thread"]
