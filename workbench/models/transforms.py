"""Deterministic transforms applied to a rebuilt module when an artifact is loaded.

A compressed variant is stored as the fp32 weights of its (possibly smaller) architecture plus the list
of transforms that turn it into what is served, e.g. ``[{"op": "dynamic_int8"}]``. Transforms that need
more than the weights (calibrated static quantization) store their state in the artifact's files and
read it back through ``context``. New methods register a transform here; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from workbench.errors import ModelLoadError


@dataclass(frozen=True)
class TransformContext:
    """What a transform may read while an artifact is rebuilt: the artifact's folder and its example batch."""

    folder: Path
    example: Any  # numpy batch of the model input


Transform = Callable[[nn.Module, dict[str, Any], TransformContext], nn.Module]
_TRANSFORMS: dict[str, Transform] = {}


def register_transform(op: str) -> Callable[[Transform], Transform]:
    """Decorator: register ``fn(module, params, context) -> module`` under the name ``op``."""

    def decorate(fn: Transform) -> Transform:
        _TRANSFORMS[op] = fn
        return fn

    return decorate


def apply_transforms(module: nn.Module, steps: list[dict[str, Any]], context: TransformContext) -> nn.Module:
    """Apply each ``{"op": name, **params}`` step in order."""
    if steps:
        import workbench.compression  # noqa: F401  (registers the compression transforms)
    for step in steps:
        op = step.get("op")
        fn = _TRANSFORMS.get(str(op))
        if fn is None:
            raise ModelLoadError(
                f"artifact asks for transform {op!r}, which this workbench does not know; "
                f"known: {sorted(_TRANSFORMS)}. Was it saved by a newer workbench?"
            )
        params = {k: v for k, v in step.items() if k != "op"}
        module = fn(module, params, context)
    return module


@register_transform("bf16")
def _bf16(module: nn.Module, params: dict[str, Any], context: TransformContext) -> nn.Module:
    import torch

    return module.to(torch.bfloat16)


__all__ = ["TransformContext", "apply_transforms", "register_transform"]
