from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.compression.transforms import quantize_dynamic_int8
from workbench.errors import ModelLoadError
from workbench.models.transforms import TransformContext, apply_transforms


def test_transforms_are_registered_by_importing_the_models_layer_only(zoo_mlp, tmp_path):
    """A worker only calls apply_transforms; the compression transforms register themselves."""
    import copy

    context = TransformContext(folder=tmp_path, example=zoo_mlp.example)
    module = apply_transforms(copy.deepcopy(zoo_mlp.module), [{"op": "dynamic_int8", "modules": ["0"]}], context)
    assert "quantized" in type(module[0]).__module__ and type(module[2]) is torch.nn.Linear


def test_missing_pieces_fail_loading_with_clear_errors(zoo_mlp, tmp_path):
    import copy

    context = TransformContext(folder=tmp_path, example=zoo_mlp.example)
    with pytest.raises(ModelLoadError, match=r"dynamic_int8: the model has no layers \['9'\]"):
        apply_transforms(copy.deepcopy(zoo_mlp.module), [{"op": "dynamic_int8", "modules": ["9"]}], context)
    with pytest.raises(ModelLoadError, match="calibration file calib.npy is missing"):
        apply_transforms(copy.deepcopy(zoo_mlp.module), [{"op": "static_int8", "calibration": "calib.npy"}], context)
    with pytest.raises(ModelLoadError, match="transform 'sparsify', which this workbench does not know"):
        apply_transforms(copy.deepcopy(zoo_mlp.module), [{"op": "sparsify"}], context)
    with pytest.raises(ModelLoadError, match="engine"):
        apply_transforms(copy.deepcopy(zoo_mlp.module), [{"op": "dynamic_int8", "modules": ["0"], "engine": "tpu"}],
                         context)


def test_static_int8_rebuilds_identically_from_its_calibration_rows(zoo_cnn, tmp_path):
    import copy

    np.save(tmp_path / "calibration.npy", zoo_cnn.eval_data[0][:64])
    context = TransformContext(folder=tmp_path, example=zoo_cnn.example)
    step = [{"op": "static_int8", "calibration": "calibration.npy", "backend": "x86"}]
    a = apply_transforms(copy.deepcopy(zoo_cnn.module), step, context)
    b = apply_transforms(copy.deepcopy(zoo_cnn.module), step, context)
    x = torch.from_numpy(zoo_cnn.example)
    with torch.inference_mode():
        assert torch.equal(a(x), b(x))


def test_quantized_transformer_layers_skip_only_their_own_fast_path(zoo_transformer):
    import copy

    quantized = quantize_dynamic_int8(copy.deepcopy(zoo_transformer.module), ["1.layers.0.linear1", "1.layers.0.linear2"])
    layers = list(quantized[1].layers)
    assert len(layers[0]._forward_pre_hooks) == 1 and len(layers[1]._forward_pre_hooks) == 0
    assert torch.backends.mha.get_fastpath_enabled()
    with torch.inference_mode():
        out = quantized(torch.from_numpy(zoo_transformer.example))
    assert out.shape == (len(zoo_transformer.example), 10)
