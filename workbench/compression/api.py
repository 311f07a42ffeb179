"""The entry point: ``compress(model, [PruneConfig(...), QuantizeConfig(...)])`` → a new variant + its report.

Steps apply in order to a private copy (the original is never touched). Each step's handler comes from
the registry (:mod:`workbench.compression.registry`). The variant is then measured against the original
in the same run (:mod:`workbench.compression.measure`).

How a variant is stored, so a worker rebuilds exactly what was measured:

- zoo and factory models: the fp32 weights of the (maybe smaller) architecture + load-time transforms
  (``base_state``, ``transforms``, ``extra_files`` of the ``Model``); the in-process variant is built by
  the very same transform code;
- other ``nn.Module`` models: plain fp32 results are saved as a ``torch.export`` program; quantized ones
  (which ``torch.export`` cannot take) are traced to TorchScript;
- ONNX variants: the ``.onnx`` file, run by ONNX Runtime.
"""

from __future__ import annotations

import atexit
import copy
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from workbench.compression.config import StepConfig, config_from_dict
from workbench.compression.measure import measure_many
from workbench.compression.registry import CompressionData, StepContext, Work, handler_for
from workbench.compression.report import CompressionReport
from workbench.errors import CompressionError, ConfigError

Steps = StepConfig | Mapping[str, Any] | Sequence[StepConfig | Mapping[str, Any]]


class CompressionResult(NamedTuple):
    """What :func:`compress` returns: ``variant, report = compress(...)``."""

    model: Any
    report: CompressionReport


def _scratch_dir() -> Path:
    """A folder for a variant's files (ONNX files, calibration rows), removed when the process exits."""
    folder = Path(tempfile.mkdtemp(prefix="workbench-variant-"))
    atexit.register(shutil.rmtree, folder, True)
    return folder


def normalize_steps(steps: Steps) -> list[StepConfig]:
    """A list of step configs from one config, one dict, or a sequence of either."""
    if isinstance(steps, (StepConfig, Mapping)):
        steps = [steps]
    if isinstance(steps, (str, bytes)) or not isinstance(steps, Sequence):
        raise CompressionError(f"steps must be a config such as QuantizeConfig(dtype='int8') or a list of them; got {steps!r}")
    out = [config_from_dict(s) if isinstance(s, Mapping) else s for s in steps]
    if not out:
        raise ConfigError("compress needs at least one step, e.g. [QuantizeConfig(dtype='int8')]")
    for s in out:
        handler_for(s)  # unknown methods fail before any work starts
    return out


def resolve_data(model: Any, data: Any = None) -> CompressionData:
    """``data`` as :class:`CompressionData`: given, or ``(x_train, y_train)``, or the model's own data set
    (its training split; calibration rows are a seeded sample of it, never the test split)."""
    if isinstance(data, CompressionData):
        return data
    if data is None:
        if model.evaluation.get("dataset"):
            from workbench.models.zoo import training_split

            return CompressionData.from_training(*training_split(model.evaluation))
        return CompressionData(train=None, calibration=None)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = (np.asarray(a) for a in data)
        if len(x) != len(y) or len(x) == 0:
            raise ConfigError(f"data=(x, y) needs as many labels as rows (and at least one); got {len(x)} and {len(y)}")
        model.signature.input.check_batch(x, what="training data")
        return CompressionData.from_training(x, y.astype(np.int64, copy=False))
    raise ConfigError(f"data must be (x_train, y_train) or a CompressionData; got {type(data).__name__}")


def _start(model: Any) -> Work:
    """A private fp32 copy of the model to work on."""
    kind = model.source.get("kind")
    if model.module is None or kind not in ("architecture", "factory", "module", "export"):
        raise CompressionError(
            f"model {model.name!r} is a {kind} model: compression works on torch nn.Module models (zoo models, "
            "modules, factory state_dicts, torch.export programs)"
        )
    files_dir = _scratch_dir()
    files: dict[str, Path] = {}
    if model.transforms:
        if kind not in ("architecture", "factory") or (model.base_state is None and model.artifact is None):
            raise CompressionError(f"model {model.name!r} is a compressed variant whose fp32 weights are not at hand")
        import torch

        from workbench.models.architectures import build_architecture
        from workbench.models.loading import call_factory

        base = (build_architecture(model.source["family"], dict(model.source.get("arch", {}))) if kind == "architecture"
                else call_factory(model.source["factory"], dict(model.source.get("kwargs", {}))))
        state = model.base_state if model.base_state is not None else torch.load(
            Path(model.artifact.path) / "weights.pt", map_location="cpu", weights_only=True)
        base.load_state_dict(state)
        for name, path in model.extra_files.items():
            files[name] = Path(shutil.copyfile(path, files_dir / name))
    else:
        base = copy.deepcopy(model.module)
    return Work(
        name=model.name, base=base.eval(), source=dict(model.source), signature=model.signature,
        example=model.example, evaluation=dict(model.evaluation), files_dir=files_dir,
        transforms=[dict(t) for t in model.transforms], files=files,
    )


