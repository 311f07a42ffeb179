"""One value object per compression method: what to do, validated on construction.

Every config is a frozen keyword-only dataclass that round-trips through a plain dict (``to_dict`` /
``config_from_dict``), so a pipeline can live in YAML, JSON or a dashboard's state. The dict names its
method under ``"step"``. A ``filter_fn(module, name) -> bool`` (where a method takes one) chooses the
layers it touches; it serializes as its import path ``"package.module:function"``.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from workbench.errors import ConfigError

FilterFn = Callable[[Any, str], bool]


def _check_choice(what: str, value: Any, allowed: tuple[Any, ...]) -> None:
    if value not in allowed:
        shown = ", ".join(repr(a) for a in allowed)
        raise ConfigError(f"{what} must be one of {shown}; got {value!r}")


def _check_int(what: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{what} must be an integer >= {minimum}; got {value!r}")


def _check_positive(what: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"{what} must be a number > 0; got {value!r}")


def _check_filter(value: Any) -> None:
    if value is not None and not callable(value) and not (isinstance(value, str) and value.count(":") == 1):
        raise ConfigError(
            f"filter_fn must be a callable filter_fn(module, name) -> bool or 'package.module:function'; got {value!r}"
        )


def resolve_filter(value: FilterFn | str | None) -> FilterFn | None:
    """The callable behind ``filter_fn`` (importing ``"package.module:function"`` when given as text)."""
    if value is None or callable(value):
        return value
    module_name, attr = value.split(":")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"filter_fn {value!r} cannot be imported: {exc}") from None
    if not callable(fn):
        raise ConfigError(f"filter_fn {value!r} is not callable")
    return fn  # type: ignore[no-any-return]


def _filter_path(value: FilterFn | str | None, strict: bool = True) -> str | None:
    if value is None or isinstance(value, str):
        return value
    module_name, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", "")
    if not module_name or "<" in qualname or "." in qualname:
        if not strict:
            return f"<{module_name}.{qualname}>"
        raise ConfigError(
            f"filter_fn {value!r} is not a module-level function, so it cannot be written to a dict; "
            "define it at module level or pass its import path 'package.module:function'"
        )
    return f"{module_name}:{qualname}"


@dataclass(frozen=True, kw_only=True)
class StepConfig:
    """Base of all compression step configs. ``step`` names the method in dicts and the registry."""

    step: ClassVar[str] = ""

    def to_dict(self, *, strict: bool = True) -> dict[str, Any]:
        """A plain dict (JSON/YAML-ready) that :func:`config_from_dict` turns back into this config.
        A filter_fn that is no module-level function raises ConfigError, or with ``strict=False`` is
        written as a description (for records, not for reading back)."""
        out: dict[str, Any] = {"step": self.step}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "filter_fn":
                value = _filter_path(value, strict)
            elif isinstance(value, Mapping):
                value = dict(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepConfig:
        data = dict(data)
        step = data.pop("step", cls.step)
        if step != cls.step:
            raise ConfigError(f"{cls.__name__} reads step {cls.step!r}, got {step!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{cls.__name__} has no option {unknown}; allowed: {sorted(known)}")
        return cls(**data)

    def label(self) -> str:
        """The short text this step adds to a variant's name, e.g. ``prune-structured-0.5``."""
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class PruneConfig(StepConfig):
    """Pruning. ``unstructured``: zero the ``sparsity`` fraction of smallest-magnitude (L1) weights of each
    selected layer; shapes stay, so on CPU nothing gets smaller or faster. ``structured``: remove that
    fraction of the output neurons / channels of each selected layer (with torch-pruning), so the model
    really shrinks, then fine-tune for ``fine_tune_epochs`` (default 0 unstructured, 3 structured)."""

    step: ClassVar[str] = "prune"
    method: str = "unstructured"
    sparsity: float = 0.5
    fine_tune_epochs: int | None = None
    lr: float = 1e-3
    filter_fn: FilterFn | str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _check_choice("PruneConfig.method", self.method, ("unstructured", "structured"))
        if isinstance(self.sparsity, bool) or not isinstance(self.sparsity, (int, float)) or not 0 <= self.sparsity < 1:
            raise ConfigError(f"PruneConfig.sparsity must be in [0, 1) (the fraction removed); got {self.sparsity!r}")
        if self.fine_tune_epochs is not None:
            _check_int("PruneConfig.fine_tune_epochs", self.fine_tune_epochs, 0)
        _check_positive("PruneConfig.lr", self.lr)
        _check_filter(self.filter_fn)

    @property
    def epochs(self) -> int:
        if self.fine_tune_epochs is not None:
            return self.fine_tune_epochs
        return 3 if self.method == "structured" else 2

    def label(self) -> str:
        return f"prune-{self.method}-{self.sparsity:g}"


QUANT_DTYPES = ("int8", "static-int8", "bf16", "fp16")
RUNTIMES = ("torch", "onnx")


