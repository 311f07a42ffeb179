from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from workbench.compression import PruneConfig, build_variant
from workbench.errors import CompressionError

# Accuracy on the 450 held-out digits (one sample = 0.22 points) may drop at most this much after
# pruning half the weights / half the hidden units and 1-2 fine-tune epochs (measured: -0.4 to -0.9).
PRUNE_MAX_LOSS_PT = 2.5


def linear_weights(module: nn.Module) -> list[torch.Tensor]:
    return [m.weight.detach() for m in module.modules() if isinstance(m, nn.Linear)]


def test_unstructured_reaches_the_sparsity_in_every_layer_and_keeps_shapes(zoo_mlp, mlp_variants):
    variant = mlp_variants["unstructured"]
    for before, after in zip(linear_weights(zoo_mlp.module), linear_weights(variant.module)):
        assert after.shape == before.shape
        assert float((after == 0).float().mean()) == pytest.approx(0.5, abs=0.002)
    assert variant.num_parameters == zoo_mlp.num_parameters
    step = variant.lineage["steps"][-1]
    assert step["reached_sparsity"] == pytest.approx(0.5, abs=0.002)
    assert "no speed-up" in step["note"]


def test_unstructured_fine_tuning_keeps_the_pruned_weights_at_zero_and_the_accuracy(zoo_mlp, mlp_variants):
    variant = mlp_variants["unstructured"]
    # fine-tuning changed the surviving weights (so it ran) but not the zeros
    survivors = [(a != 0) for a in linear_weights(variant.module)]
    moved = any(
        not torch.allclose(a[m], b[m]) for a, b, m in zip(linear_weights(variant.module), linear_weights(zoo_mlp.module), survivors)
    )
    assert moved
    assert 100 * (zoo_mlp.evaluate() - variant.evaluate()) <= PRUNE_MAX_LOSS_PT


def test_structured_halves_the_hidden_units_and_rebuilds_the_smaller_mlp(zoo_mlp, mlp_variants):
    variant = mlp_variants["structured"]
    assert variant.source["arch"]["hidden"] == [512, 512]
    assert [m.out_features for m in variant.module.modules() if isinstance(m, nn.Linear)] == [512, 512, 10]
    assert variant.num_parameters < 0.45 * zoo_mlp.num_parameters
    assert variant.variant == "prune-structured-0.5"
    assert 100 * (zoo_mlp.evaluate() - variant.evaluate()) <= PRUNE_MAX_LOSS_PT
    step = variant.lineage["steps"][-1]
    assert step["arch_after"]["hidden"] == [512, 512] and step["fine_tune_epochs"] == 2


def test_structured_removes_cnn_channels(zoo_cnn, cnn_variants):
    variant = cnn_variants["structured"]
    assert variant.source["arch"]["channels"] == [16, 32] and variant.source["arch"]["hidden"] == 64
    convs = [m for m in variant.module.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 32]
    assert 100 * (zoo_cnn.evaluate() - variant.evaluate()) <= PRUNE_MAX_LOSS_PT


# The zoo transformer (d_model 256, ff 1024) loses more when its width is halved too: measured -0.9 pt after
# 3 fine-tune epochs (from 97.6 %); the tests fine-tune for 2. The bound says fine-tuning recovers most.
TRANSFORMER_PRUNE_MAX_LOSS_PT = 3.0


