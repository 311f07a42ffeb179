"""Measuring a model the way compression reports it: size, sparsity, accuracy and latency.

Latency is timed on one intra-op thread (restored afterwards), after a warm-up, as the median over
``repeats`` rounds of a block of calls (each block long enough, ≥ ``min_block_s``, to dwarf the
timer). :func:`measure_many` interleaves the models round by round, so a busy machine slows all of
them alike and their ratios stay fair: compare models measured in the same call.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

from workbench.errors import ConfigError


@dataclass(frozen=True)
class Measurement:
    """One model, measured. ``model_bytes``: the served model serialized (its state_dict via ``torch.save``,
    or the ONNX file); ``artifact_bytes``: all files of its saved artifact (fp32 weights + transforms for
    torch variants, so int8 shows there only through ``model_bytes``). ``latency_ms``: batch size → median
    milliseconds per batch."""

    variant: str
    runtime: str
    parameters: int
    model_bytes: int
    artifact_bytes: int
    sparsity: float | None
    accuracy: float | None
    latency_ms: Mapping[int, float] = field(default_factory=dict)
    threads: int = 1

    def latency(self, batch_size: int) -> float:
        try:
            return self.latency_ms[batch_size]
        except KeyError:
            raise ConfigError(f"batch size {batch_size} was not measured; measured: {sorted(self.latency_ms)}") from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant, "runtime": self.runtime, "parameters": self.parameters,
            "model_bytes": self.model_bytes, "artifact_bytes": self.artifact_bytes, "sparsity": self.sparsity,
            "accuracy": self.accuracy, "latency_ms": {str(b): v for b, v in self.latency_ms.items()},
            "threads": self.threads,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Measurement:
        values = dict(data)
        values["latency_ms"] = {int(b): float(v) for b, v in dict(values.get("latency_ms", {})).items()}
        return cls(**values)


def _tensors(model: Any) -> dict[str, Any]:
    if model.base_state is not None:
        return dict(model.base_state)
    if model.module is not None:
        return dict(model.module.state_dict())
    return {}


def parameter_count(model: Any) -> int:
    """Parameters of the model's architecture (its fp32 weights, whatever dtype it is served in)."""
    tensors = _tensors(model)
    if tensors:
        return int(sum(t.numel() for t in tensors.values() if hasattr(t, "numel")))
    return int(model.metrics.get("parameters", 0))


def sparsity(model: Any) -> float | None:
    """Fraction of exact zeros among the weight matrices and kernels (tensors of 2 or more dimensions)."""
    weights = [t for t in _tensors(model).values() if hasattr(t, "dim") and t.is_floating_point() and t.dim() >= 2]
    total = sum(t.numel() for t in weights)
    if not total:
        return None
    return float(sum(int((t == 0).sum()) for t in weights) / total)


def _onnx_path(model: Any) -> Path | None:
    if model.module is None and model.artifact is not None and model.artifact.kind == "onnx":
        return Path(model.artifact.path) / "model.onnx"
    return None


def model_bytes(model: Any) -> int:
    """Bytes of the served model serialized: its state_dict through ``torch.save``, or its ONNX file."""
    import io

    import torch

    path = _onnx_path(model)
    if path is not None:
        return path.stat().st_size
    if model.module is None:
        return 0
    buffer = io.BytesIO()
    torch.save(model.module.state_dict(), buffer)
    return buffer.tell()


def artifact_bytes(model: Any) -> int:
    """Bytes of all files of the model's saved artifact (saved from a copy, to a temporary folder)."""
    with tempfile.TemporaryDirectory(prefix="workbench-measure-") as tmp:
        artifact = model.with_changes().save(Path(tmp) / "artifact")
        return sum(f.stat().st_size for f in Path(artifact.path).iterdir() if f.is_file())


def _timing_runner(model: Any, threads: int) -> Any:
    from workbench.models.runner import OnnxRunner, TorchRunner

    path = _onnx_path(model)
    if path is not None:
        return OnnxRunner(str(path), threads=threads)
    if model.module is not None:
        return TorchRunner(model.module, device="cpu")
    return model.runner()


def _batch(model: Any, size: int) -> np.ndarray:
    source = model.eval_data[0] if model.eval_data is not None else model.example
    reps = math.ceil(size / len(source))
    return np.ascontiguousarray(np.concatenate([source] * reps)[:size])


def time_models(
    runners: Sequence[Any], inputs: Sequence[np.ndarray], *, repeats: int = 15, min_block_s: float = 0.01,
    warmup: int = 3,
) -> list[float]:
    """Median seconds per call of each ``runners[i](inputs[i])``, timed round-robin over ``repeats`` rounds."""
    blocks = []
    for run, x in zip(runners, inputs):
        for _ in range(warmup):
            run(x)
        start = time.perf_counter()
        run(x)
        once = max(time.perf_counter() - start, 1e-7)
        blocks.append(max(1, min(2000, math.ceil(min_block_s / once))))
    samples: list[list[float]] = [[] for _ in runners]
    order = list(range(len(runners)))
    for r in range(repeats):
        for i in order[r % len(order):] + order[: r % len(order)]:  # rotate who goes first
            run, x, n = runners[i], inputs[i], blocks[i]
            start = time.perf_counter()
            for _ in range(n):
                run(x)
            samples[i].append((time.perf_counter() - start) / n)
    return [median(s) for s in samples]


def measure_many(
    models: Sequence[Any], *, batch_sizes: Sequence[int] = (1, 32), repeats: int = 15, threads: int = 1,
    min_block_s: float = 0.01, accuracy: bool = True,
) -> list[Measurement]:
    """Measure several models in one run (latency interleaved round by round); see :class:`Measurement`."""
    import torch

    if repeats < 1:
        raise ConfigError(f"repeats must be >= 1, got {repeats}")
    if threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        runners = [_timing_runner(m, threads) for m in models]
        latency: list[dict[int, float]] = [{} for _ in models]
        for b in batch_sizes:
            seconds = time_models(runners, [_batch(m, b) for m in models], repeats=repeats, min_block_s=min_block_s)
            for i, s in enumerate(seconds):
                latency[i][int(b)] = s * 1000.0
    finally:
        torch.set_num_threads(previous)
    out = []
    for m, lat in zip(models, latency):
        out.append(Measurement(
            variant=m.variant, runtime="onnx" if _onnx_path(m) is not None or m.module is None else "torch",
            parameters=parameter_count(m), model_bytes=model_bytes(m), artifact_bytes=artifact_bytes(m),
            sparsity=sparsity(m), accuracy=m.evaluate() if accuracy and m.eval_data is not None else None,
            latency_ms=lat, threads=threads,
        ))
    return out


def measure(model: Any, **options: Any) -> Measurement:
    """Measure one model (see :func:`measure_many` for the options)."""
    return measure_many([model], **options)[0]


__all__ = ["Measurement", "artifact_bytes", "measure", "measure_many", "model_bytes", "parameter_count",
           "sparsity", "time_models"]
