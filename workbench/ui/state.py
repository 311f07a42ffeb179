"""What the dashboard and the notebook views show and edit: ``param`` classes, one per section.

Inputs (what the user sets) are plain parameters with bounds; outputs (what the workbench reports)
are ``constant=True`` and change only through :func:`set_outputs`. Every class turns its inputs into
the library's own config objects (``ServeState.to_config()`` → ``ServeConfig``,
``LoadState.to_schedule()`` → a load schedule, ``CompressState.steps()`` → compression configs), so
a bad combination fails with the same :class:`~workbench.errors.ConfigError` as in code.

These classes import neither panel nor torch: :class:`~workbench.ui.session.WorkbenchSession` drives
them, Panel views and ipywidgets display them.
"""

from __future__ import annotations

from typing import Any

import param

from workbench.errors import ConfigError

ZOO_NAMES = ("mlp", "cnn", "transformer", "mlp1d")  # kept in step with workbench.models.zoo.ZOO (a test checks)
FILE_SOURCE = "file"
ROUTING = ("least_outstanding", "round_robin", "power_of_two")  # workbench.serving.routing.ROUTERS (test checks)
SCHEDULE_KINDS = ("constant", "poisson", "step", "ramp", "spike", "closed")
SECTIONS = ("Model", "Compress", "Serve", "Load", "Live", "Runs")


def set_outputs(obj: param.Parameterized, **values: Any) -> None:
    """Set ``constant`` output parameters of ``obj`` (in one batch, so watchers fire once)."""
    with param.edit_constant(obj):
        obj.param.update(**values)


class TaskState(param.Parameterized):
    """Progress of one section's slow work (training, compressing, starting workers), done off the UI thread."""

    busy = param.Boolean(default=False, constant=True, doc="True while the task runs")
    task = param.String(default="", constant=True, doc="What runs (or ran last), e.g. 'loading mlp'")
    progress = param.Integer(default=0, bounds=(0, 100), constant=True, doc="Percent done (0-100)")
    message = param.String(default="", constant=True, doc="The last progress or result line")
    error = param.String(default="", constant=True, doc="Why the last task failed; empty when it did not")


class ModelState(param.Parameterized):
    """Which model: a zoo model or a file, and what it is once loaded."""

    source: param.Selector = param.Selector(default="mlp", objects=[*ZOO_NAMES, FILE_SOURCE],
                            doc="A zoo model, or 'file' to load the file named in file_path")
    file_path = param.String(default="", doc="A model file (.pt2, TorchScript, .onnx, state_dict) or an artifact folder")
    model_name = param.String(default="", constant=True, doc="The loaded model's name (its name in the API)")
    variant = param.String(default="", constant=True, doc="The loaded model's variant, e.g. fp32")
    signature = param.String(default="", constant=True, doc="Input and output tensors")
    parameters = param.Integer(default=0, bounds=(0, None), constant=True, doc="Number of parameters")
    size_mb = param.Number(default=0.0, bounds=(0, None), constant=True, doc="Size of the weights in MB")
    accuracy = param.Number(default=None, allow_None=True, bounds=(0, 1), constant=True,
                            doc="Held-out accuracy in [0, 1]; None when the model has no evaluation split")
    task = param.ClassSelector(class_=TaskState, constant=True, instantiate=True, default=TaskState())

    @property
    def loaded(self) -> bool:
        return bool(self.model_name)

    def source_spec(self) -> str:
        """What to load: the zoo name, or the file path (checked: a file source needs a path)."""
        if self.source == FILE_SOURCE:
            path = self.file_path.strip()
            if not path:
                raise ConfigError("choose a model file: set file_path, or pick a zoo model "
                                  f"({', '.join(ZOO_NAMES)})")
            return path
        return str(self.source)