def _finish(model: Any, work: Work) -> Any:
    """The variant as a ``Model`` whose artifact rebuilds exactly what runs here."""
    import torch

    from workbench.models.artifact import write_artifact
    from workbench.models.model import Model

    label = "+".join(([model.variant] if model.variant != "fp32" else []) + work.labels)
    lineage = {**model.lineage, "base": model.lineage.get("base", model.name), "parent": model.variant,
               "steps": [*model.lineage.get("steps", []), *work.steps]}
    base_state = {k: v.detach().clone() for k, v in work.base.state_dict().items()}
    common: dict[str, Any] = dict(name=model.name, signature=model.signature, example=model.example,
                                  eval_data=model.eval_data, evaluation=dict(model.evaluation), variant=label,
                                  lineage=lineage, base_state=base_state)
    kind = work.source.get("kind")
    if work.onnx_file is not None:
        from workbench.models.runner import OnnxRunner

        artifact = write_artifact(_scratch_dir() / "artifact", kind="onnx", model_file=work.onnx_file,
                                  name=model.name, signature=model.signature, example=model.example,
                                  variant=label, lineage=lineage, evaluation=dict(model.evaluation))
        return Model(module=None, source={"kind": "onnx"}, artifact=artifact,
                     runner_override=OnnxRunner(str(artifact.path / "model.onnx")), **common)
    module = work.served_module()
    if kind in ("architecture", "factory"):
        return Model(module=module, source=work.source, transforms=work.transforms, extra_files=dict(work.files), **common)
    if not work.transforms:
        return Model(module=module, source={"kind": "module"}, **common)
    # quantized modules cannot be torch.export-ed: trace them to TorchScript, which the artifact then holds
    folder = _scratch_dir()
    example = torch.from_numpy(np.ascontiguousarray(model.example))
    dtype = next((p.dtype for p in module.parameters() if p.is_floating_point()), None)
    if example.is_floating_point() and dtype is not None:
        example = example.to(dtype)  # as the runner feeds it (bf16 variants take bf16)
    try:
        with torch.inference_mode():
            traced = torch.jit.trace(module, (example,), check_trace=False)
        torch.jit.save(traced, str(folder / "model.ts"))
    except Exception as exc:
        raise CompressionError(f"the {label} variant of this module cannot be saved as TorchScript: {exc}") from None
    artifact = write_artifact(folder / "artifact", kind="torchscript", model_file=folder / "model.ts",
                              name=model.name, signature=model.signature, example=model.example, variant=label,
                              lineage=lineage, evaluation=dict(model.evaluation))
    loaded = torch.jit.load(str(artifact.path / "model.ts"), map_location="cpu")
    return Model(module=loaded, source={"kind": "torchscript"}, artifact=artifact, **common)


def build_variant(
    model: Any, steps: Steps, data: Any = None, progress: bool = True,
    callback: Callable[[str, int, int], None] | None = None, *, seed: int = 0,
) -> Any:
    """Apply ``steps`` in order to a copy of ``model`` and return the variant (a ``Model``), unmeasured."""
    return build_variants(model, [steps], data, progress, callback, seed=seed)[0]


def _step_key(config: StepConfig) -> str:
    return json.dumps(config.to_dict(strict=False), sort_keys=True, default=str) + f"#{id(getattr(config, 'filter_fn', None))}"