@dataclass(frozen=True, kw_only=True)
class QuantizeConfig(StepConfig):
    """Quantization. ``int8``: dynamic int8 (weights int8, activations quantized on the fly) of Linear and
    LSTM/GRU layers. ``static-int8``: int8 weights and activations, calibrated on ``calibration_samples``
    rows of held-out data. ``bf16``: the whole model in bfloat16. ``fp16`` is refused on CPU (it is several
    times slower there). ``runtime="onnx"`` does int8 / static-int8 with ONNX Runtime instead of torch."""

    step: ClassVar[str] = "quantize"
    dtype: str = "int8"
    runtime: str = "torch"
    calibration_samples: int = 256
    filter_fn: FilterFn | str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _check_choice("QuantizeConfig.dtype", self.dtype, QUANT_DTYPES)
        _check_choice("QuantizeConfig.runtime", self.runtime, RUNTIMES)
        _check_int("QuantizeConfig.calibration_samples", self.calibration_samples, 1)
        _check_filter(self.filter_fn)
        if self.runtime == "onnx" and self.dtype not in ("int8", "static-int8"):
            raise ConfigError(f"QuantizeConfig(runtime='onnx') does int8 and static-int8; got dtype {self.dtype!r}")
        if self.filter_fn is not None and self.dtype != "int8":
            raise ConfigError(
                f"filter_fn selects layers for dtype='int8' (dynamic) only; {self.dtype} converts the whole model"
            )

    def label(self) -> str:
        return ("onnx-" if self.runtime == "onnx" else "") + self.dtype


@dataclass(frozen=True, kw_only=True)
class DistillConfig(StepConfig):
    """Knowledge distillation into a smaller student trained from the current model (the teacher).

    Loss: ``alpha * T² * KL(student/T ‖ teacher/T) + (1 - alpha) * cross-entropy(labels)``. For zoo models
    the student is the same family, ``student_width`` (a fraction in (0, 1]) times as wide and
    ``student_depth`` layers deep (None: as deep as the teacher). Any other model needs
    ``student_factory="package.module:function"`` (+ ``student_kwargs``) that builds the student."""

    step: ClassVar[str] = "distill"
    student_width: float = 0.25
    student_depth: int | None = None
    temperature: float = 4.0
    alpha: float = 0.7
    epochs: int = 30
    lr: float = 2e-3
    batch_size: int = 64
    student_factory: str | None = None
    student_kwargs: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        w = self.student_width
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 < w <= 1:
            raise ConfigError(f"DistillConfig.student_width must be a fraction in (0, 1] of the teacher's width; got {w!r}")
        if self.student_depth is not None:
            _check_int("DistillConfig.student_depth", self.student_depth, 1)
        _check_positive("DistillConfig.temperature", self.temperature)
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not 0 <= self.alpha <= 1:
            raise ConfigError(f"DistillConfig.alpha (weight of the soft targets) must be in [0, 1]; got {self.alpha!r}")
        _check_int("DistillConfig.epochs", self.epochs, 1)
        _check_positive("DistillConfig.lr", self.lr)
        _check_int("DistillConfig.batch_size", self.batch_size, 1)
        if self.student_factory is not None and (
            not isinstance(self.student_factory, str) or self.student_factory.count(":") != 1
        ):
            raise ConfigError(f"DistillConfig.student_factory must look like 'package.module:function'; got {self.student_factory!r}")
        if self.student_kwargs is not None and not isinstance(self.student_kwargs, Mapping):
            raise ConfigError(f"DistillConfig.student_kwargs must be a dict; got {type(self.student_kwargs).__name__}")

    def label(self) -> str:
        if self.student_factory:
            return "distill-" + self.student_factory.split(":")[1]
        depth = f"-d{self.student_depth}" if self.student_depth is not None else ""
        return f"distill-w{self.student_width:g}{depth}"


@dataclass(frozen=True, kw_only=True)
class OnnxConfig(StepConfig):
    """Export to ONNX and serve with ONNX Runtime: fp32 (``quantize=None``), or int8 quantized by ORT,
    ``"dynamic"`` (weights int8, best for Linear-heavy models) or ``"static"`` (QDQ, calibrated on
    ``calibration_samples`` held-out rows; best for convolutions). Must be the last step."""

    step: ClassVar[str] = "onnx"
    quantize: str | None = None
    calibration_samples: int = 256
    per_channel: bool = False
    opset: int = 17

    def __post_init__(self) -> None:
        _check_choice("OnnxConfig.quantize", self.quantize, (None, "dynamic", "static"))
        _check_int("OnnxConfig.calibration_samples", self.calibration_samples, 1)
        if not isinstance(self.per_channel, bool):
            raise ConfigError(f"OnnxConfig.per_channel must be true or false; got {self.per_channel!r}")
        _check_int("OnnxConfig.opset", self.opset, 13)

    def label(self) -> str:
        return {None: "onnx", "dynamic": "onnx-int8", "static": "onnx-static-int8"}[self.quantize]


CONFIG_TYPES: dict[str, type[StepConfig]] = {
    c.step: c for c in (PruneConfig, QuantizeConfig, DistillConfig, OnnxConfig)
}


def config_from_dict(data: Mapping[str, Any]) -> StepConfig:
    """Rebuild a step config from ``to_dict()`` output; ``data["step"]`` names the method."""
    if not isinstance(data, Mapping) or "step" not in data:
        raise ConfigError(f"a compression step dict needs a 'step' key, one of {sorted(CONFIG_TYPES)}; got {data!r}")
    try:
        cls = CONFIG_TYPES[data["step"]]
    except KeyError:
        raise ConfigError(f"unknown compression step {data['step']!r}; known: {sorted(CONFIG_TYPES)}") from None
    return cls.from_dict(data)


__all__ = [
    "CONFIG_TYPES", "DistillConfig", "OnnxConfig", "PruneConfig", "QuantizeConfig", "StepConfig",
    "config_from_dict", "resolve_filter",
]