class CompressState(param.Parameterized):
    """Which compression methods to run, with their settings, and the variants made so far."""

    prune = param.Boolean(default=False, doc="Prune (remove or zero the smallest weights)")
    prune_method: param.Selector = param.Selector(default="structured", objects=["structured", "unstructured"],
                                  doc="structured removes neurons/channels (faster); unstructured zeroes weights")
    sparsity = param.Number(default=0.5, bounds=(0.0, 0.95), step=0.05, doc="Fraction of weights or units removed")
    quantize = param.Boolean(default=True, doc="Quantize")
    quantize_dtype: param.Selector = param.Selector(default="int8", objects=["int8", "static-int8", "bf16"],
                                    doc="int8: dynamic int8; static-int8: calibrated; bf16: bfloat16")
    quantize_runtime: param.Selector = param.Selector(default="torch", objects=["torch", "onnx"],
                                      doc="Quantize with torch or with ONNX Runtime (int8 kinds only)")
    distill = param.Boolean(default=False, doc="Distill into a narrower student")
    student_width = param.Number(default=0.25, bounds=(0.05, 1.0), step=0.05,
                                 doc="Student width as a fraction of the teacher's")
    distill_epochs = param.Integer(default=10, bounds=(1, 200), doc="Distillation epochs")
    onnx = param.Boolean(default=False, doc="Export to ONNX and serve with ONNX Runtime (last step)")
    onnx_quantize: param.Selector = param.Selector(default="none", objects=["none", "dynamic", "static"],
                                   doc="ONNX Runtime int8 quantization of the exported model")
    variants = param.List(default=[], item_type=str, constant=True, doc="Names of the variants made, newest last")
    table = param.List(default=[], constant=True, doc="Comparison rows (original and variants), as dicts")
    serve_variant: param.Selector = param.Selector(default="original", objects=["original"],
                                   doc="Which variant Serve starts with (or swaps in, while serving)")
    task = param.ClassSelector(class_=TaskState, constant=True, instantiate=True, default=TaskState())

    def steps(self) -> list[Any]:
        """The compression configs, in the order they apply: prune, distill, quantize, onnx."""
        from workbench.compression.config import DistillConfig, OnnxConfig, PruneConfig, QuantizeConfig

        steps: list[Any] = []
        if self.prune:
            steps.append(PruneConfig(method=self.prune_method, sparsity=float(self.sparsity)))
        if self.distill:
            steps.append(DistillConfig(student_width=float(self.student_width), epochs=int(self.distill_epochs)))
        if self.quantize and self.onnx:
            raise ConfigError("choose quantize or onnx, not both: for int8 with ONNX Runtime pick quantize with "
                              "runtime 'onnx', or onnx with onnx_quantize 'dynamic' or 'static'")
        if self.quantize:
            steps.append(QuantizeConfig(dtype=self.quantize_dtype, runtime=self.quantize_runtime))
        if self.onnx:
            steps.append(OnnxConfig(quantize=None if self.onnx_quantize == "none" else self.onnx_quantize))
        if not steps:
            raise ConfigError("choose at least one method: prune, distill, quantize or onnx")
        return steps

    def add_variant(self, name: str, rows: list[dict[str, Any]]) -> None:
        """Record a new variant and the comparison table (the original first, then every variant)."""
        names = [*self.variants, name]
        set_outputs(self, variants=names, table=rows)
        self.param.serve_variant.objects = ["original", *names]


