"""The method registry and the state a compression pipeline carries from step to step.

A method is a config class (see :mod:`workbench.compression.config`) plus a handler registered for it::

    @register_method(MyConfig)
    def my_method(work: Work, config: MyConfig, context: StepContext) -> Work: ...

``compress()`` looks the handler up by the config's type; nothing else changes to add a method.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from workbench.compression.config import CONFIG_TYPES, StepConfig
from workbench.errors import CompressionError


@dataclass(frozen=True)
class CompressionData:
    """The data compression steps use: ``train`` (x, y) for fine-tuning and distillation and
    ``calibration`` (x) for static quantization. The report's accuracy always uses the model's held-out
    split. By default the calibration rows are a seeded random sample of the training split, so the
    test split stays unseen by every step."""

    train: tuple[np.ndarray, np.ndarray] | None
    calibration: np.ndarray | None

    @classmethod
    def from_training(cls, x: np.ndarray, y: np.ndarray, *, calibration_samples: int = 512, seed: int = 0) -> CompressionData:
        rows = np.random.default_rng(seed).permutation(len(x))[:calibration_samples]
        return cls(train=(x, y), calibration=np.ascontiguousarray(x[np.sort(rows)]))

    def require_train(self, what: str) -> tuple[np.ndarray, np.ndarray]:
        if self.train is None:
            raise CompressionError(
                f"{what} needs training data: this model names no data set, so pass data=(x_train, y_train)"
            )
        return self.train

    def require_calibration(self, what: str, samples: int) -> np.ndarray:
        if self.calibration is None:
            raise CompressionError(
                f"{what} needs calibration data: this model names no data set, so pass data=(x_train, y_train)"
            )
        return self.calibration[:samples]


@dataclass
class Work:
    """A variant under construction.

    ``base`` is the fp32 module an artifact stores (its weights, maybe a smaller architecture);
    ``transforms`` turn it into what is served (applied at load time, see
    :mod:`workbench.models.transforms`); ``files`` are extra artifact files those transforms read
    (kept in ``files_dir``). After an ONNX step ``onnx_file`` holds the served model and ``base`` only
    describes it.
    """

    name: str
    base: Any
    source: dict[str, Any]
    signature: Any
    example: np.ndarray
    evaluation: dict[str, Any]
    files_dir: Path
    transforms: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    onnx_file: Path | None = None

    @property
    def family(self) -> str | None:
        """The zoo family when the base rebuilds from an architecture, else None."""
        return self.source.get("family") if self.source.get("kind") == "architecture" else None

    def require_torch(self, what: str) -> None:
        if self.onnx_file is not None:
            raise CompressionError(f"{what} cannot follow an ONNX step: make the ONNX export the last step")

    def require_plain(self, what: str) -> None:
        """Steps that change weights or export need the fp32 model: no load-time transform may precede them."""
        self.require_torch(what)
        if self.transforms:
            done = ", ".join(str(t["op"]) for t in self.transforms)
            raise CompressionError(
                f"{what} needs the fp32 model, but {done} was applied before it; put {what} before that step"
                + (" (for int8 in ONNX Runtime use OnnxConfig(quantize='dynamic'|'static'))" if "onnx" in what.lower() else "")
            )

    def served_module(self) -> Any:
        """The module as served: a copy of ``base`` with the transforms applied (exactly what a worker builds)."""
        from workbench.models.transforms import TransformContext, apply_transforms

        self.require_torch("a torch module")
        module = copy.deepcopy(self.base).eval()
        return apply_transforms(module, self.transforms, TransformContext(folder=self.files_dir, example=self.example)).eval()

    def runner(self) -> Callable[[np.ndarray], np.ndarray]:
        """numpy → numpy over the variant as it stands now (used as the teacher, for instance)."""
        from workbench.models.runner import OnnxRunner, TorchRunner

        if self.onnx_file is not None:
            return OnnxRunner(str(self.onnx_file))
        return TorchRunner(self.served_module())

    def fork(self, files_dir: Path) -> Work:
        """An independent copy (own module, own files in ``files_dir``) to continue along another branch."""
        files = {name: Path(shutil.copyfile(path, files_dir / name)) for name, path in self.files.items()}
        onnx_file = Path(shutil.copyfile(self.onnx_file, files_dir / self.onnx_file.name)) if self.onnx_file else None
        return replace(
            self, base=copy.deepcopy(self.base), source=copy.deepcopy(self.source), files_dir=files_dir,
            transforms=copy.deepcopy(self.transforms), files=files, labels=list(self.labels),
            steps=copy.deepcopy(self.steps), onnx_file=onnx_file,
        )

    def record(self, config: StepConfig, **done: Any) -> None:
        """Add this step's label and its lineage entry (the config plus what was actually done)."""
        self.labels.append(config.label())
        self.steps.append({**config.to_dict(strict=False), **done})


@dataclass(frozen=True)
class StepContext:
    """What a handler may use besides the variant: data, progress reporting and a seed."""

    data: CompressionData
    progress: bool = True
    callback: Callable[[str, int, int], None] | None = None
    seed: int = 0

    def report(self, stage: str) -> Callable[[int, int], None] | None:
        """A ``(done, total)`` callback for one stage (for ``train_classifier``), or None."""
        callback = self.callback
        if callback is None:
            return None
        return lambda done, total: callback(stage, done, total)


Handler = Callable[[Work, Any, StepContext], Work]
_HANDLERS: dict[type, Handler] = {}


def register_method(config_type: type[StepConfig]) -> Callable[[Handler], Handler]:
    """Decorator: ``handler(work, config, context) -> work`` applies configs of ``config_type``."""

    def decorate(fn: Handler) -> Handler:
        _HANDLERS[config_type] = fn
        CONFIG_TYPES[config_type.step] = config_type
        return fn

    return decorate


def handler_for(config: Any) -> Handler:
    """The handler registered for ``type(config)``; a CompressionError names the known methods otherwise."""
    fn = _HANDLERS.get(type(config))
    if fn is None:
        known = ", ".join(sorted(t.__name__ for t in _HANDLERS))
        raise CompressionError(f"unknown compression step {config!r}: pass one of the configs {known}")
    return fn


def registered_methods() -> list[type]:
    return list(_HANDLERS)


__all__ = ["CompressionData", "Handler", "StepContext", "Work", "handler_for", "register_method", "registered_methods"]
