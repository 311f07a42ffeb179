from __future__ import annotations

import dataclasses
import json

import pytest

from workbench.compression.config import (
    CONFIG_TYPES,
    DistillConfig,
    OnnxConfig,
    PruneConfig,
    QuantizeConfig,
    config_from_dict,
)
from workbench.errors import ConfigError


def only_linear(module, name):  # a module-level filter: serializable by its import path
    return type(module).__name__ == "Linear"


EXAMPLES = [
    PruneConfig(),
    PruneConfig(method="structured", sparsity=0.25, fine_tune_epochs=0, lr=5e-4),
    PruneConfig(method="unstructured", sparsity=0.9, filter_fn=only_linear),
    QuantizeConfig(),
    QuantizeConfig(dtype="static-int8", calibration_samples=64),
    QuantizeConfig(dtype="int8", runtime="onnx"),
    QuantizeConfig(dtype="bf16"),
    DistillConfig(student_width=0.5, student_depth=1, temperature=2.0, alpha=0.5, epochs=3),
    DistillConfig(student_factory="workbench.models.architectures:mlp", student_kwargs={"hidden": [32]}),
    OnnxConfig(),
    OnnxConfig(quantize="static", per_channel=True, calibration_samples=32),
]


@pytest.mark.parametrize("config", EXAMPLES, ids=lambda c: f"{type(c).__name__}-{c.label()}")
def test_every_config_round_trips_through_a_json_dict(config):
    data = json.loads(json.dumps(config.to_dict()))
    assert data["step"] == config.step
    again = config_from_dict(data)
    assert type(again) is type(config)
    for f in dataclasses.fields(config):
        a, b = getattr(again, f.name), getattr(config, f.name)
        assert a == b or (callable(b) and a == f"{b.__module__}:{b.__qualname__}"), f.name
    assert again.to_dict() == config.to_dict()


def test_every_registered_config_type_is_covered_here():
    assert {type(c) for c in EXAMPLES} == set(CONFIG_TYPES.values()) - _test_only_types()


def _test_only_types() -> set:
    return {t for t in CONFIG_TYPES.values() if not t.__module__.startswith("workbench.")}


def test_configs_are_frozen_keyword_only_and_readable():
    config = PruneConfig(method="structured", sparsity=0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.sparsity = 0.1  # type: ignore[misc]
    with pytest.raises(TypeError):
        PruneConfig("structured")  # type: ignore[misc]
    assert "method='structured'" in repr(config) and "sparsity=0.5" in repr(config)


def test_labels_name_the_variant():
    assert PruneConfig(method="structured", sparsity=0.5).label() == "prune-structured-0.5"
    assert QuantizeConfig(dtype="static-int8").label() == "static-int8"
    assert QuantizeConfig(dtype="int8", runtime="onnx").label() == "onnx-int8"
    assert DistillConfig(student_width=0.25, student_depth=1).label() == "distill-w0.25-d1"
    assert OnnxConfig(quantize="static").label() == "onnx-static-int8"


def test_default_fine_tune_epochs_depend_on_the_method():
    assert PruneConfig(method="structured").epochs == 3
    assert PruneConfig(method="unstructured").epochs == 2
    assert PruneConfig(method="structured", fine_tune_epochs=0).epochs == 0


@pytest.mark.parametrize("sparsity", [-0.1, 1.0, 1.5, "half", True])
def test_sparsity_outside_zero_one_is_refused(sparsity):
    with pytest.raises(ConfigError, match=r"sparsity must be in \[0, 1\)"):
        PruneConfig(sparsity=sparsity)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: PruneConfig(method="random"), "PruneConfig.method must be one of 'unstructured', 'structured'"),
        (lambda: PruneConfig(fine_tune_epochs=-1), "fine_tune_epochs must be an integer >= 0"),
        (lambda: QuantizeConfig(dtype="int4"), "QuantizeConfig.dtype must be one of"),
        (lambda: QuantizeConfig(runtime="tensorrt"), "QuantizeConfig.runtime must be one of"),
        (lambda: QuantizeConfig(dtype="bf16", runtime="onnx"), "does int8 and static-int8"),
        (lambda: QuantizeConfig(dtype="bf16", filter_fn=only_linear), "filter_fn selects layers for dtype='int8'"),
        (lambda: QuantizeConfig(filter_fn=42), "filter_fn must be a callable"),
        (lambda: DistillConfig(student_width=2), r"student_width must be a fraction in \(0, 1\]"),
        (lambda: DistillConfig(student_depth=0), "student_depth must be an integer >= 1"),
        (lambda: DistillConfig(alpha=1.5), r"alpha .* must be in \[0, 1\]"),
        (lambda: DistillConfig(temperature=0), "temperature must be a number > 0"),
        (lambda: DistillConfig(student_factory="nocolon"), "student_factory must look like"),
        (lambda: OnnxConfig(quantize="int4"), "OnnxConfig.quantize must be one of"),
    ],
)
def test_bad_values_say_what_is_allowed(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_bad_dicts_are_clear():
    with pytest.raises(ConfigError, match="unknown compression step 'sparsify'"):
        config_from_dict({"step": "sparsify"})
    with pytest.raises(ConfigError, match="needs a 'step' key"):
        config_from_dict({"method": "structured"})
    with pytest.raises(ConfigError, match=r"PruneConfig has no option \['amount'\]"):
        config_from_dict({"step": "prune", "amount": 0.5})


def test_a_lambda_filter_cannot_be_written_to_a_dict():
    with pytest.raises(ConfigError, match="not a module-level function"):
        PruneConfig(filter_fn=lambda m, n: True).to_dict()