class ServeState(param.Parameterized):
    """How the model is served. Batching, routing and the queue limit change at once when applied
    live; replicas, stages and threads start new workers (the old ones drain)."""

    backend: param.Selector = param.Selector(default="local", objects=["local", "ray"],
                             doc="local: worker processes on this machine; ray: Ray Serve (needs the ray extra)")
    replicas = param.Integer(default=1, bounds=(1, 16), doc="Data-parallel worker copies")
    stages = param.Integer(default=1, bounds=(1, 8), doc="Pipeline stages per replica (model parallelism)")
    threads_per_worker = param.Integer(default=1, bounds=(1, 16), doc="Intra-op threads per worker process")
    max_batch_size = param.Integer(default=32, bounds=(1, 4096), doc="Rows per batch at most")
    max_delay_ms = param.Number(default=2.0, bounds=(0.0, 1000.0), step=0.5,
                                doc="Longest a batch's oldest request waits for more (ms)")
    routing: param.Selector = param.Selector(default="least_outstanding", objects=list(ROUTING), doc="Which replica gets the next batch")
    max_queue = param.Integer(default=1024, bounds=(1, 1_000_000), doc="Rows that may wait; beyond, requests are refused (503)")
    http = param.Boolean(default=True, doc="Also serve the OIP v2 HTTP API (load then goes over HTTP)")
    status: param.Selector = param.Selector(default="stopped", objects=["stopped", "starting", "serving", "applying", "stopping", "failed"],
                            constant=True, doc="What the server is doing")
    url = param.String(default="", constant=True, doc="Base URL of the HTTP API while serving")
    model = param.String(default="", constant=True, doc="The served model's name")
    variant = param.String(default="", constant=True, doc="The served variant")
    workers = param.Integer(default=0, bounds=(0, None), constant=True, doc="Ready replicas")
    applied = param.Dict(default={}, constant=True, doc="The settings in effect (flat names), while serving")
    task = param.ClassSelector(class_=TaskState, constant=True, instantiate=True, default=TaskState())

    #: settings that map one to one onto ServeConfig's flat names
    CONFIG_FIELDS = ("replicas", "stages", "threads_per_worker", "max_batch_size", "max_delay_ms", "routing", "max_queue")

    @property
    def serving(self) -> bool:
        return self.status in ("serving", "applying")

    def flat(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.CONFIG_FIELDS}

    def to_config(self, base: Any = None) -> Any:
        """A ``ServeConfig`` with these settings (on top of ``base``, default the defaults)."""
        from workbench.serving.config import ServeConfig

        return (base or ServeConfig()).replace(**self.flat())

    def pending(self) -> dict[str, list[Any]]:
        """``{setting: [in effect, chosen]}`` for every setting changed since it was applied."""
        if not self.applied:
            return {}
        chosen = self.flat()
        return {k: [self.applied.get(k), v] for k, v in chosen.items() if self.applied.get(k) != v}

    def show_config(self, config: Any) -> None:
        """Make the inputs and ``applied`` show ``config`` (a ServeConfig in effect)."""
        flat = {k: v for k, v in config.flat().items() if k in self.CONFIG_FIELDS}
        self.param.update(**flat)
        set_outputs(self, applied=flat)


class LoadState(param.Parameterized):
    """The load to put on the served model: an open-loop schedule, or closed-loop clients."""

    schedule: param.Selector = param.Selector(default="poisson", objects=list(SCHEDULE_KINDS),
                              doc="constant, poisson, step, ramp, spike (open loop) or closed (fixed concurrency)")
    rate = param.Number(default=100.0, bounds=(1.0, 100_000.0), doc="Requests per second (the base or start rate)")
    step_rates = param.String(default="100, 200, 400", doc="step: the rates in turn, comma separated")
    step_s = param.Number(default=10.0, bounds=(0.1, 3600.0), doc="step: seconds per rate")
    end_rate = param.Number(default=400.0, bounds=(0.0, 100_000.0), doc="ramp: the rate at the end of the ramp")
    ramp_s = param.Number(default=30.0, bounds=(0.1, 86_400.0), doc="ramp: seconds the ramp takes")
    spike_rate = param.Number(default=800.0, bounds=(1.0, 100_000.0), doc="spike: the rate during the spike")
    spike_at_s = param.Number(default=10.0, bounds=(0.0, 86_400.0), doc="spike: when it starts (s into the run)")
    spike_length_s = param.Number(default=2.0, bounds=(0.1, 3600.0), doc="spike: how long it lasts (s)")
    concurrency = param.Integer(default=8, bounds=(1, 4096), doc="closed: clients, each waits for its answer")
    duration_s = param.Number(default=60.0, bounds=(1.0, 86_400.0), doc="How long the load runs (s)")
    until_stopped = param.Boolean(default=False, doc="Run until stopped (duration_s is then ignored)")
    running = param.Boolean(default=False, constant=True, doc="True while load runs")
    status = param.String(default="idle", constant=True, doc="What the load generator is doing")
    run_id = param.String(default="", constant=True, doc="The last finished run's record id")
    task = param.ClassSelector(class_=TaskState, constant=True, instantiate=True, default=TaskState())

    def to_schedule(self) -> Any:
        """The schedule config (validated by the load package)."""
        from workbench.load.schedules import Closed, Constant, Poisson, Ramp, Spike, Step

        kind = self.schedule
        if kind == "constant":
            return Constant(rate=self.rate)
        if kind == "poisson":
            return Poisson(rate=self.rate)
        if kind == "step":
            try:
                rates = tuple(float(r) for r in self.step_rates.replace("/", ",").split(",") if r.strip())
            except ValueError:
                raise ConfigError(f"step rates must be numbers separated by commas, got {self.step_rates!r}") from None
            return Step(rates=rates, step_s=self.step_s)
        if kind == "ramp":
            return Ramp(start_rate=self.rate, end_rate=self.end_rate, ramp_s=self.ramp_s)
        if kind == "spike":
            return Spike(base_rate=self.rate, spike_rate=self.spike_rate, at_s=self.spike_at_s,
                         length_s=self.spike_length_s)
        return Closed(concurrency=int(self.concurrency))

    def describe(self) -> str:
        return self.to_schedule().describe()


