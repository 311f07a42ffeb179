"""Model artifacts: a saved, versioned, self-describing form of a model that any process can rebuild.

An artifact is a folder::

    manifest.json      what the model is and how to rebuild it (format version, kind, signature, ...)
    weights.pt         a state_dict, read back with ``torch.load(weights_only=True)`` (never unpickled)
    program.pt2 / model.ts / model.onnx   for the file kinds
    example.npy        an example input batch

Kinds and how they rebuild:

- ``architecture``: a zoo family (``mlp``, ``cnn``, ``transformer``) and its keyword arguments + weights;
- ``factory``: an importable ``"package.module:function"`` and kwargs returning an ``nn.Module`` + weights;
- ``export``: a ``torch.export`` program (``.pt2``);
- ``torchscript``: a TorchScript module;
- ``onnx``: an ONNX model run by ONNX Runtime.

Then ``transforms`` (see :mod:`workbench.models.transforms`) turn the rebuilt fp32 module into the
served variant. Only ``architecture`` and ``factory`` models that rebuild as ``nn.Sequential`` can be
cut into pipeline stages: the cut is between top-level children.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import ConfigError, ModelLoadError, WorkbenchError
from workbench.models.runner import OnnxRunner, Runner, TorchRunner, set_eval
from workbench.models.signature import Signature

FORMAT = "workbench.artifact"
FORMAT_VERSION = 1
KINDS = ("architecture", "factory", "export", "torchscript", "onnx")
CUTTABLE_KINDS = ("architecture", "factory")
_KIND_FILES = {"export": "program.pt2", "torchscript": "model.ts", "onnx": "model.onnx"}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def inside_folder(folder: Path, name: object) -> Path:
    """``folder / name``, refused unless it is a plain relative file name that stays inside ``folder``
    once symlinks are resolved: a manifest (which anyone may have written) must not point elsewhere."""
    if not isinstance(name, str) or not name or name in (".", "..") or "\0" in name:
        raise ModelLoadError(f"{folder}: the manifest names the artifact file {name!r}, which is not a file name")
    path = folder / name
    if Path(name).is_absolute() or ".." in Path(name).parts:
        raise ModelLoadError(f"{folder}: the manifest names {name!r}, which is outside the artifact folder")
    try:
        inside = path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):
        inside = False
    if not inside:
        raise ModelLoadError(f"{folder}: artifact file {name!r} links outside the artifact folder")
    return path


def _check_fields(folder: Path, manifest: dict[str, Any]) -> None:
    """The fields every loader reads have the types it expects (else one clear ModelLoadError)."""
    def bad(field_name: str, expected: str) -> ModelLoadError:
        return ModelLoadError(f"{folder}: manifest field {field_name!r} must be {expected}, "
                              f"got {manifest.get(field_name)!r:.80}")

    if not isinstance(manifest.get("name"), str) or not manifest["name"]:
        raise bad("name", "a non-empty string")
    try:
        Signature.from_dict(manifest["signature"])
    except (KeyError, TypeError, ValueError, AttributeError, WorkbenchError) as exc:
        raise bad("signature", f"an object with 'input' and 'output' tensors ({type(exc).__name__}: {exc})") from None
    files = manifest.setdefault("files", {})
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise bad("files", "an object of file name: sha256")
    transforms = manifest.setdefault("transforms", [])
    if not isinstance(transforms, list) or not all(isinstance(t, dict) and isinstance(t.get("op"), str)
                                                   for t in transforms):
        raise bad("transforms", 'a list of {"op": name, ...} objects')
    source = manifest.setdefault("source", {})
    if not isinstance(source, dict):
        raise bad("source", "an object")
    if manifest["kind"] == "architecture" and not isinstance(source.get("family"), str):
        raise bad("source", "an object naming the zoo 'family'")
    if manifest["kind"] == "factory" and not isinstance(source.get("factory"), str):
        raise bad("source", "an object naming the 'factory' ('package.module:function')")
    for key in ("arch", "kwargs"):
        if not isinstance(source.get(key, {}), dict):
            raise bad("source", f"an object whose {key!r} is an object of keyword arguments")


@dataclass(frozen=True)
class ModelArtifact:
    """A handle on an artifact folder. Small and picklable: workers receive this, never a live model."""

    path: Path
    manifest: dict[str, Any] = field(repr=False, compare=False)

    # ----------------------------------------------------------------- reading
    @classmethod
    def open(cls, path: str | Path) -> ModelArtifact:
        """Read and validate ``path/manifest.json``; raises ModelLoadError naming what is wrong."""
        folder = Path(path)
        manifest_path = folder / "manifest.json"
        if not manifest_path.is_file():
            raise ModelLoadError(f"{folder} is not a model artifact: it has no manifest.json")
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"{manifest_path} is not valid JSON: {exc}") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ModelLoadError(f"{manifest_path} is not a workbench artifact manifest")
        if manifest.get("version") != FORMAT_VERSION:
            raise ModelLoadError(
                f"{folder}: artifact format version {manifest.get('version')!r} is not supported "
                f"(this workbench reads version {FORMAT_VERSION})"
            )
        if manifest.get("kind") not in KINDS:
            raise ModelLoadError(f"{folder}: unknown artifact kind {manifest.get('kind')!r}; known: {KINDS}")
        _check_fields(folder, manifest)
        for name, digest in manifest["files"].items():
            file = inside_folder(folder, name)
            if not file.is_file():
                raise ModelLoadError(f"{folder}: artifact file {name} is missing")
            if _sha256(file) != digest:
                raise ModelLoadError(f"{folder}: artifact file {name} does not match its checksum (corrupt?)")
        for name in ("example.npy", *([_KIND_FILES[manifest["kind"]]] if manifest["kind"] in _KIND_FILES
                                      else ["weights.pt"])):
            inside_folder(folder, name)
        return cls(path=folder, manifest=manifest)

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def kind(self) -> str:
        return str(self.manifest["kind"])

    @property
    def signature(self) -> Signature:
        return Signature.from_dict(self.manifest["signature"])

    @property
    def variant(self) -> str:
        """A short label of what was done to the base model, ``fp32`` for none."""
        return str(self.manifest.get("variant", "fp32"))

    @property
    def transforms(self) -> list[dict[str, Any]]:
        return list(self.manifest.get("transforms", []))

    def example(self) -> np.ndarray:
        try:
            return np.load(self.path / "example.npy", allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:  # a pickled (object) array is refused, never loaded
            raise ModelLoadError(f"{self.path}: example.npy is not a plain numeric array: {exc}") from None

    # -------------------------------------------------------------- rebuilding
    def build_module(self) -> Any:
        """Rebuild the served ``nn.Module`` (transforms applied), in eval mode on the CPU."""
        from workbench.models.transforms import TransformContext, apply_transforms

        module = self._build_base()
        context = TransformContext(folder=self.path, example=self.example())
        return set_eval(apply_transforms(module, self.transforms, context))

    def _build_base(self) -> Any:
        import torch

        kind, source = self.kind, self.manifest.get("source", {})
        if kind == "onnx":
            raise ModelLoadError(f"{self.name}: an ONNX artifact has no torch module; use build_runner()")
        if kind in ("export", "torchscript"):
            try:
                if kind == "export":
                    from workbench.models.loading import load_export_program

                    return load_export_program(self.path / _KIND_FILES[kind]).module()
                return torch.jit.load(str(self.path / _KIND_FILES[kind]), map_location="cpu")
            except Exception as exc:
                raise ModelLoadError(f"{self.name}: {_KIND_FILES[kind]} is not a readable {kind} model: "
                                     f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        if kind == "architecture":
            from workbench.models.architectures import build_architecture

            module = build_architecture(source["family"], dict(source.get("arch", {})))
        else:
            from workbench.models.loading import call_factory

            module = call_factory(source["factory"], dict(source.get("kwargs", {})))
        state = _load_weights(self.path / "weights.pt", self.name)
        try:
            module.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as exc:
            raise ModelLoadError(f"{self.name}: saved weights do not fit the rebuilt model: {exc}") from None
        return module

    def stage_bounds(self, stages: int, split: Sequence[int] | None = None) -> list[tuple[int, int]]:
        """Child index ranges ``[(start, end), ...]`` of each pipeline stage.

        ``split`` gives the child indices where stages 2..K begin; by default the cut balances the
        parameter count across stages (every stage holds at least one child).
        """
        if stages < 1:
            raise ConfigError(f"stages must be >= 1, got {stages}")
        if stages == 1:
            return [(0, -1)]
        if self.kind not in CUTTABLE_KINDS:
            raise ConfigError(
                f"model {self.name!r} is a {self.kind} artifact and cannot be cut into stages; only zoo "
                "models and factory models that return nn.Sequential can be (serve it with stages=1)"
            )
        module = self.build_module()
        from torch import nn

        if not isinstance(module, nn.Sequential):
            raise ConfigError(
                f"model {self.name!r} is a {type(module).__name__}, not nn.Sequential, so it has no "
                "top-level children to cut between; serve it with stages=1"
            )
        children = list(module)
        if stages > len(children):
            raise ConfigError(f"model {self.name!r} has {len(children)} top-level layers: stages must be <= that")
        if split is None:
            split = _balanced_split([sum(p.numel() for p in c.parameters()) + 1 for c in children], stages)
        cuts = [0, *split, len(children)]
        if len(cuts) != stages + 1 or any(a >= b for a, b in zip(cuts, cuts[1:])):
            raise ConfigError(
                f"split {list(split)} must be {stages - 1} increasing child indices in 1..{len(children) - 1}"
            )
        return list(zip(cuts, cuts[1:]))

    def build_runner(
        self, *, stage: int = 0, stages: int = 1, split: Sequence[int] | None = None,
        device: str = "cpu", threads: int | None = None,
    ) -> Runner:
        """The runner of pipeline ``stage`` of ``stages`` (the whole model when ``stages == 1``)."""
        if not 0 <= stage < stages:
            raise ConfigError(f"stage must be in 0..{stages - 1}, got {stage}")
        if self.kind == "onnx":
            if stages != 1:
                self.stage_bounds(stages)  # raises the clear error
            return OnnxRunner(str(self.path / _KIND_FILES["onnx"]), threads=threads, device=device)
        if threads:
            import torch

            torch.set_num_threads(threads)
        module = self.build_module()
        if stages > 1:
            from torch import nn

            start, end = self.stage_bounds(stages, split)[stage]
            module = nn.Sequential(*list(module)[start:end])
        return TorchRunner(module, device=device)

    def describe(self) -> dict[str, Any]:
        """A summary for listings: name, kind, variant, signature and recorded metrics."""
        m = self.manifest
        return {
            "name": self.name, "kind": self.kind, "variant": self.variant, "path": str(self.path),
            "input": m["signature"]["input"], "output": m["signature"]["output"],
            "metrics": m.get("metrics", {}), "created_at": m.get("created_at"),
        }


def _load_weights(path: Path, name: str) -> Any:
    """A state_dict read with ``weights_only=True`` (tensors only: a pickle carrying code is refused, never run)."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelLoadError(
            f"{name}: {path.name} is damaged or is not a plain state_dict (a pickle of other objects is refused "
            f"and never unpickled): {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None


