"""Bad model files: corrupt, truncated, the wrong format, a checksum that does not match, a broken
manifest, pickles (and manifests) carrying code, and paths that try to leave the artifact folder. Each
is refused with a clear ``ModelLoadError``/``ConfigError`` (from ``load_file``, ``load_model``,
``ModelArtifact.open`` and ``workbench serve FILE``: exit code 2 and one ``error:`` line, no traceback),
and code smuggled in a file never runs: the marker file it would create never appears."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.errors import ConfigError, ModelLoadError, WorkbenchError
from workbench.models import ModelArtifact, load_file, load_model
from workbench.models.architectures import mlp
from workbench.testing import make_artifact

FACTORY = "workbench.models.architectures:mlp"
KWARGS = {"in_features": 6, "hidden": [8], "classes": 3}


def _example() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((2, 6)).astype(np.float32)


def _module() -> torch.nn.Module:
    torch.manual_seed(0)
    return mlp(**KWARGS).eval()


class _RunsCommand:
    """Unpickling this runs ``touch MARKER`` (os.system), as a hostile file would."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _OpensFile:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _rehash(folder: Path) -> None:
    """Make the manifest's checksums match the (tampered) files again, as an attacker would."""
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"] = {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in manifest["files"]}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _edit_manifest(folder: Path, **changes) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    for key, value in changes.items():
        if value is None:
            manifest.pop(key, None)
        else:
            manifest[key] = value
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Good files of each format, made once; tests copy and break them."""
    root = tmp_path_factory.mktemp("good")
    module, x = _module(), _example()
    torch.save(module.state_dict(), root / "weights.pt")
    program = torch.export.export(module, (torch.from_numpy(x),),
                                  dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=64)},))
    torch.export.save(program, root / "model.pt2")
    torch.onnx.export(module, (torch.from_numpy(x),), str(root / "model.onnx"), input_names=["input"],
                      output_names=["output"], dynamic_axes={"input": {0: "batch"}}, dynamo=False)
    torch.jit.save(torch.jit.script(module), str(root / "model.ts"))
    make_artifact("echo", root / "artifact", shape=(4,))
    load_model(module, example=x, name="tiny", factory=FACTORY, factory_kwargs=KWARGS).save(root / "factory")
    return {"pt": root / "weights.pt", "pt2": root / "model.pt2", "onnx": root / "model.onnx",
            "ts": root / "model.ts", "artifact": root / "artifact", "factory": root / "factory"}


def _copy(src: Path, dst: Path) -> Path:
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copyfile(src, dst)
    return dst


def _load(path: Path) -> object:
    return load_file(path, factory=FACTORY, factory_kwargs=KWARGS, example=_example())


def test_the_good_files_load(files):
    """The baseline the bad cases break: every good file loads and gives the module's answer."""
    expected = _module()(torch.from_numpy(_example())).detach().numpy()
    for kind in ("pt", "pt2", "onnx", "ts"):
        np.testing.assert_allclose(_load(files[kind]).predict(_example()), expected, rtol=1e-4, atol=1e-5)
    assert ModelArtifact.open(files["artifact"]).build_runner()(np.ones((1, 4), np.float32)).tolist() == [[1.0] * 4]


