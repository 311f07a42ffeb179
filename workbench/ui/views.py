"""Panel views of the Model, Compress, Serve and Load sections: small ``Viewer``\\ s whose widgets come
from the session's param state (``Widget.from_param``), so a notebook view of the same state stays in
step. Buttons call the :class:`~workbench.ui.session.WorkbenchSession`; slow work reports into the
section's task, shown by :class:`TaskView`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import panel as pn
import param

from workbench.errors import WorkbenchError
from workbench.ui.facts import ray_available
from workbench.ui.session import WorkbenchSession
from workbench.ui.state import TaskState, set_outputs
from workbench.ui.tasks import error_text


def act(task: TaskState, fn: Callable[[], Any]) -> Callable[[Any], None]:
    """A button handler: run ``fn``; a refusal (bad input, wrong moment) shows in ``task.error``."""
    def handler(_: Any = None) -> None:
        try:
            fn()
        except (WorkbenchError, ValueError) as exc:
            set_outputs(task, error=error_text(exc))
    return handler


def button(label: str, task: TaskState, fn: Callable[[], Any], *, kind: str = "primary", css: str = "") -> pn.widgets.Button:
    b = pn.widgets.Button(label=label, color=kind, css_classes=[css] if css else [], min_width=120)
    b.on_click(act(task, fn))
    return b


def number_input(parameter: Any, label: str, css: str, **kw: Any) -> Any:
    """An IntInput/FloatInput for a numeric param (typing a value is exact; sliders are not)."""
    cls = pn.widgets.IntInput if isinstance(parameter, param.Integer) else pn.widgets.FloatInput
    return cls.from_param(parameter, label=label, css_classes=[css], description=parameter.doc, width=170, **kw)


def _is_file(source: str) -> bool:
    return source == "file"


class TaskView(pn.viewable.Viewer):
    """Progress bar, last message and last error of one section's background work."""

    def __init__(self, task: TaskState, **params: Any):
        super().__init__(**params)
        self._layout = pn.Column(
            pn.indicators.Progress(value=task.param.progress, active=False, max=100, height=14, width=320,
                                   visible=task.param.busy, bar_color="primary"),
            pn.pane.Str(task.param.message, css_classes=["wb-task-message"], styles={"color": "#555"}),
            pn.pane.Alert(task.param.error, alert_type="danger", visible=pn.bind(bool, task.param.error),
                          css_classes=["wb-task-error"]),
        )

    def __panel__(self) -> Any:
        return self._layout


class ModelView(pn.viewable.Viewer):
    """Pick a zoo model or a file; shows its signature, size and accuracy."""

    def __init__(self, session: WorkbenchSession, **params: Any):
        super().__init__(**params)
        m = session.state.model
        path = pn.widgets.TextInput.from_param(m.param.file_path, label="Model file", width=360,
                                               placeholder="path to .pt2 / TorchScript / .onnx / artifact folder",
                                               visible=pn.bind(_is_file, m.param.source))
        controls = pn.Row(
            pn.widgets.Select.from_param(m.param.source, label="Zoo model or file", width=200,
                                         description=m.param.source.doc),
            path,
            pn.Column(pn.Spacer(height=18), button("Load model", m.task, session.load_model, css="wb-load-model")),
        )
        facts = pn.pane.Markdown(pn.bind(self._facts, m.param.model_name, m.param.variant, m.param.signature,
                                         m.param.parameters, m.param.size_mb, m.param.accuracy),
                                 css_classes=["wb-model-facts"])
        self._layout = pn.Column("## Model", controls, TaskView(m.task), facts)

    @staticmethod
    def _facts(name: str, variant: str, signature: str, parameters: int, size_mb: float, accuracy: float | None) -> str:
        if not name:
            return "*No model loaded yet.*"
        acc = "-" if accuracy is None else f"{100 * accuracy:.2f} %"
        return (f"| model | |\n|---|---|\n| **name** | {name} ({variant}) |\n| **signature** | `{signature}` |\n"
                f"| **parameters** | {parameters:,} |\n| **size** | {size_mb:.2f} MB |\n| **accuracy** | {acc} |")

    def __panel__(self) -> Any:
        return self._layout


