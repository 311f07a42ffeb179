from __future__ import annotations

import numpy as np
import onnx
import pytest

from workbench.compression import OnnxConfig, PruneConfig, QuantizeConfig, build_variant
from workbench.errors import CompressionError

# ONNX Runtime int8 may lose at most this much held-out accuracy (points; measured 0.0 on the mlp with
# dynamic int8 and -0.2 on the cnn with static QDQ int8).
ONNX_INT8_MAX_LOSS_PT = 1.5


def op_types(variant) -> set[str]:
    return {node.op_type for node in onnx.load(str(variant.artifact.path / "model.onnx")).graph.node}


def test_fp32_onnx_gives_the_torch_outputs_at_any_batch_size(zoo_mlp, mlp_variants):
    variant = mlp_variants["onnx"]
    assert variant.module is None and variant.artifact.kind == "onnx" and variant.variant == "onnx"
    for rows in (1, 7, 64):
        x = zoo_mlp.eval_data[0][:rows]
        np.testing.assert_allclose(variant.predict(x), zoo_mlp.predict(x), rtol=1e-4, atol=1e-4)
    assert variant.evaluate() == pytest.approx(zoo_mlp.evaluate(), abs=0.003)
    assert "MatMulInteger" not in op_types(variant)


def test_dynamic_int8_onnx_uses_integer_matmuls(zoo_mlp, mlp_variants):
    variant = mlp_variants["onnx-int8"]
    ops = op_types(variant)
    assert "DynamicQuantizeLinear" in ops and ops & {"MatMulInteger", "DynamicQuantizeMatMul"}, ops
    assert 100 * (zoo_mlp.evaluate() - variant.evaluate()) <= ONNX_INT8_MAX_LOSS_PT


def test_static_int8_onnx_puts_qdq_around_the_cnn_convolutions(zoo_cnn, cnn_variants):
    variant = cnn_variants["onnx-static-int8"]
    ops = op_types(variant)
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    step = variant.lineage["steps"][-1]
    assert step["quantize"] == "static" and step["calibration_rows"] == 256
    assert 100 * (zoo_cnn.evaluate() - variant.evaluate()) <= ONNX_INT8_MAX_LOSS_PT


def test_onnx_must_be_the_last_step_and_needs_the_fp32_model(zoo_mlp):
    with pytest.raises(CompressionError, match="cannot follow an ONNX step"):
        build_variant(zoo_mlp, [OnnxConfig(), PruneConfig()], progress=False)
    with pytest.raises(CompressionError, match=r"int8 was applied before it.*OnnxConfig\(quantize="):
        build_variant(zoo_mlp, [QuantizeConfig(dtype="int8"), OnnxConfig()], progress=False)