# --------------------------------------------------------------------- corrupt, truncated, wrong format
@pytest.mark.parametrize("kind", ["pt", "pt2", "onnx", "ts"])
@pytest.mark.parametrize("damage", ["random bytes", "truncated", "empty"])
def test_corrupt_and_truncated_files_are_refused(files, tmp_path, kind, damage):
    good = files[kind].read_bytes()
    bad = {"random bytes": np.random.default_rng(1).bytes(len(good)), "truncated": good[: len(good) // 2],
           "empty": b""}[damage]
    path = tmp_path / files[kind].name
    path.write_bytes(bad)
    with pytest.raises((ModelLoadError, ConfigError)) as info:
        _load(path)
    assert str(path) in str(info.value) or path.name in str(info.value)


@pytest.mark.parametrize(("real", "named"), [("pt", "model.onnx"), ("onnx", "model.pt2"), ("pt2", "model.onnx"),
                                             ("ts", "model.onnx"), ("onnx", "model.pt"), ("onnx", "model.txt")])
def test_a_file_of_another_format_is_refused(files, tmp_path, real, named):
    path = _copy(files[real], tmp_path / named)
    with pytest.raises((ModelLoadError, ConfigError)):
        _load(path)


def test_a_tampered_artifact_file_fails_its_checksum(files, tmp_path):
    folder = _copy(files["factory"], tmp_path / "a")
    weights = folder / "weights.pt"
    weights.write_bytes(weights.read_bytes()[:-10] + b"\0" * 10)
    with pytest.raises(ModelLoadError, match="checksum"):
        ModelArtifact.open(folder)
    with pytest.raises(ModelLoadError, match="checksum"):
        load_model(folder)


def test_truncated_weights_with_a_matching_checksum_are_a_clear_error(files, tmp_path):
    folder = _copy(files["factory"], tmp_path / "a")
    weights = folder / "weights.pt"
    weights.write_bytes(weights.read_bytes()[:200])
    _rehash(folder)
    with pytest.raises(ModelLoadError, match="weights.pt"):
        load_model(folder)


@pytest.mark.parametrize(("manifest", "match"), [
    ("{not json", "not valid JSON"), ("[1, 2]", "not a workbench artifact manifest"), ("", "not valid JSON"),
    ("\xff\xfe", "not valid JSON"),
])
def test_a_manifest_that_is_not_a_manifest(files, tmp_path, manifest, match):
    folder = _copy(files["artifact"], tmp_path / "a")
    (folder / "manifest.json").write_text(manifest, encoding="latin-1")
    with pytest.raises(ModelLoadError, match=match):
        ModelArtifact.open(folder)


@pytest.mark.parametrize("changes", [
    {"version": 99}, {"kind": "pickle"}, {"name": None}, {"name": ["x"]}, {"signature": None},
    {"signature": {"input": "x"}}, {"signature": {"input": {"name": "input", "shape": [-5], "dtype": "float32"},
                                                  "output": {"name": "o", "shape": [4], "dtype": "float32"}}},
    {"files": ["weights.pt"]}, {"files": {"weights.pt": 7}}, {"transforms": "bf16"}, {"transforms": [{"op": "nope"}]},
    {"transforms": [7]}, {"source": None}, {"source": {"factory": 12}}, {"source": {"factory": "no.such.module:f"}},
])
def test_a_manifest_with_bad_fields_is_a_clear_error(files, tmp_path, changes):
    folder = _copy(files["artifact"], tmp_path / "a")
    _edit_manifest(folder, **changes)
    with pytest.raises(WorkbenchError) as info:
        load_model(folder)
    assert str(info.value)


# -------------------------------------------------------------------------------- code in files
@pytest.mark.parametrize("payload", [_RunsCommand, _OpensFile])
@pytest.mark.parametrize("where", ["file", "state_dict value", "artifact weights"])
def test_a_pickle_carrying_code_is_refused_and_never_runs(files, tmp_path, payload, where):
    marker = tmp_path / "pwned"
    evil = payload(marker)
    if where == "artifact weights":
        folder = _copy(files["factory"], tmp_path / "a")
        torch.save({"0.weight": evil}, folder / "weights.pt")
        _rehash(folder)  # the checksum matches: only the loader stands between the file and the code
        target = folder
    else:
        target = tmp_path / "evil.pt"
        torch.save(evil if where == "file" else {"0.weight": evil}, target)
    with pytest.raises(ModelLoadError, match="refused|not a plain state_dict|unpickl"):
        load_model(target, **({} if target.is_dir() else {"factory": FACTORY, "factory_kwargs": KWARGS,
                                                          "example": _example()}))
    assert not marker.exists(), "the pickle's code ran"


def test_a_pickled_example_array_never_runs(files, tmp_path):
    marker = tmp_path / "pwned"
    folder = _copy(files["artifact"], tmp_path / "a")
    np.save(folder / "example.npy", np.array([_OpensFile(marker)], dtype=object), allow_pickle=True)
    _rehash(folder)
    with pytest.raises(ModelLoadError, match="example.npy"):
        load_model(folder)
    assert not marker.exists()


@pytest.mark.parametrize(("factory", "kwargs"), [
    ("subprocess:run", {"args": ["touch", "{marker}"]}), ("subprocess:Popen", {"args": ["touch", "{marker}"]}),
    ("pathlib:Path.touch", {}), ("builtins:open", {"file": "{marker}", "mode": "w"}),
    ("os:makedirs", {"name": "{marker}"}), ("shutil:copyfile", {"src": __file__, "dst": "{marker}"}),
    ("numpy:save", {"file": "{marker}", "arr": [1]}), ("pickle:loads", {"data": "x"}),
])
def test_a_manifest_factory_that_is_not_a_model_factory_never_runs(files, tmp_path, factory, kwargs):
    """A manifest names the function that rebuilds the model; one naming a command runner or a file
    writer must be refused before it is called."""
    marker = tmp_path / "pwned"
    folder = _copy(files["factory"], tmp_path / "a")
    text = json.dumps(kwargs).replace("{marker}", str(marker))
    _edit_manifest(folder, source={"factory": factory, "kwargs": json.loads(text)})
    with pytest.raises(ModelLoadError, match="factory"):
        load_model(folder)
    assert not marker.exists(), f"the manifest's factory {factory} ran"


def test_pickle_module_payload_via_torch_load_of_a_zip_is_refused(tmp_path):
    """The same refusal for a raw (non-torch) pickle with a .pth name."""
    marker = tmp_path / "pwned"
    (tmp_path / "raw.pth").write_bytes(pickle.dumps(_RunsCommand(marker)))
    with pytest.raises(ModelLoadError):
        load_file(tmp_path / "raw.pth", factory=FACTORY, factory_kwargs=KWARGS, example=_example())
    assert not marker.exists()


# ------------------------------------------------------------------------------------- traversal
@pytest.mark.parametrize("name", ["../outside.bin", "/etc/hostname", "sub/../../outside.bin", "..", ""])
def test_manifest_file_entries_stay_inside_the_folder(files, tmp_path, name):
    (tmp_path / "outside.bin").write_bytes(b"secret")
    folder = _copy(files["artifact"], tmp_path / "a")
    manifest = json.loads((folder / "manifest.json").read_text())
    target = (folder / name) if name else folder
    digest = hashlib.sha256(target.read_bytes()).hexdigest() if target.is_file() else "0" * 64
    manifest["files"][name] = digest
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="inside|outside|file name"):
        ModelArtifact.open(folder)


