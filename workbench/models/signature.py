"""Tensor signatures: what a model takes and gives, without the batch dimension."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.errors import ConfigError

#: Open Inference Protocol datatype names and the numpy dtypes they map to.
OIP_DATATYPES: dict[str, str] = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
}
NUMPY_TO_OIP: dict[str, str] = {v: k for k, v in OIP_DATATYPES.items()}


@dataclass(frozen=True, kw_only=True)
class TensorSpec:
    """One tensor: its name, its shape without the batch dimension, and its numpy dtype name."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ConfigError(f"tensor name must be a non-empty string, got {self.name!r}")
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        if any(d < 1 for d in self.shape):
            raise ConfigError(f"tensor {self.name!r}: every dimension must be >= 1, got {self.shape}")
        if self.dtype not in NUMPY_TO_OIP:
            raise ConfigError(
                f"tensor {self.name!r}: dtype {self.dtype!r} is not supported; "
                f"allowed: {sorted(NUMPY_TO_OIP)}"
            )

    @property
    def datatype(self) -> str:
        """The Open Inference Protocol datatype name, e.g. ``FP32``."""
        return NUMPY_TO_OIP[self.dtype]

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    def check_batch(self, array: np.ndarray, *, what: str = "input") -> None:
        """Raise ConfigError unless ``array`` is a batch of this tensor (any batch size >= 1)."""
        if array.ndim != len(self.shape) + 1 or tuple(array.shape[1:]) != self.shape:
            raise ConfigError(
                f"{what} {self.name!r} must have shape (batch, {', '.join(map(str, self.shape))}), "
                f"got {tuple(array.shape)}"
            )
        if array.shape[0] < 1:
            raise ConfigError(f"{what} {self.name!r}: batch must hold at least one row")
        if str(array.dtype) != self.dtype:
            raise ConfigError(f"{what} {self.name!r} must have dtype {self.dtype}, got {array.dtype}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TensorSpec:
        return cls(name=data["name"], shape=tuple(data["shape"]), dtype=data.get("dtype", "float32"))


@dataclass(frozen=True, kw_only=True)
class Signature:
    """A model's input and output tensor. workbench serves single-input, single-output models."""

    input: TensorSpec
    output: TensorSpec
    labels: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {"input": self.input.to_dict(), "output": self.output.to_dict(), "labels": list(self.labels)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Signature:
        return cls(
            input=TensorSpec.from_dict(data["input"]),
            output=TensorSpec.from_dict(data["output"]),
            labels=tuple(data.get("labels", ())),
        )


__all__ = ["OIP_DATATYPES", "NUMPY_TO_OIP", "Signature", "TensorSpec"]