def _balanced_split(weights: list[int], stages: int) -> list[int]:
    """Cut points so each stage's total weight is as close as possible to an equal share."""
    total = sum(weights)
    cuts: list[int] = []
    acc = 0
    for i, w in enumerate(weights[:-1]):
        acc += w
        remaining_children = len(weights) - (i + 1)
        remaining_stages = stages - 1 - len(cuts)
        if remaining_stages == 0:
            break
        if acc >= total * (len(cuts) + 1) / stages or remaining_children == remaining_stages:
            cuts.append(i + 1)
    return cuts


def write_artifact(
    folder: str | Path, *, name: str, kind: str, signature: Signature, example: np.ndarray,
    source: dict[str, Any] | None = None, state_dict: dict[str, Any] | None = None,
    model_file: Path | None = None, transforms: Sequence[dict[str, Any]] = (),
    variant: str = "fp32", lineage: dict[str, Any] | None = None, evaluation: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None, extra_files: dict[str, Path] | None = None,
) -> ModelArtifact:
    """Write an artifact folder and return its handle. ``model_file`` is moved in for the file kinds."""
    import shutil

    import torch

    if kind not in KINDS:
        raise ConfigError(f"artifact kind must be one of {KINDS}, got {kind!r}")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    files: list[str] = []
    if state_dict is not None:
        torch.save({k: v.detach().clone() for k, v in state_dict.items()}, out / "weights.pt")
        files.append("weights.pt")
    if kind in _KIND_FILES:
        if model_file is None:
            raise ConfigError(f"a {kind} artifact needs its model file")
        target = out / _KIND_FILES[kind]
        if Path(model_file).resolve() != target.resolve():
            shutil.copyfile(model_file, target)
        files.append(target.name)
    for fname, src in (extra_files or {}).items():
        if Path(src).resolve() != (out / fname).resolve():
            shutil.copyfile(src, out / fname)
        files.append(fname)
    np.save(out / "example.npy", np.ascontiguousarray(example), allow_pickle=False)
    files.append("example.npy")
    from workbench import __version__

    manifest = {
        "format": FORMAT, "version": FORMAT_VERSION, "name": name, "kind": kind,
        "source": source or {}, "signature": signature.to_dict(), "transforms": list(transforms),
        "variant": variant, "lineage": lineage or {}, "evaluation": evaluation or {},
        "metrics": metrics or {}, "files": {f: _sha256(out / f) for f in files},
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "workbench_version": __version__, "torch_version": torch.__version__,
    }
    tmp = out / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    tmp.replace(out / "manifest.json")
    return ModelArtifact(path=out, manifest=manifest)


__all__ = ["CUTTABLE_KINDS", "KINDS", "ModelArtifact", "inside_folder", "write_artifact"]
