from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from workbench.compression import (
    CompressionData,
    OnnxConfig,
    PruneConfig,
    QuantizeConfig,
    build_variant,
    build_variants,
    compress,
)
from workbench.errors import CompressionError, ConfigError
from workbench.models import ModelArtifact, from_module, model_from_artifact

# a worker process: open each artifact folder, run it, write the outputs and the accuracy
WORKER = """
import json, sys, numpy as np
from workbench.models import ModelArtifact, model_from_artifact
x = np.load(sys.argv[1])
result = {}
for folder in sys.argv[2:]:
    artifact = ModelArtifact.open(folder)
    np.save(folder + ".out.npy", artifact.build_runner(threads=1)(x))
    model = model_from_artifact(artifact)
    accuracy = model.evaluate() if model.eval_data is not None else None
    result[folder] = {"variant": artifact.variant, "kind": artifact.kind, "accuracy": accuracy}
print(json.dumps(result))
"""


def run_in_fresh_process(folders: list, x: np.ndarray, tmp_path) -> dict:
    np.save(tmp_path / "x.npy", x)
    out = subprocess.run([sys.executable, "-c", WORKER, str(tmp_path / "x.npy"), *map(str, folders)],
                         timeout=240, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_variant_saves_as_an_artifact_a_worker_rebuilds_exactly(zoo_mlp, zoo_cnn, mlp_variants, cnn_variants, tmp_path):
    variants = {f"mlp-{k}": v for k, v in mlp_variants.items()}
    folders, expected = [], {}
    for name, variant in variants.items():
        artifact = variant.save(tmp_path / name)
        folders.append(artifact.path)
    x = zoo_mlp.eval_data[0][:40]
    for name, variant in variants.items():
        expected[str(tmp_path / name)] = (variant.predict(x), variant.evaluate(), variant.variant)
    result = run_in_fresh_process(folders, x, tmp_path)
    for folder, (outputs, accuracy, label) in expected.items():
        np.testing.assert_array_equal(np.load(folder + ".out.npy"), outputs, err_msg=folder)
        assert result[folder]["accuracy"] == accuracy and result[folder]["variant"] == label
    kinds = {name: result[str(tmp_path / name)]["kind"] for name in variants}
    assert kinds["mlp-onnx-int8"] == "onnx" and kinds["mlp-structured+int8"] == "architecture"


def test_cnn_variants_round_trip_too(zoo_cnn, cnn_variants, tmp_path):
    folders = [v.save(tmp_path / k).path for k, v in cnn_variants.items()]
    x = zoo_cnn.eval_data[0][:16]
    result = run_in_fresh_process(folders, x, tmp_path)
    for folder, variant in zip(folders, cnn_variants.values()):
        np.testing.assert_array_equal(np.load(str(folder) + ".out.npy"), variant.predict(x))
        assert result[str(folder)]["accuracy"] == variant.evaluate()
    assert (folders[0] / "calibration.npy").is_file()  # static int8 carries its calibration rows


def test_compress_leaves_the_original_untouched_and_returns_a_measured_variant(zoo_mlp):
    state = {k: v.clone() for k, v in zoo_mlp.module.state_dict().items()}
    before = (zoo_mlp.variant, list(zoo_mlp.transforms), json.dumps(zoo_mlp.lineage))
    variant, report = compress(zoo_mlp, [PruneConfig(method="structured", sparsity=0.5, fine_tune_epochs=1),
                                         QuantizeConfig(dtype="int8")], progress=False, repeats=2)
    after = zoo_mlp.module.state_dict()
    assert all(torch.equal(state[k], after[k]) for k in state) and state.keys() == after.keys()
    assert (zoo_mlp.variant, list(zoo_mlp.transforms), json.dumps(zoo_mlp.lineage)) == before
    assert variant.variant == "prune-structured-0.5+int8"
    assert [s["step"] for s in variant.lineage["steps"]] == ["prune", "quantize"]
    assert variant.lineage["base"] == "mlp" and variant.lineage["parent"] == "fp32"
    assert report.original.variant == "fp32" and report.variant.variant == variant.variant
    assert report.variant.parameters < report.original.parameters
    assert report.size_ratio > 3  # half the units, then int8 weights
    assert variant.metrics["accuracy"] == report.variant.accuracy and "speedup_b1" in variant.metrics


def test_compressing_a_saved_variant_goes_on_from_its_fp32_weights(zoo_mlp, mlp_variants, tmp_path):
    loaded = model_from_artifact(mlp_variants["structured"].save(tmp_path / "s"))
    variant = build_variant(loaded, [QuantizeConfig(dtype="int8")], progress=False)
    assert variant.variant == "prune-structured-0.5+int8"
    assert len(variant.lineage["steps"]) == 2
    direct = mlp_variants["structured+int8"]
    np.testing.assert_array_equal(variant.predict(zoo_mlp.example), direct.predict(zoo_mlp.example))
    # and a variant that already has a transform keeps it when it is saved again
    again = model_from_artifact(variant.save(tmp_path / "si")).save(tmp_path / "si2")
    assert again.transforms == variant.transforms


def test_pipelines_that_begin_alike_share_work_and_give_what_each_gives_alone(zoo_cnn):
    static = QuantizeConfig(dtype="static-int8", calibration_samples=32)
    structured = PruneConfig(method="structured", sparsity=0.5, fine_tune_epochs=0)
    shared = build_variants(zoo_cnn, [[structured], [structured, static], [structured, OnnxConfig()]], progress=False)
    alone = build_variant(zoo_cnn, [structured, static], progress=False)
    x = zoo_cnn.example
    np.testing.assert_array_equal(shared[1].predict(x), alone.predict(x))
    assert len({v.extra_files.get("calibration.npy") for v in shared}) == 2  # own files: none, and one copy
    assert "quantized" not in repr(shared[0].module)  # a later branch did not change an earlier one
    assert shared[2].artifact.kind == "onnx"


def test_progress_callback_sees_every_stage(zoo_mlp):
    seen: list[tuple[str, int, int]] = []
    compress(zoo_mlp, [PruneConfig(method="structured", fine_tune_epochs=1), QuantizeConfig()], progress=False,
             repeats=1, callback=lambda stage, done, total: seen.append((stage, done, total)))
    stages = [s for s, _, _ in seen]
    assert stages[0] == "steps" and "fine-tune" in stages and stages[-1] == "measure"
    assert ("steps", 2, 2) in seen and ("measure", 1, 1) in seen


def test_own_training_data_is_used_and_checked(zoo_mlp):
    x, y = zoo_mlp.eval_data
    variant = build_variant(zoo_mlp, [PruneConfig(method="structured", fine_tune_epochs=1)], data=(x[:64], y[:64]),
                            progress=False)
    assert variant.source["arch"]["hidden"] == [512, 512]
    with pytest.raises(ConfigError, match="must have shape"):
        build_variant(zoo_mlp, [PruneConfig()], data=(x[:, :10], y), progress=False)
    with pytest.raises(ConfigError, match="as many labels as rows"):
        build_variant(zoo_mlp, [PruneConfig()], data=(x[:5], y[:4]), progress=False)
    no_calibration = CompressionData(train=(x, y), calibration=None)
    with pytest.raises(CompressionError, match="static int8 needs calibration data"):
        build_variant(zoo_mlp, [QuantizeConfig(dtype="static-int8")], data=no_calibration, progress=False)


def test_unknown_methods_and_empty_pipelines_are_refused(zoo_mlp):
    with pytest.raises(CompressionError, match="unknown compression step 'int8'.*QuantizeConfig"):
        build_variant(zoo_mlp, ["int8"], progress=False)
    with pytest.raises(CompressionError, match="unknown compression step"):
        build_variant(zoo_mlp, [object()], progress=False)
    with pytest.raises(ConfigError, match="at least one step"):
        build_variant(zoo_mlp, [], progress=False)
    with pytest.raises(ConfigError, match="unknown compression step 'sparsify'"):
        build_variant(zoo_mlp, [{"step": "sparsify"}], progress=False)


def test_steps_can_be_given_as_dicts(zoo_mlp):
    variant = build_variant(zoo_mlp, {"step": "quantize", "dtype": "bf16"}, progress=False)
    assert variant.variant == "bf16" and variant.transforms == [{"op": "bf16"}]


class UserNet(nn.Module):
    """A model outside the zoo, not nn.Sequential."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(784, 64)
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.body(x)))


def test_a_users_own_module_gets_the_methods_that_keep_its_architecture(zoo_mlp, tmp_path):
    torch.manual_seed(0)
    user = from_module(UserNet(), zoo_mlp.example, name="user", eval_data=zoo_mlp.eval_data)
    data = (zoo_mlp.eval_data[0][:128], zoo_mlp.eval_data[1][:128])
    pipelines = {
        "unstructured": [PruneConfig(sparsity=0.5, fine_tune_epochs=0)],
        "int8": [QuantizeConfig(dtype="int8")],
        "bf16": [QuantizeConfig(dtype="bf16")],
        "onnx-int8": [OnnxConfig(quantize="dynamic")],
        "structured": [PruneConfig(method="structured", sparsity=0.5, fine_tune_epochs=0)],
    }
    folders, variants = [], {}
    for name, steps in pipelines.items():
        variants[name] = build_variant(user, steps, data=data, progress=False)
        folders.append(variants[name].save(tmp_path / name).path)
    assert variants["structured"].module.body.out_features == 32
    assert float((variants["unstructured"].module.body.weight == 0).float().mean()) == pytest.approx(0.5, abs=0.01)
    kinds = {name: ModelArtifact.open(tmp_path / name).kind for name in pipelines}
    assert kinds == {"unstructured": "export", "int8": "torchscript", "bf16": "torchscript", "onnx-int8": "onnx",
                     "structured": "export"}
    x = zoo_mlp.eval_data[0][:8]
    run_in_fresh_process(folders, x, tmp_path)
    for folder, variant in zip(folders, variants.values()):
        np.testing.assert_allclose(np.load(str(folder) + ".out.npy"), variant.predict(x), rtol=1e-5, atol=1e-5)


def test_models_compression_cannot_work_on_are_refused(zoo_mlp, mlp_variants):
    with pytest.raises(CompressionError, match="is a onnx model"):
        build_variant(mlp_variants["onnx"], [QuantizeConfig()], progress=False)
    user = from_module(UserNet(), zoo_mlp.example)  # no data set of its own
    with pytest.raises(CompressionError, match="needs training data.*pass data="):
        build_variant(user, [PruneConfig(method="structured")], progress=False)
