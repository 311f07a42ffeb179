"""A faster runtime as a variant: export to ONNX and serve with ONNX Runtime, fp32 or int8.

Export uses torch's TorchScript-based exporter (``dynamo=False``): it writes one self-contained file
with a dynamic batch axis in well under a second, where the dynamo exporter stores weights in a side
file and, for the transformer, fixed the batch size. int8 uses ONNX Runtime's quantizer after its
pre-processing (shape inference and graph optimization): ``dynamic`` (int8 weights, activations
quantized on the fly: best for Linear-heavy models) or ``static`` (QDQ, activations calibrated on
held-out rows: the one that pays for convolutions). The result is an artifact of kind ``onnx``, which
serving workers run through :class:`workbench.models.runner.OnnxRunner` like any torch model.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from workbench.compression.config import OnnxConfig
from workbench.compression.registry import StepContext, Work, register_method
from workbench.errors import CompressionError


def export_onnx(module: Any, example: np.ndarray, path: Path, *, opset: int = 17) -> Path:
    """Export ``module`` to ``path`` with a dynamic batch axis; raises CompressionError when it can't."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(example[:1]))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module.eval(), (x,), str(path), dynamo=False, opset_version=opset,
                input_names=["input"], output_names=["output"],
                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            )
    except Exception as exc:
        raise CompressionError(f"export to ONNX failed ({type(exc).__name__}: {exc})") from None
    return path


def quantize_onnx(src: Path, dst: Path, *, mode: str, calibration: np.ndarray | None = None,
                  per_channel: bool = False) -> Path:
    """ONNX Runtime int8 quantization of ``src`` into ``dst`` (``mode`` is ``dynamic`` or ``static``)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quant_pre_process
    from onnxruntime.quantization import quantize_dynamic as ort_dynamic
    from onnxruntime.quantization import quantize_static as ort_static

    class Rows(CalibrationDataReader):
        """The calibration rows, 32 at a time, as ONNX Runtime's calibrator reads them."""

        def __init__(self, rows: np.ndarray):
            self.batches = [{"input": rows[i : i + 32]} for i in range(0, len(rows), 32)]
            self.position = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.position >= len(self.batches):
                return None
            self.position += 1
            return self.batches[self.position - 1]

    prepared = dst.with_name(dst.stem + ".prep.onnx")
    try:
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
    except Exception:  # pre-processing is an optimization; quantize the plain export if it fails
        prepared = src
    if mode == "dynamic":
        ort_dynamic(str(prepared), str(dst), weight_type=QuantType.QInt8, per_channel=per_channel)
    elif calibration is None:
        raise CompressionError("ONNX static int8 needs calibration rows")
    else:
        reader = Rows(np.ascontiguousarray(calibration))
        ort_static(str(prepared), str(dst), calibration_data_reader=reader, quant_format=QuantFormat.QDQ,
                   activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=per_channel)
    if prepared != src:
        prepared.unlink(missing_ok=True)
    return dst


@register_method(OnnxConfig)
def to_onnx(work: Work, config: OnnxConfig, context: StepContext) -> Work:
    """Export the variant's fp32 model to ONNX (optionally int8 by ONNX Runtime); the variant then runs in ORT."""
    work.require_plain("the ONNX export")
    fp32 = export_onnx(work.served_module(), work.example, work.files_dir / "model.fp32.onnx", opset=config.opset)
    done: dict[str, Any] = {"exporter": "torch.onnx (TorchScript-based, dynamic batch)"}
    if config.quantize is None:
        work.onnx_file = fp32
    else:
        rows = None
        if config.quantize == "static":
            rows = context.data.require_calibration("ONNX static int8", config.calibration_samples)
            done["calibration_rows"] = len(rows)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                work.onnx_file = quantize_onnx(fp32, work.files_dir / "model.int8.onnx", mode=config.quantize,
                                               calibration=rows, per_channel=config.per_channel)
        except Exception as exc:
            raise CompressionError(f"ONNX Runtime {config.quantize} int8 quantization failed: {exc}") from None
    work.record(config, **done)
    return work


__all__ = ["export_onnx", "quantize_onnx", "to_onnx"]