class CompressView(pn.viewable.Viewer):
    """Choose methods and settings, compress, compare variants (table and Pareto plot), pick one to serve."""

    def __init__(self, session: WorkbenchSession, **params: Any):
        super().__init__(**params)
        self.session = session
        c = session.state.compress
        w = pn.widgets
        kw = {"width": 200}
        methods = pn.Row(
            pn.Card(w.Checkbox.from_param(c.param.prune, label="prune"), w.Select.from_param(c.param.prune_method, label="method", **kw),
                    w.FloatSlider.from_param(c.param.sparsity, label="sparsity", **kw), title="Prune", collapsible=False, width=240),
            pn.Card(w.Checkbox.from_param(c.param.distill, label="distill"),
                    w.FloatSlider.from_param(c.param.student_width, label="student width", **kw),
                    number_input(c.param.distill_epochs, "epochs", "wb-distill-epochs"), title="Distill",
                    collapsible=False, width=240),
            pn.Card(w.Checkbox.from_param(c.param.quantize, label="quantize"),
                    w.Select.from_param(c.param.quantize_dtype, label="dtype", **kw),
                    w.Select.from_param(c.param.quantize_runtime, label="runtime", **kw), title="Quantize", collapsible=False,
                    width=240),
            pn.Card(w.Checkbox.from_param(c.param.onnx, label="export to ONNX"),
                    w.Select.from_param(c.param.onnx_quantize, label="ONNX Runtime int8", **kw), title="ONNX", collapsible=False,
                    width=240),
        )
        run = button("Compress", c.task, session.compress, css="wb-compress")
        pick = w.Select.from_param(c.param.serve_variant, label="Variant to serve", width=260,
                                   description=c.param.serve_variant.doc)
        self._layout = pn.Column(
            "## Compress", methods, run, TaskView(c.task),
            pn.pane.DataFrame(pn.bind(self._table, c.param.table), index=False, sizing_mode="stretch_width",
                              css_classes=["wb-compress-table"]),
            pn.pane.Bokeh(pn.bind(self._pareto, c.param.table)),
            pick,
        )

    @staticmethod
    def _table(rows: list[dict[str, Any]]) -> Any:
        import pandas as pd

        if not rows:
            return pd.DataFrame({"": ["Compress the model to compare variants here."]})
        frame = pd.DataFrame(rows)
        keep = [c for c in frame.columns if c in ("variant", "runtime", "accuracy_pct", "accuracy_change_pt", "parameters",
                                                  "model_bytes", "size_ratio", "steps") or c.startswith(("latency_b", "speedup_b"))]
        return frame[keep].round(3)

    def _pareto(self, rows: list[dict[str, Any]]) -> Any:
        if not rows:
            return None
        from workbench.compression.report import pareto_figure

        fig = pareto_figure(list(self.session.reports))
        fig.sizing_mode = "stretch_width"
        return fig

    def __panel__(self) -> Any:
        return self._layout


