from __future__ import annotations

import pytest
import torch
from torch import nn

from workbench.compression.families import arch_of, prunable_layers, rebuild_check, student_arch
from workbench.errors import CompressionError
from workbench.models.architectures import build_architecture


def test_prunable_layers_leave_out_the_output_layer():
    assert sorted(prunable_layers("mlp", build_architecture("mlp", {"hidden": [8, 8]}))) == ["0", "2"]
    assert sorted(prunable_layers("cnn", build_architecture("cnn", {}))) == ["0", "2", "6"]
    assert sorted(prunable_layers("transformer", build_architecture("transformer", {}))) == [
        "0.proj", "1.layers.0.linear1", "1.layers.1.linear1"]
    custom = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    assert sorted(prunable_layers(None, custom)) == ["0"]


def test_arch_is_read_back_from_the_shapes():
    module = build_architecture("mlp", {"in_features": 20, "hidden": [12, 6]})
    assert arch_of("mlp", module, {"in_features": 20, "hidden": [99]}) == {"in_features": 20, "hidden": [12, 6]}
    cnn = build_architecture("cnn", {"channels": [4, 6], "hidden": 10})
    assert arch_of("cnn", cnn, {}) == {"channels": [4, 6], "hidden": 10}
    rebuild_check("cnn", {"channels": [4, 6], "hidden": 10}, cnn)
    with pytest.raises(CompressionError, match="no longer matches a cnn architecture"):
        rebuild_check("cnn", {"channels": [4, 7], "hidden": 10}, cnn)


def test_student_shapes():
    assert student_arch("mlp", {"hidden": [512, 512]}, 0.25, None) == {"hidden": [128, 128]}
    assert student_arch("mlp", {"hidden": [512, 512]}, 0.5, 3) == {"hidden": [256, 256, 256]}
    assert student_arch("mlp", {"hidden": [512, 512]}, 0.125, 1) == {"hidden": [64]}
    assert student_arch("cnn", {"channels": [32, 64], "hidden": 128}, 0.5, None) == {"channels": [16, 32], "hidden": 64}
    arch = student_arch("transformer", {"d_model": 64, "heads": 4, "ff": 128, "layers": 2}, 0.3, 1)
    assert arch["d_model"] % 4 == 0 and arch["layers"] == 1
    torch.manual_seed(0)
    build_architecture("transformer", arch)  # heads divide the narrower width
    with pytest.raises(CompressionError, match="cnn family always has 2 convolutions"):
        student_arch("cnn", {}, 0.5, 3)
    with pytest.raises(CompressionError, match="does not know the architecture family 'rnn'"):
        student_arch("rnn", {}, 0.5, None)
