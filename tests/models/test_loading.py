from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from workbench.errors import ConfigError, ModelLoadError
from workbench.models import load_file, load_model
from workbench.models.architectures import mlp

FACTORY = "workbench.models.architectures:mlp"
KWARGS = {"in_features": 12, "hidden": [16], "classes": 3}


def small_module() -> nn.Module:
    torch.manual_seed(1)
    return mlp(**KWARGS).eval()


def example() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((4, 12)).astype(np.float32)


def rebuild_in_fresh_process(folder, x: np.ndarray, tmp_path) -> np.ndarray:
    """Open the artifact in a new interpreter and run it: what a serving worker does."""
    np.save(tmp_path / "x.npy", x)
    code = (
        "import sys, numpy as np\n"
        "from workbench.models import ModelArtifact\n"
        "run = ModelArtifact.open(sys.argv[1]).build_runner()\n"
        "np.save(sys.argv[2], run(np.load(sys.argv[3])))\n"
    )
    subprocess.run([sys.executable, "-c", code, str(folder), str(tmp_path / "y.npy"), str(tmp_path / "x.npy")],
                   check=True, timeout=120)
    return np.load(tmp_path / "y.npy")


def test_module_with_example_learns_its_signature_and_saves_as_export_program(tmp_path):
    module, x = small_module(), example()
    model = load_model(module, example=x, name="tiny")
    assert model.signature.input.shape == (12,) and model.signature.output.shape == (3,)
    artifact = model.save(tmp_path / "a")
    assert artifact.kind == "export"
    expected = module(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(rebuild_in_fresh_process(artifact.path, x, tmp_path), expected, rtol=1e-5, atol=1e-6)


def test_export_program_file_round_trips(tmp_path):
    module, x = small_module(), example()
    program = torch.export.export(module, (torch.from_numpy(x).clone(),),
                                  dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},))
    torch.export.save(program, tmp_path / "tiny.pt2")
    model = load_file(tmp_path / "tiny.pt2")
    assert model.name == "tiny"
    artifact = model.save(tmp_path / "a")
    expected = module(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rebuild_in_fresh_process(artifact.path, x, tmp_path), expected, rtol=1e-5, atol=1e-6)


def test_torchscript_file_round_trips(tmp_path):
    module, x = small_module(), example()
    torch.jit.save(torch.jit.trace(module, torch.from_numpy(x)), tmp_path / "tiny.ts")
    model = load_file(tmp_path / "tiny.ts", example=x)
    assert model.artifact.kind == "torchscript"
    expected = module(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(rebuild_in_fresh_process(model.artifact.path, x, tmp_path), expected, rtol=1e-5, atol=1e-6)


def test_state_dict_with_factory_round_trips_and_can_be_cut(tmp_path):
    module, x = small_module(), example()
    torch.save(module.state_dict(), tmp_path / "weights.pt")
    model = load_file(tmp_path / "weights.pt", factory=FACTORY, factory_kwargs=KWARGS, example=x)
    artifact = model.save(tmp_path / "a")
    assert artifact.kind == "factory"
    assert len(artifact.stage_bounds(2)) == 2
    expected = module(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(rebuild_in_fresh_process(artifact.path, x, tmp_path), expected, rtol=1e-5, atol=1e-6)


def test_pickled_module_is_refused_unless_trusted(tmp_path):
    module, x = small_module(), example()
    torch.save(module, tmp_path / "whole.pt")
    with pytest.raises(ModelLoadError, match="trust_pickle=True"):
        load_file(tmp_path / "whole.pt", example=x)
    model = load_file(tmp_path / "whole.pt", example=x, trust_pickle=True)
    np.testing.assert_allclose(model.predict(x), module(torch.from_numpy(x)).detach().numpy(), rtol=1e-5)


def test_pickle_carrying_code_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"w": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ModelLoadError, match="refused"):
        load_file(tmp_path / "evil.pt", factory=FACTORY, factory_kwargs=KWARGS, example=example())
    assert not marker.exists()


def test_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_file(tmp_path / "nope.pt2")


def test_unknown_format(tmp_path):
    (tmp_path / "model.txt").write_text("hello")
    with pytest.raises(ModelLoadError, match="unknown model file format"):
        load_file(tmp_path / "model.txt")


def test_state_dict_that_does_not_fit_the_factory(tmp_path):
    torch.save(small_module().state_dict(), tmp_path / "weights.pt")
    with pytest.raises(ModelLoadError, match="does not fit"):
        load_file(tmp_path / "weights.pt", factory=FACTORY, factory_kwargs={**KWARGS, "hidden": [17]}, example=example())


def test_state_dict_without_factory_says_what_is_needed(tmp_path):
    torch.save(small_module().state_dict(), tmp_path / "weights.pt")
    with pytest.raises(ConfigError, match="factory="):
        load_file(tmp_path / "weights.pt")


def test_bad_factory_spec(tmp_path):
    torch.save(small_module().state_dict(), tmp_path / "weights.pt")
    with pytest.raises(ConfigError, match="package.module:function"):
        load_file(tmp_path / "weights.pt", factory="not-a-spec", example=example())
    with pytest.raises(ModelLoadError, match="cannot import"):
        load_file(tmp_path / "weights.pt", factory="no_such_pkg.mod:fn", example=example())


def test_example_that_does_not_match_the_model():
    with pytest.raises(ConfigError, match="fails on the example input"):
        load_model(small_module(), example=np.zeros((2, 5), dtype=np.float32))
    with pytest.raises(ConfigError, match="example input"):
        load_model(small_module(), example="not an array")
    with pytest.raises(ConfigError, match="needs an example"):
        load_model(small_module())


def test_unknown_model_name_lists_the_zoo():
    with pytest.raises(ConfigError, match="mlp"):
        load_model("resnet50")