def build_variants(
    model: Any, pipelines: Sequence[Steps], data: Any = None, progress: bool = True,
    callback: Callable[[str, int, int], None] | None = None, *, seed: int = 0,
) -> list[Any]:
    """One variant per pipeline. Pipelines that start with the same steps share that work (every step is
    seeded, so the result is the same as building each alone): e.g. one distillation feeds
    ``[distill]``, ``[distill, int8]`` and ``[distill, onnx]``."""
    plans = [normalize_steps(steps) for steps in pipelines]
    context = StepContext(data=resolve_data(model, data), progress=progress, callback=callback, seed=seed)
    done: dict[tuple[str, ...], Work] = {}
    variants = []
    for configs in plans:
        keys = [_step_key(c) for c in configs]
        start = next((k for k in range(len(configs), 0, -1) if tuple(keys[:k]) in done), 0)
        work = done[tuple(keys[:start])].fork(_scratch_dir()) if start else _start(model)
        for i in range(start, len(configs)):
            if callback is not None:
                callback("steps", i, len(configs))
            work = handler_for(configs[i])(work, configs[i], context)
            if len(plans) > 1:
                done[tuple(keys[: i + 1])] = work.fork(_scratch_dir())
        if callback is not None:
            callback("steps", len(configs), len(configs))
        variants.append(_finish(model, work))
    return variants


def compress(
    model: Any, steps: Steps, data: Any = None, progress: bool = True,
    callback: Callable[[str, int, int], None] | None = None, *, seed: int = 0, repeats: int = 15,
    batch_sizes: Sequence[int] = (1, 32),
) -> CompressionResult:
    """Apply ``steps`` in order and measure the variant against ``model`` in the same run.

    ``data``: ``(x_train, y_train)`` or a :class:`CompressionData`; by default the model's own data set
    (training split for fine-tuning and distillation, a seeded sample of it for calibration).
    ``callback(stage, done, total)`` reports progress (stages ``steps``, ``fine-tune``, ``distill``,
    ``measure``); ``progress`` shows tqdm bars. Returns ``(variant, report)``; ``model`` is unchanged.
    """
    started = time.perf_counter()
    variant = build_variant(model, steps, data, progress, callback, seed=seed)
    elapsed = time.perf_counter() - started
    if callback is not None:
        callback("measure", 0, 1)
    original_m, variant_m = measure_many([model, variant], repeats=repeats, batch_sizes=batch_sizes)
    if callback is not None:
        callback("measure", 1, 1)
    count = len(normalize_steps(steps))
    report = CompressionReport(original=original_m, variant=variant_m, steps=tuple(variant.lineage["steps"][-count:]),
                               compress_s=elapsed)
    variant.metrics = _metrics(report)
    return CompressionResult(variant, report)


def _metrics(report: CompressionReport) -> dict[str, Any]:
    m = report.variant
    out: dict[str, Any] = {"accuracy": m.accuracy, "parameters": m.parameters, "model_bytes": m.model_bytes,
                           "sparsity": m.sparsity, "size_ratio": report.size_ratio}
    for b, ms in m.latency_ms.items():
        out[f"latency_b{b}_ms"] = ms
        out[f"speedup_b{b}"] = report.speedup(b)
    return out


def compare(
    model: Any, pipelines: Sequence[Steps], data: Any = None, progress: bool = True,
    callback: Callable[[str, int, int], None] | None = None, *, seed: int = 0, repeats: int = 15,
    batch_sizes: Sequence[int] = (1, 32),
) -> list[CompressionResult]:
    """Build one variant per pipeline (sharing common first steps) and measure them all with the original
    in one interleaved run, so every ratio compares like with like."""
    started = time.perf_counter()
    variants = build_variants(model, pipelines, data, progress, callback, seed=seed)
    elapsed = time.perf_counter() - started
    if callback is not None:
        callback("measure", 0, 1)
    measured = measure_many([model, *variants], repeats=repeats, batch_sizes=batch_sizes)
    if callback is not None:
        callback("measure", 1, 1)
    out = []
    for variant, m, steps in zip(variants, measured[1:], pipelines):
        n = len(normalize_steps(steps))
        report = CompressionReport(original=measured[0], variant=m, steps=tuple(variant.lineage["steps"][-n:]),
                                   compress_s=elapsed)
        variant.metrics = _metrics(report)
        out.append(CompressionResult(variant, report))
    return out


__all__ = ["CompressionResult", "build_variant", "build_variants", "compare", "compress", "normalize_steps", "resolve_data"]