class LiveState(param.Parameterized):
    """The current figures, from the latest telemetry windows (what the big numbers show)."""

    p50_ms = param.Number(default=None, allow_None=True, constant=True, doc="Client-side p50 latency (ms)")
    p99_ms = param.Number(default=None, allow_None=True, constant=True, doc="Client-side p99 latency (ms)")
    rps = param.Number(default=0.0, bounds=(0, None), constant=True, doc="Successful responses per second")
    errors_per_s = param.Number(default=0.0, bounds=(0, None), constant=True, doc="Failed requests per second")
    errors_total = param.Integer(default=0, bounds=(0, None), constant=True, doc="Failed requests since serving started")
    queue_depth = param.Integer(default=0, bounds=(0, None), constant=True, doc="Requests waiting in the queue")
    mean_batch_size = param.Number(default=0.0, bounds=(0, None), constant=True, doc="Mean rows per computed batch")
    windows = param.Integer(default=0, bounds=(0, None), constant=True, doc="Telemetry windows received")
    last_change = param.String(default="", constant=True, doc="The last configuration change")


class RunsState(param.Parameterized):
    """Past load runs (run records on disk) and the two shown side by side."""

    runs = param.List(default=[], constant=True, doc="Run ids, newest first")
    run_a: param.Selector = param.Selector(default=None, objects=[], allow_None=True, doc="Left run")
    run_b: param.Selector = param.Selector(default=None, objects=[], allow_None=True, doc="Right run")

    def set_runs(self, ids: list[str]) -> None:
        # choose first: a widget showing these params may reset them when their objects change
        a = self.run_a if self.run_a in ids else (ids[1] if len(ids) > 1 else (ids[0] if ids else None))
        b = self.run_b if self.run_b in ids else (ids[0] if ids else None)
        set_outputs(self, runs=list(ids))
        for name in ("run_a", "run_b"):
            self.param[name].objects = list(ids)
        self.param.update(run_a=a, run_b=b)


class WorkbenchState(param.Parameterized):
    """Everything one dashboard (or notebook) session shows: a state object per section."""

    model = param.ClassSelector(class_=ModelState, constant=True, instantiate=True, default=ModelState())
    compress = param.ClassSelector(class_=CompressState, constant=True, instantiate=True, default=CompressState())
    serve = param.ClassSelector(class_=ServeState, constant=True, instantiate=True, default=ServeState())
    load = param.ClassSelector(class_=LoadState, constant=True, instantiate=True, default=LoadState())
    live = param.ClassSelector(class_=LiveState, constant=True, instantiate=True, default=LiveState())
    runs = param.ClassSelector(class_=RunsState, constant=True, instantiate=True, default=RunsState())
    section: param.Selector = param.Selector(default="Model", objects=list(SECTIONS), doc="The section on show")


__all__ = [
    "SECTIONS", "CompressState", "LiveState", "LoadState", "ModelState", "RunsState", "ServeState", "TaskState",
    "WorkbenchState", "set_outputs",
]
