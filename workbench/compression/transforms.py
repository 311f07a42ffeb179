"""Load-time transforms of the compression methods, registered with :mod:`workbench.models.transforms`.

Each one turns the rebuilt fp32 module into the served variant deterministically, so the compressing
process and every serving worker end with the same module and the same outputs:

- ``{"op": "dynamic_int8", "modules": [...], "engine": "x86"}``: ``torch.ao`` dynamic int8 of the named
  Linear / LSTM / GRU layers. Transformer encoder layers holding such a layer get a no-op forward
  pre-hook, which makes torch skip its fused fast path (it cannot run quantized weights) for those
  layers only, instead of turning the fast path off for the whole process.
- ``{"op": "static_int8", "calibration": "calibration.npy", "backend": "x86"}``: FX graph mode static
  int8 (``prepare_fx`` → calibrate on the stored rows → ``convert_fx``); the rows are an artifact file.
- ``{"op": "fp16"}``: half precision (offered on CUDA only).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.errors import ModelLoadError
from workbench.models.artifact import inside_folder
from workbench.models.transforms import TransformContext, register_transform

#: layer types torch's dynamic int8 quantizes
DYNAMIC_INT8_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.LSTM, nn.GRU, nn.LSTMCell, nn.GRUCell, nn.RNNCell)


def _use_engine(engine: str | None) -> None:
    if engine is None or torch.backends.quantized.engine == engine:
        return
    if engine not in torch.backends.quantized.supported_engines:
        raise ModelLoadError(
            f"this variant was quantized for the {engine!r} engine, which this torch build lacks "
            f"(it has {torch.backends.quantized.supported_engines})"
        )
    torch.backends.quantized.engine = engine


def _skip_fast_path(module: nn.Module, inputs: Any) -> None:
    """A forward pre-hook that does nothing; its presence turns off an encoder layer's fused fast path."""
    return None


def quantize_dynamic_int8(module: nn.Module, names: list[str]) -> nn.Module:
    """``torch.ao`` dynamic int8 of the layers named ``names`` (each a supported type)."""
    from torch.ao.quantization import quantize_dynamic

    named = dict(module.named_modules())
    missing = [n for n in names if n not in named]
    if missing:
        raise ModelLoadError(f"dynamic_int8: the model has no layers {missing}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's eager quantization warns that it is deprecated
        quantized = quantize_dynamic(module, qconfig_spec=set(names), dtype=torch.qint8, inplace=False)
    for layer in quantized.modules():
        if isinstance(layer, nn.TransformerEncoderLayer) and any(
            type(m).__module__.startswith("torch.ao.nn.quantized") for m in layer.modules()
        ):
            layer.register_forward_pre_hook(_skip_fast_path)
    return quantized


def quantize_static_int8(module: nn.Module, calibration: np.ndarray, backend: str = "x86") -> nn.Module:
    """FX graph mode static int8, calibrated on ``calibration`` (a batch of inputs)."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    _use_engine(backend)
    x = torch.from_numpy(np.ascontiguousarray(calibration))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_fx(module.eval(), get_default_qconfig_mapping(backend), (x[:1],))
        with torch.inference_mode():
            for i in range(0, len(x), 64):
                prepared(x[i : i + 64])
        return convert_fx(prepared)


@register_transform("dynamic_int8")
def _dynamic_int8(module: nn.Module, params: dict[str, Any], context: TransformContext) -> nn.Module:
    _use_engine(params.get("engine"))
    return quantize_dynamic_int8(module, list(params["modules"]))


@register_transform("static_int8")
def _static_int8(module: nn.Module, params: dict[str, Any], context: TransformContext) -> nn.Module:
    path = inside_folder(context.folder, params.get("calibration"))
    if not path.is_file():
        raise ModelLoadError(f"static_int8: the calibration file {path.name} is missing from {context.folder}")
    return quantize_static_int8(module, np.load(path, allow_pickle=False), str(params.get("backend", "x86")))


@register_transform("fp16")
def _fp16(module: nn.Module, params: dict[str, Any], context: TransformContext) -> nn.Module:
    return module.to(torch.float16)


__all__ = ["DYNAMIC_INT8_TYPES", "quantize_dynamic_int8", "quantize_static_int8"]
