"""Quantization handlers: dynamic int8, static int8 and bf16 in torch, or int8 via ONNX Runtime.

What is possible was measured on torch 2.13 (CPU): ``torch.ao`` eager dynamic quantization is
deprecated but present and fast (MLP ≈ 1.7× at batch 1); FX graph mode static int8 works for
convolutions and Linears (it leaves ``nn.TransformerEncoder`` in fp32); bf16 pays at larger batches;
fp16 is several times slower than fp32 on CPU, so it is refused there. Each handler only records a
load-time transform (see :mod:`workbench.compression.transforms`) and checks that it took effect.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from workbench.compression.config import OnnxConfig, QuantizeConfig, resolve_filter
from workbench.compression.registry import StepContext, Work, handler_for, register_method
from workbench.compression.transforms import DYNAMIC_INT8_TYPES
from workbench.errors import CompressionError


def _is_quantized(m: nn.Module) -> bool:
    return type(m).__module__.startswith(("torch.ao.nn.quantized", "torch.ao.nn.intrinsic.quantized"))


def _dynamic_targets(module: nn.Module, config: QuantizeConfig) -> list[str]:
    chosen = resolve_filter(config.filter_fn)
    allowed = ", ".join(t.__name__ for t in DYNAMIC_INT8_TYPES)
    names = []
    for name, m in module.named_modules():
        if not name:
            continue
        if chosen is None:
            if type(m) in DYNAMIC_INT8_TYPES:
                names.append(name)
        elif chosen(m, name):
            if type(m) not in DYNAMIC_INT8_TYPES:
                raise CompressionError(
                    f"dynamic int8 quantizes {allowed} layers; the filter selected {name!r} ({type(m).__name__}). "
                    "For convolutions use static-int8."
                )
            names.append(name)
    if not names:
        raise CompressionError(f"dynamic int8 found nothing to quantize: the model has no selected {allowed} layers")
    return names


def _check_applied(work: Work, what: str) -> int:
    count = sum(1 for m in work.served_module().modules() if _is_quantized(m))
    if count == 0:
        raise CompressionError(f"{what} left no layer quantized in this model")
    return count


@register_method(QuantizeConfig)
def quantize(work: Work, config: QuantizeConfig, context: StepContext) -> Work:
    """Apply :class:`QuantizeConfig`: record the load-time transform and check that it took effect."""
    if config.runtime == "onnx":
        onnx = OnnxConfig(quantize="dynamic" if config.dtype == "int8" else "static",
                          calibration_samples=config.calibration_samples)
        return handler_for(onnx)(work, onnx, context)
    work.require_plain(f"{config.dtype} quantization")
    if config.dtype == "fp16":
        if not torch.cuda.is_available():
            raise CompressionError(
                "fp16 is not offered on CPU: it runs 3-14x slower than fp32 here. Use bf16 (fast at larger "
                "batches on CPUs with bf16 support) or int8 instead"
            )
        work.transforms.append({"op": "fp16"})
        work.record(config)
        return work
    if config.dtype == "bf16":
        work.transforms.append({"op": "bf16"})
        work.record(config, note="weights and activations in bfloat16; faster at larger batches, not at batch 1")
        return work
    if config.dtype == "int8":
        names = _dynamic_targets(work.base, config)
        work.transforms.append({"op": "dynamic_int8", "modules": names, "engine": torch.backends.quantized.engine})
        _check_applied(work, "dynamic int8")
        work.record(config, layers=names)
        return work
    # static int8: calibrated on rows of held-out data, stored in the artifact for the load-time transform
    rows = context.data.require_calibration("static int8", config.calibration_samples)
    path = work.files_dir / "calibration.npy"
    np.save(path, np.ascontiguousarray(rows.astype(work.example.dtype, copy=False)), allow_pickle=False)
    work.files["calibration.npy"] = path
    work.transforms.append({"op": "static_int8", "calibration": "calibration.npy", "backend": "x86"})
    try:
        count = _check_applied(work, "static int8")
    except CompressionError:
        raise
    except Exception as exc:  # FX could not trace this model
        work.transforms.pop()
        raise CompressionError(
            f"static int8 needs a model torch.fx can trace; this one fails ({type(exc).__name__}: {exc}). "
            "Try dtype='int8' (dynamic) or OnnxConfig(quantize='static')"
        ) from None
    work.record(config, calibration_rows=len(rows), quantized_layers=count,
                note="FX graph mode; nn.TransformerEncoder layers stay fp32")
    return work


__all__ = ["quantize"]
