"""What the Model section shows about a model."""

from __future__ import annotations

import importlib.util

from workbench.ui.facts import describe_signature, model_facts, ray_available


def test_facts_of_a_zoo_model(zoo_mlp):
    facts = model_facts(zoo_mlp)
    assert facts["model_name"] == "mlp" and facts["variant"] == "fp32"
    assert facts["signature"] == describe_signature(zoo_mlp.signature) == "input float32[N, 784] → logits float32[N, 10]"
    assert facts["parameters"] == sum(p.numel() for p in zoo_mlp.module.parameters())
    assert facts["size_mb"] == facts["parameters"] * 4 / 1e6  # fp32 weights, no buffers
    assert facts["accuracy"] == zoo_mlp.metrics["accuracy"] > 0.9


def test_ray_is_offered_only_when_installed():
    installed = importlib.util.find_spec("ray") is not None and importlib.util.find_spec("workbench.backends.ray") is not None
    assert ray_available() is installed