def test_structured_halves_the_transformer_width_and_feed_forward(zoo_transformer, transformer_structured):
    variant = transformer_structured
    arch, before = variant.source["arch"], zoo_transformer.source["arch"]
    assert (arch["d_model"], arch["ff"]) == (before["d_model"] // 2, before["ff"] // 2)
    assert (arch["heads"], arch["layers"]) == (before["heads"], before["layers"])
    d, ff, heads = arch["d_model"], arch["ff"], arch["heads"]
    module = variant.module
    assert module[0].proj.out_features == d and module[0].position.shape == (1, 28, d)
    encoder = module[1]
    assert type(encoder) is nn.TransformerEncoder
    for layer in encoder.layers:
        attn = layer.self_attn
        assert (attn.embed_dim, attn.num_heads, attn.head_dim) == (d, heads, d // heads)
        assert attn.in_proj_weight.shape == (3 * d, d) and attn.out_proj.weight.shape == (d, d)
        assert layer.linear1.weight.shape == (ff, d) and layer.linear2.weight.shape == (d, ff)
        assert layer.norm1.normalized_shape == (d,) and layer.norm2.normalized_shape == (d,)
    assert module[3].normalized_shape == (d,) and module[4].weight.shape == (10, d)
    assert variant.num_parameters < 0.35 * zoo_transformer.num_parameters
    x = zoo_transformer.eval_data[0][:5]
    assert variant.predict(x).shape == zoo_transformer.predict(x).shape == (5, 10)
    step = variant.lineage["steps"][-1]
    assert step["widths_after"] == {"0.proj": d, "1.layers.0.linear1": ff, "1.layers.1.linear1": ff}


def test_pruned_transformer_fine_tunes_back_within_the_bound(zoo_transformer, transformer_structured):
    unrecovered = build_variant(zoo_transformer, [PruneConfig(method="structured", sparsity=0.5, fine_tune_epochs=0)],
                                progress=False)
    tuned = transformer_structured.evaluate()
    assert tuned > unrecovered.evaluate() + 0.2  # halving the width costs most of the accuracy until fine-tuned
    assert 100 * (zoo_transformer.evaluate() - tuned) <= TRANSFORMER_PRUNE_MAX_LOSS_PT


def test_pruned_transformer_artifact_rebuilds_and_serves_the_same_outputs(zoo_transformer, transformer_structured,
                                                                            tmp_path):
    from workbench.models import ModelArtifact, model_from_artifact

    artifact = ModelArtifact.open(transformer_structured.save(tmp_path / "t").path)
    assert artifact.kind == "architecture" and artifact.manifest["source"]["arch"] == transformer_structured.source["arch"]
    x = zoo_transformer.eval_data[0][:33]
    expected = transformer_structured.predict(x)
    np.testing.assert_array_equal(artifact.build_runner(threads=1)(x), expected)
    np.testing.assert_array_equal(artifact.build_runner(threads=1)(x[:1]), transformer_structured.predict(x[:1]))
    assert model_from_artifact(artifact).evaluate() == transformer_structured.evaluate()


@pytest.mark.parametrize(
    ("chosen", "d_model_ratio", "ff_ratio"),
    [(lambda m, n: n == "0.proj", 0.5, 1), (lambda m, n: n.endswith("linear1"), 1, 0.5)],
    ids=["width-only", "feed-forward-only"],
)
def test_a_filter_narrows_the_transformer_width_or_feed_forward_alone(zoo_transformer, chosen, d_model_ratio,
                                                                      ff_ratio):
    config = PruneConfig(method="structured", sparsity=0.5, fine_tune_epochs=0, filter_fn=chosen)
    variant = build_variant(zoo_transformer, [config], progress=False)
    before = zoo_transformer.source["arch"]
    assert (variant.source["arch"]["d_model"], variant.source["arch"]["ff"]) == (
        int(before["d_model"] * d_model_ratio), int(before["ff"] * ff_ratio))
    assert variant.predict(zoo_transformer.example).shape == (len(zoo_transformer.example), 10)


def test_transformer_width_stays_a_multiple_of_the_heads(zoo_transformer):
    variant = build_variant(zoo_transformer, [PruneConfig(method="structured", sparsity=0.3, fine_tune_epochs=0)],
                            progress=False)
    assert variant.source["arch"]["d_model"] % variant.source["arch"]["heads"] == 0
    assert variant.source["arch"]["d_model"] < zoo_transformer.source["arch"]["d_model"]


def test_a_filter_chooses_the_layers(zoo_mlp):
    only_first = PruneConfig(method="structured", sparsity=0.5, fine_tune_epochs=0, filter_fn=lambda m, n: n == "0")
    variant = build_variant(zoo_mlp, [only_first], progress=False)
    assert variant.source["arch"]["hidden"] == [512, 1024]
    unstructured = PruneConfig(sparsity=0.5, fine_tune_epochs=0, filter_fn=lambda m, n: n == "2")
    weights = linear_weights(build_variant(zoo_mlp, [unstructured], progress=False).module)
    assert [float((w == 0).float().mean()) > 0.4 for w in weights] == [False, True, False]


def test_sparsity_zero_changes_nothing(zoo_mlp):
    variant = build_variant(zoo_mlp, [PruneConfig(method="structured", sparsity=0.0)], progress=False)
    np.testing.assert_array_equal(variant.predict(zoo_mlp.example), zoo_mlp.predict(zoo_mlp.example))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (PruneConfig(method="structured", filter_fn=lambda m, n: n == "4"), "never the output layer"),
        (PruneConfig(method="structured", filter_fn=lambda m, n: isinstance(m, nn.ReLU)), r"selected '1' \(ReLU\)"),
        (PruneConfig(method="unstructured", filter_fn=lambda m, n: isinstance(m, nn.ReLU)), "has none"),
        (PruneConfig(method="structured", filter_fn=lambda m, n: False), "selected none"),
    ],
)
def test_unsupported_layers_are_refused_clearly(zoo_mlp, config, message):
    with pytest.raises(CompressionError, match=message):
        build_variant(zoo_mlp, [config], progress=False)


def test_transformer_refuses_other_layers_and_uneven_feed_forward(zoo_transformer):
    attention = PruneConfig(method="structured", fine_tune_epochs=0, filter_fn=lambda m, n: n.endswith("self_attn"))
    with pytest.raises(CompressionError, match="'0.proj' for the model width"):
        build_variant(zoo_transformer, [attention], progress=False)
    config = PruneConfig(method="structured", fine_tune_epochs=0, filter_fn=lambda m, n: n == "1.layers.0.linear1")
    with pytest.raises(CompressionError, match="one feed-forward width for all layers"):
        build_variant(zoo_transformer, [config], progress=False)
