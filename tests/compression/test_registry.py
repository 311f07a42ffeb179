"""A new method is a config plus a handler: nothing else changes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import torch

from workbench.compression import StepConfig, build_variant, config_from_dict, register_method
from workbench.compression.registry import CompressionData, handler_for
from workbench.errors import CompressionError, ConfigError


@dataclass(frozen=True, kw_only=True)
class ZeroBiasConfig(StepConfig):
    """A toy method for the test: set every bias to zero."""

    step: ClassVar[str] = "zero-bias"
    scale: float = 0.0

    def __post_init__(self) -> None:
        if self.scale < 0:
            raise ConfigError(f"scale must be >= 0, got {self.scale}")

    def label(self) -> str:
        return "zero-bias"


@register_method(ZeroBiasConfig)
def zero_bias(work, config, context):
    work.require_plain("zero-bias")
    with torch.no_grad():
        for name, p in work.base.named_parameters():
            if name.endswith("bias"):
                p.mul_(config.scale)
    work.record(config)
    return work


def test_a_registered_method_runs_in_the_pipeline_and_reads_from_dicts(zoo_mlp):
    variant = build_variant(zoo_mlp, [{"step": "zero-bias"}], progress=False)
    assert variant.variant == "zero-bias"
    assert all(float(p.detach().abs().sum()) == 0 for n, p in variant.module.named_parameters() if n.endswith("bias"))
    assert any(float(p.detach().abs().sum()) > 0 for n, p in zoo_mlp.module.named_parameters() if n.endswith("bias"))
    assert config_from_dict(ZeroBiasConfig(scale=0.5).to_dict()) == ZeroBiasConfig(scale=0.5)
    assert handler_for(ZeroBiasConfig()) is zero_bias


def test_an_unregistered_config_is_refused_with_the_known_ones():
    @dataclass(frozen=True, kw_only=True)
    class Unknown(StepConfig):
        step: ClassVar[str] = "unknown"

    with pytest.raises(CompressionError, match=r"unknown compression step .*Unknown\(\).*PruneConfig"):
        handler_for(Unknown())


def test_compression_data_samples_calibration_rows_from_training_data():
    x = np.arange(2000, dtype=np.float32).reshape(1000, 2)
    y = np.zeros(1000, dtype=np.int64)
    data = CompressionData.from_training(x, y, calibration_samples=100, seed=0)
    assert data.calibration.shape == (100, 2)
    assert len({tuple(r) for r in data.calibration}) == 100
    assert data.calibration[:, 0].min() < 200 and data.calibration[:, 0].max() > 1800  # spread, not the first rows
    again = CompressionData.from_training(x, y, calibration_samples=100, seed=0)
    np.testing.assert_array_equal(data.calibration, again.calibration)
    with pytest.raises(CompressionError, match="needs training data"):
        CompressionData(train=None, calibration=None).require_train("fine-tuning")
