from __future__ import annotations

import json

import numpy as np
import pytest

from workbench.errors import ConfigError, ModelLoadError
from workbench.models import ModelArtifact, model_from_artifact


def test_zoo_artifact_rebuilds_exactly_and_carries_its_evaluation(zoo_mlp):
    artifact = ModelArtifact.open(zoo_mlp.artifact.path)
    assert artifact.kind == "architecture" and artifact.name == "mlp"
    x = zoo_mlp.example
    np.testing.assert_array_equal(artifact.build_runner()(x), zoo_mlp.predict(x))
    rebuilt = model_from_artifact(artifact)
    assert rebuilt.evaluate() == pytest.approx(zoo_mlp.evaluate())


def test_stages_compose_to_the_whole_model(zoo_mlp):
    artifact = zoo_mlp.artifact
    x = zoo_mlp.example
    for stages in (2, 3):
        out = x
        for i in range(stages):
            out = artifact.build_runner(stage=i, stages=stages)(out)
        np.testing.assert_allclose(out, zoo_mlp.predict(x), rtol=1e-5, atol=1e-5)
    bounds = artifact.stage_bounds(2, split=[2])
    assert bounds == [(0, 2), (2, 5)]


def test_bad_stage_requests_are_clear(zoo_mlp):
    with pytest.raises(ConfigError, match="top-level layers"):
        zoo_mlp.artifact.stage_bounds(50)
    with pytest.raises(ConfigError, match="increasing child indices"):
        zoo_mlp.artifact.stage_bounds(2, split=[0])
    with pytest.raises(ConfigError, match="stage must be"):
        zoo_mlp.artifact.build_runner(stage=3, stages=2)


def test_corrupt_or_foreign_artifacts_are_refused(zoo_mlp, tmp_path):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(zoo_mlp.artifact.path, folder)
    with (folder / "weights.pt").open("r+b") as f:
        f.seek(100)
        f.write(b"garbage")
    with pytest.raises(ModelLoadError, match="checksum"):
        ModelArtifact.open(folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="no manifest.json"):
        ModelArtifact.open(tmp_path / "empty")
    manifest = json.loads((zoo_mlp.artifact.path / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "version": 99}))
    with pytest.raises(ModelLoadError, match="version"):
        ModelArtifact.open(folder)
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        ModelArtifact.open(folder)
