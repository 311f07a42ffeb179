"""A one-line status of background work in a cell's output (what ``%workbench serve`` shows).

It needs no widget library: an IPython display handle redraws the line in place. It imports
neither panel nor bokeh, so starting to serve from a notebook stays quick.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from workbench.ui.state import TaskState


class StatusLine:
    """One line that follows background work in a cell's output: the running task's progress, then
    ``finished()`` (or the error) once ``future`` ends. It redraws in place (an IPython display
    handle, no widget library needed); updates arrive on the kernel's thread through the session."""

    def __init__(self, session: Any, future: Future[Any], tasks: Sequence[TaskState],
                 finished: Callable[[], str]):
        self.session, self.future, self.tasks, self.finished = session, future, list(tasks), finished
        self.text = ""
        self.failed = False
        self._handle: Any = None
        self._watchers = [(t, t.param.watch(self.render, ["busy", "progress", "message", "error"])) for t in tasks]
        self.render()
        future.add_done_callback(lambda _f: session.updates.post(self.render))

    def show(self) -> StatusLine:
        """Display the line in the current cell's output; it updates in place from then on."""
        from IPython.display import display

        self._handle = display(self, display_id=True)
        return self

    def render(self, *_: Any) -> None:
        future = self.future
        if future.done():
            if future.cancelled():
                self.text = "cancelled"
            elif future.exception() is not None:
                from workbench.ui.tasks import error_text

                self.text, self.failed = f"failed: {error_text(future.exception())}", True  # type: ignore[arg-type]
            else:
                self.text = self.finished()
            for task, watcher in self._watchers:
                task.param.unwatch(watcher)
            self._watchers.clear()
        else:
            busy = [t for t in self.tasks if t.busy]
            if busy:
                t = busy[0]
                self.text = f"{t.message or t.task} ({t.progress} %)"
            elif not self.text:
                self.text = "in the background..."
        if self._handle is not None:
            self._handle.update(self)

    def _repr_html_(self) -> str:
        import html

        mark = "&#10007;" if self.failed else ("&#10003;" if self.future.done() else "&#8987;")
        color = "#d62728" if self.failed else "inherit"
        return f"<span class='wb-status-line' style='color:{color}'>{mark} {html.escape(self.text)}</span>"

    def __repr__(self) -> str:
        return self.text


__all__ = ["StatusLine"]
