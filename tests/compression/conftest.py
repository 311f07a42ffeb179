"""Fixtures for the compression tests: zoo models (trained once, then cached) and variants built once
per session, so each method's checks, the artifact round trip and the report share them."""

from __future__ import annotations

import pytest

# Short training in tests (the benchmark trains longer). Accuracy bounds live in each test module.
FINE_TUNE_EPOCHS = 2
DISTILL_EPOCHS = 20


@pytest.fixture(scope="session")
def zoo_cnn():
    from workbench.models import load_zoo

    return load_zoo("cnn", progress=False)


@pytest.fixture(scope="session")
def zoo_transformer():
    from workbench.models import load_zoo

    return load_zoo("transformer", progress=False)


@pytest.fixture(scope="session")
def transformer_structured(zoo_transformer):
    """Structured pruning of half the zoo transformer's hidden units (width and feed-forward), fine-tuned."""
    from workbench.compression import PruneConfig, build_variant

    config = PruneConfig(method="structured", sparsity=0.5, fine_tune_epochs=FINE_TUNE_EPOCHS)
    return build_variant(zoo_transformer, [config], progress=False)


def mlp_pipelines() -> dict[str, list]:
    from workbench.compression import DistillConfig, OnnxConfig, PruneConfig, QuantizeConfig

    structured = PruneConfig(method="structured", sparsity=0.5, fine_tune_epochs=FINE_TUNE_EPOCHS)
    distill = DistillConfig(student_width=0.125, student_depth=1, epochs=DISTILL_EPOCHS)
    return {
        "unstructured": [PruneConfig(method="unstructured", sparsity=0.5, fine_tune_epochs=FINE_TUNE_EPOCHS)],
        "structured": [structured],
        "int8": [QuantizeConfig(dtype="int8")],
        "bf16": [QuantizeConfig(dtype="bf16")],
        "distill": [distill],
        "onnx": [OnnxConfig()],
        "onnx-int8": [OnnxConfig(quantize="dynamic")],
        "structured+int8": [structured, QuantizeConfig(dtype="int8")],
        "structured+onnx-int8": [structured, QuantizeConfig(dtype="int8", runtime="onnx")],
        "distill+int8": [distill, QuantizeConfig(dtype="int8")],
    }


@pytest.fixture(scope="session")
def mlp_variants(zoo_mlp):
    """Every method (and some compositions) applied to the zoo mlp, unmeasured. Pipelines that begin
    alike share their first steps (build_variants)."""
    from workbench.compression import build_variants

    pipelines = mlp_pipelines()
    return dict(zip(pipelines, build_variants(zoo_mlp, list(pipelines.values()), progress=False)))


@pytest.fixture(scope="session")
def cnn_variants(zoo_cnn):
    """The methods the issue asks of the cnn: static int8 (torch and ONNX Runtime), structured channels."""
    from workbench.compression import OnnxConfig, PruneConfig, QuantizeConfig, build_variants

    pipelines = {
        "static-int8": [QuantizeConfig(dtype="static-int8")],
        "onnx-static-int8": [OnnxConfig(quantize="static")],
        "structured": [PruneConfig(method="structured", sparsity=0.5, fine_tune_epochs=1)],
    }
    return dict(zip(pipelines, build_variants(zoo_cnn, list(pipelines.values()), progress=False)))