class ServeView(pn.viewable.Viewer):
    """Backend and serving settings; start, stop, and apply changes live."""

    def __init__(self, session: WorkbenchSession, *, compact: bool = False, **params: Any):
        super().__init__(**params)
        self.session = session
        s = session.state.serve
        w = pn.widgets
        has_ray = ray_available()
        backend = w.Select.from_param(s.param.backend, label="Backend", width=170, disabled_options=[] if has_ray else ["ray"],
                                      description="local: worker processes here. Ray Serve: "
                                      + ("available" if has_ray else "not installed here (pip install workbench[ray])"))
        knobs = [
            number_input(s.param.max_batch_size, "Max batch size", "wb-max-batch-size"),
            number_input(s.param.max_delay_ms, "Max delay (ms)", "wb-max-delay-ms", step=0.5),
            w.Select.from_param(s.param.routing, label="Routing", width=170, description=s.param.routing.doc),
            number_input(s.param.replicas, "Replicas", "wb-replicas"),
        ]
        more = [
            number_input(s.param.stages, "Pipeline stages", "wb-stages"),
            number_input(s.param.threads_per_worker, "Threads per worker", "wb-threads"),
            number_input(s.param.max_queue, "Queue limit (rows)", "wb-max-queue"),
        ]
        self.apply_button = button("Apply", s.task, session.apply, css="wb-apply")
        buttons = pn.Row(button("Start serving", s.task, session.start_serving, css="wb-start-serving"),
                         self.apply_button,
                         button("Stop serving", s.task, session.stop_serving, kind="warning", css="wb-stop-serving"))
        self.pending = pn.pane.Markdown("", css_classes=["wb-pending"])
        status = pn.pane.Markdown(pn.bind(self._status, s.param.status, s.param.model, s.param.variant, s.param.url,
                                          s.param.workers), css_classes=["wb-serve-status"])
        s.param.watch(self._refresh, [*s.CONFIG_FIELDS, "applied", "status", "variant"])
        session.state.compress.param.watch(self._refresh, ["serve_variant"])
        self._refresh()
        if compact:
            self._layout = pn.Column("### Tune", pn.GridBox(*knobs, ncols=2), self.pending, buttons[1], TaskView(s.task))
        else:
            self._layout = pn.Column(
                "## Serve", status,
                pn.Row(backend, w.Checkbox.from_param(s.param.http, label="HTTP API (OIP v2)")),
                pn.GridBox(*knobs, *more, ncols=4), self.pending, buttons, TaskView(s.task))

    @staticmethod
    def _status(status: str, model: str, variant: str, url: str, workers: int) -> str:
        if status in ("stopped", "failed"):
            return f"**{status}**"
        where = f" — API: `{url}`" if url else ""
        return f"**{status}**: {model} ({variant}), {workers} replica(s) ready{where}"

    def _refresh(self, *_: Any) -> None:
        s = self.session.state.serve
        pending = s.pending()
        chosen = self.session.state.compress.serve_variant
        swap = s.serving and chosen not in (None, "original", s.variant) and bool(s.variant)
        self.apply_button.disabled = not (s.status == "serving" and (pending or swap))
        lines = [f"{k} {old} → {new}" for k, (old, new) in pending.items()]
        if swap:
            lines.append(f"variant {s.variant} → {chosen}")
        self.pending.object = ("**pending (Apply to change live):** " + "; ".join(lines)) if lines and s.serving else ""

    def __panel__(self) -> Any:
        return self._layout


class LoadView(pn.viewable.Viewer):
    """Schedule, rate and duration of the load; start and stop."""

    def __init__(self, session: WorkbenchSession, *, compact: bool = False, **params: Any):
        super().__init__(**params)
        ld = session.state.load
        w = pn.widgets

        def only(*kinds: str) -> Any:
            return pn.bind(lambda k: k in kinds, ld.param.schedule)

        fields = [
            w.Select.from_param(ld.param.schedule, label="Schedule", width=170, description=ld.param.schedule.doc),
            number_input(ld.param.rate, "Rate (req/s)", "wb-rate", visible=only("constant", "poisson", "ramp", "spike")),
            w.TextInput.from_param(ld.param.step_rates, label="Step rates (req/s)", width=170, visible=only("step")),
            number_input(ld.param.step_s, "Seconds per step", "wb-step-s", visible=only("step")),
            number_input(ld.param.end_rate, "End rate (req/s)", "wb-end-rate", visible=only("ramp")),
            number_input(ld.param.ramp_s, "Ramp (s)", "wb-ramp-s", visible=only("ramp")),
            number_input(ld.param.spike_rate, "Spike rate (req/s)", "wb-spike-rate", visible=only("spike")),
            number_input(ld.param.spike_at_s, "Spike at (s)", "wb-spike-at", visible=only("spike")),
            number_input(ld.param.spike_length_s, "Spike length (s)", "wb-spike-length", visible=only("spike")),
            number_input(ld.param.concurrency, "Clients", "wb-concurrency", visible=only("closed")),
            number_input(ld.param.duration_s, "Duration (s)", "wb-duration",
                         disabled=ld.param.until_stopped),
            w.Checkbox.from_param(ld.param.until_stopped, label="until stopped"),
        ]
        buttons = pn.Row(button("Start load", ld.task, session.start_load, css="wb-start-load"),
                         button("Stop load", ld.task, session.stop_load, kind="warning", css="wb-stop-load"))
        status = pn.pane.Str(ld.param.status, css_classes=["wb-load-status"])
        grid = pn.GridBox(*fields, ncols=2 if compact else 4)
        self._layout = pn.Column("### Load" if compact else "## Load", grid, buttons, status, TaskView(ld.task))

    def __panel__(self) -> Any:
        return self._layout


__all__ = ["CompressView", "LoadView", "ModelView", "ServeView", "TaskView", "act", "button", "number_input"]
