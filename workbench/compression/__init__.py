"""Compression: prune, quantize, distill and export to a faster runtime, composed in order.

::

    from workbench.compression import compress, PruneConfig, QuantizeConfig
    variant, report = compress(model, [PruneConfig(method="structured", sparsity=0.5), QuantizeConfig(dtype="int8")])
    print(report); report.pareto_figure(); variant.save("mlp-small-int8")

A method is a config class plus a handler registered for it (:func:`register_method`). Importing this
package registers the built-in methods and their load-time transforms (it imports torch; the heavy
extras, torch-pruning, ONNX Runtime, pandas and bokeh, load only when used).
"""

from __future__ import annotations

# importing the method modules registers their handlers and load-time transforms
from workbench.compression import distillation, onnx_export, pruning, quantization, transforms  # noqa: F401
from workbench.compression.api import CompressionResult, build_variant, build_variants, compare, compress
from workbench.compression.config import (
    DistillConfig,
    OnnxConfig,
    PruneConfig,
    QuantizeConfig,
    StepConfig,
    config_from_dict,
)
from workbench.compression.measure import Measurement, measure, measure_many
from workbench.compression.registry import CompressionData, StepContext, Work, register_method
from workbench.compression.report import CompressionReport, pareto_figure, reports_frame

__all__ = [
    "CompressionData", "CompressionReport", "CompressionResult", "DistillConfig", "Measurement", "OnnxConfig",
    "PruneConfig", "QuantizeConfig", "StepConfig", "StepContext", "Work", "build_variant", "build_variants", "compare", "compress",
    "config_from_dict", "measure", "measure_many", "pareto_figure", "register_method", "reports_frame",
]
