from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from workbench.compression import QuantizeConfig, build_variant
from workbench.errors import CompressionError

# Most held-out accuracy (points; one digit of 450 = 0.22) each quantization may lose (measured: dynamic
# int8 mlp +0.2, static int8 cnn -0.2, bf16 mlp 0.0). The benchmark holds dynamic int8 to 0.5.
INT8_MAX_LOSS_PT = 1.0
STATIC_INT8_MAX_LOSS_PT = 1.5
BF16_MAX_LOSS_PT = 1.0


def loss_pt(original, variant) -> float:
    return 100 * (original.evaluate() - variant.evaluate())


def module_types(module: nn.Module) -> set[str]:
    return {type(m).__module__ + "." + type(m).__name__ for m in module.modules()}


def test_dynamic_int8_replaces_every_linear_and_keeps_accuracy(zoo_mlp, mlp_variants):
    variant = mlp_variants["int8"]
    quantized = [m for m in variant.module.modules() if type(m).__name__ == "Linear" and "quantized.dynamic" in type(m).__module__]
    assert len(quantized) == 3
    assert not any(type(m) is nn.Linear for m in variant.module.modules())
    assert variant.transforms == [{"op": "dynamic_int8", "modules": ["0", "2", "4"], "engine": torch.backends.quantized.engine}]
    assert loss_pt(zoo_mlp, variant) <= INT8_MAX_LOSS_PT
    assert all(type(m) is nn.Linear for m in zoo_mlp.module.modules() if isinstance(m, nn.Linear))  # original untouched


def test_dynamic_int8_runs_the_transformer_without_turning_the_fast_path_off_globally(zoo_transformer):
    variant = build_variant(zoo_transformer, [QuantizeConfig(dtype="int8")], progress=False)
    assert torch.backends.mha.get_fastpath_enabled()
    x = zoo_transformer.eval_data[0][:64]
    agree = (variant.predict(x).argmax(1) == zoo_transformer.predict(x).argmax(1)).mean()
    assert agree >= 0.95
    assert loss_pt(zoo_transformer, variant) <= INT8_MAX_LOSS_PT


def test_a_filter_limits_dynamic_int8_to_chosen_layers(zoo_mlp):
    variant = build_variant(zoo_mlp, [QuantizeConfig(dtype="int8", filter_fn=lambda m, n: n == "4")], progress=False)
    assert [type(m) is nn.Linear for m in variant.module if not isinstance(m, nn.ReLU)] == [True, True, False]


def test_dynamic_int8_refuses_convolutions_and_models_without_linears(zoo_cnn):
    with pytest.raises(CompressionError, match=r"dynamic int8 quantizes Linear, .*the filter selected '0' \(Conv2d\).*static-int8"):
        build_variant(zoo_cnn, [QuantizeConfig(dtype="int8", filter_fn=lambda m, n: isinstance(m, nn.Conv2d))], progress=False)
    from workbench.models import from_module

    conv_only = from_module(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten()), np.zeros((1, 1, 5, 5), np.float32))
    with pytest.raises(CompressionError, match="found nothing to quantize"):
        build_variant(conv_only, [QuantizeConfig(dtype="int8")], progress=False)


def test_static_int8_quantizes_the_cnn_convolutions_calibrated_on_training_rows(zoo_cnn, cnn_variants):
    variant = cnn_variants["static-int8"]
    kinds = module_types(variant.module)
    assert any("quantized" in k and "Conv" in k for k in kinds), kinds
    assert "torch.nn.modules.conv.Conv2d" not in kinds
    assert variant.transforms[0]["op"] == "static_int8"
    rows = np.load(variant.extra_files["calibration.npy"])
    assert rows.shape == (256, 1, 28, 28)
    test_rows = {r.tobytes() for r in zoo_cnn.eval_data[0]}
    assert not any(r.tobytes() in test_rows for r in rows)  # calibration never sees the test split
    assert loss_pt(zoo_cnn, variant) <= STATIC_INT8_MAX_LOSS_PT


def test_bf16_stores_bfloat16_weights_and_takes_float32_input(zoo_mlp, mlp_variants):
    variant = mlp_variants["bf16"]
    assert {p.dtype for p in variant.module.parameters()} == {torch.bfloat16}
    assert {t.dtype for t in variant.base_state.values()} == {torch.float32}  # the artifact keeps fp32 + the transform
    assert variant.predict(zoo_mlp.example).dtype == np.float32
    assert loss_pt(zoo_mlp, variant) <= BF16_MAX_LOSS_PT


def test_fp16_is_refused_on_cpu(zoo_mlp):
    if torch.cuda.is_available():
        pytest.skip("fp16 is offered where CUDA is available")
    with pytest.raises(CompressionError, match="fp16 is not offered on CPU.*bf16"):
        build_variant(zoo_mlp, [QuantizeConfig(dtype="fp16")], progress=False)


def test_quantizing_twice_is_refused(zoo_mlp):
    with pytest.raises(CompressionError, match="bf16 was applied before it"):
        build_variant(zoo_mlp, [QuantizeConfig(dtype="bf16"), QuantizeConfig(dtype="int8")], progress=False)