@pytest.mark.parametrize("name", ["../elsewhere.npy", "/tmp/elsewhere.npy"])
def test_a_transform_never_reads_a_file_outside_the_folder(files, tmp_path, name):
    """Transform parameters come from the manifest too: static int8's calibration file must stay inside."""
    np.save(tmp_path / "elsewhere.npy", _example())
    folder = _copy(files["factory"], tmp_path / "a")
    _edit_manifest(folder, transforms=[{"op": "static_int8", "calibration": name}])
    with pytest.raises(ModelLoadError, match="outside"):
        ModelArtifact.open(folder).build_module()


@pytest.mark.parametrize("name", ["weights.pt", "example.npy"])
def test_a_symlink_out_of_the_folder_is_refused(files, tmp_path, name):
    folder = _copy(files["factory"], tmp_path / "a")
    outside = tmp_path / f"outside-{name}"
    (folder / name).rename(outside)
    (folder / name).symlink_to(outside)  # same bytes, so the checksum still matches
    with pytest.raises(ModelLoadError, match="outside|inside"):
        ModelArtifact.open(folder)


def test_a_symlink_inside_the_folder_is_fine(files, tmp_path):
    folder = _copy(files["factory"], tmp_path / "a")
    (folder / "weights.pt").rename(folder / "real-weights.pt")
    (folder / "weights.pt").symlink_to(folder / "real-weights.pt")
    assert ModelArtifact.open(folder).build_module() is not None


# ------------------------------------------------------------------------------- the CLI, end to end
def _cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WORKBENCH_RUNS": str(tmp_path / "runs")}
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True,
                          timeout=180, env=env)


def _assert_one_clear_line(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.mark.slow
def test_workbench_serve_refuses_bad_files_with_one_line(files, tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "corrupt.pt2").write_bytes(files["pt2"].read_bytes()[:300])
    torch.save(_RunsCommand(marker), tmp_path / "evil.pt")
    (tmp_path / "model.txt").write_text("hello")
    traversal = _copy(files["artifact"], tmp_path / "traversal")
    _edit_manifest(traversal, files={"../evil.pt": hashlib.sha256((tmp_path / "evil.pt").read_bytes()).hexdigest()})
    command = _copy(files["factory"], tmp_path / "command")
    _edit_manifest(command, source={"factory": "subprocess:run", "kwargs": {"args": ["touch", str(marker)]}})
    cases = {"corrupt.pt2": "torch.export", "evil.pt": "refused", "model.txt": "unknown model file format",
             "traversal": "outside", "command": "factory", "missing.onnx": "does not exist"}
    for name, words in cases.items():
        _assert_one_clear_line(_cli("serve", str(tmp_path / name), "--port", "0", tmp_path=tmp_path), words)
    assert not marker.exists()


@pytest.mark.slow
@pytest.mark.parametrize("run", ["../../etc/passwd", "/etc/passwd", "..", "%2e%2e/x"])
def test_workbench_runs_show_never_leaves_the_runs_folder(tmp_path, run):
    result = _cli("runs", "show", run, tmp_path=tmp_path)
    _assert_one_clear_line(result, "no run")
    assert "root:" not in result.stdout
