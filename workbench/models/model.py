"""``Model``: a loaded model with its signature, example batch and evaluation split."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import ConfigError
from workbench.models.artifact import ModelArtifact, write_artifact
from workbench.models.signature import Signature


@dataclass
class Model:
    """A model ready to evaluate, compress, save and serve.

    ``source`` says how another process rebuilds it: ``{"kind": "architecture", "family": ..., "arch":
    {...}}``, ``{"kind": "factory", "factory": "pkg.mod:fn", "kwargs": {...}}``, or ``{"kind": "export"}``
    (the module is saved as a ``torch.export`` program). ``transforms`` turn the rebuilt fp32 module into
    this variant (see :mod:`workbench.models.transforms`); ``module`` already has them applied.
    """

    name: str
    module: Any
    signature: Signature
    example: np.ndarray
    source: dict[str, Any]
    eval_data: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    evaluation: dict[str, Any] = field(default_factory=dict)
    transforms: list[dict[str, Any]] = field(default_factory=list)
    variant: str = "fp32"
    lineage: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    artifact: ModelArtifact | None = field(default=None, repr=False)
    base_state: dict[str, Any] | None = field(default=None, repr=False)
    runner_override: Any = field(default=None, repr=False)
    extra_files: dict[str, Path] = field(default_factory=dict, repr=False)  # more artifact files (e.g. calibration rows)

    def __post_init__(self) -> None:
        self.signature.input.check_batch(self.example, what="example input")

    # ------------------------------------------------------------------ using
    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch (numpy in, numpy out) in this process."""
        self.signature.input.check_batch(np.asarray(batch))
        return self.runner()(np.asarray(batch))

    def runner(self) -> Any:
        if self.runner_override is not None:
            return self.runner_override
        from workbench.models.runner import TorchRunner

        return TorchRunner(self.module, device="cpu")

    def evaluate(self, batch_size: int = 256) -> float:
        """Accuracy on the held-out split, in [0, 1]."""
        if self.eval_data is None:
            raise ConfigError(f"model {self.name!r} has no evaluation split; pass eval_data when loading it")
        x, y = self.eval_data
        run = self.runner()
        correct = 0
        for i in range(0, len(x), batch_size):
            logits = run(x[i : i + batch_size])
            correct += int((logits.argmax(axis=1) == y[i : i + batch_size]).sum())
        return correct / len(x)

    @property
    def num_parameters(self) -> int:
        if self.module is None:
            return int(self.metrics.get("parameters", 0))
        return sum(p.numel() for p in self.module.parameters())

    # ----------------------------------------------------------------- saving
    def save(self, folder: str | Path) -> ModelArtifact:
        """Write this model as an artifact folder another process can rebuild exactly."""
        import torch

        kind = self.source.get("kind")
        common: dict[str, Any] = dict(
            name=self.name, signature=self.signature, example=self.example, transforms=self.transforms,
            variant=self.variant, lineage=self.lineage, evaluation=self.evaluation, metrics=self.metrics,
            extra_files=self.extra_files,
        )
        if kind in ("architecture", "factory"):
            state = self.base_state if self.base_state is not None else self.module.state_dict()
            src = {k: v for k, v in self.source.items() if k != "kind"}
            self.artifact = write_artifact(folder, kind=kind, source=src, state_dict=state, **common)
        elif kind in ("export", "torchscript", "onnx") and self.artifact is not None and not self.transforms:
            file = next(self.artifact.path / f for f in self.artifact.manifest["files"] if f.split(".")[0] in ("program", "model"))
            self.artifact = write_artifact(folder, kind=kind, model_file=file, **common)
        elif kind in ("export", "module"):
            with tempfile.TemporaryDirectory() as tmp:
                program_path = Path(tmp) / "program.pt2"
                rows = np.concatenate([self.example[:2], self.example[:2]])[:2]  # >= 2 rows: batch stays dynamic
                example = torch.from_numpy(rows.copy())
                program = torch.export.export(self.module, (example,), dynamic_shapes=({0: torch.export.Dim.AUTO},))
                torch.export.save(program, program_path)
                common["transforms"] = []  # the exported program already holds them
                self.artifact = write_artifact(folder, kind="export", model_file=program_path, **common)
        else:
            raise ConfigError(f"model {self.name!r} cannot be saved: unknown source kind {kind!r}")
        return self.artifact

    def with_changes(self, **changes: Any) -> Model:
        """A copy with some fields replaced (the module itself is shared unless replaced)."""
        return replace(self, **changes)


def model_from_artifact(artifact: ModelArtifact) -> Model:
    """Rebuild a ``Model`` from an artifact, with its evaluation split when it names one."""
    from workbench.models.zoo import evaluation_split

    module, runner = None, None
    if artifact.kind == "onnx":
        runner = artifact.build_runner()
    else:
        module = artifact.build_module()
    evaluation = dict(artifact.manifest.get("evaluation", {}))
    source = {"kind": artifact.kind, **artifact.manifest.get("source", {})}
    standard = {"weights.pt", "example.npy", "program.pt2", "model.ts", "model.onnx"}
    extra_files = {f: artifact.path / f for f in artifact.manifest.get("files", {}) if f not in standard}
    base_state = None
    if artifact.transforms and (artifact.path / "weights.pt").is_file():  # the fp32 weights under the transforms
        import torch

        base_state = torch.load(artifact.path / "weights.pt", map_location="cpu", weights_only=True)
    return Model(
        name=artifact.name, module=module, signature=artifact.signature, example=artifact.example(),
        source=source, eval_data=evaluation_split(evaluation) if evaluation else None, evaluation=evaluation,
        transforms=artifact.transforms, variant=artifact.variant, lineage=artifact.manifest.get("lineage", {}),
        metrics=artifact.manifest.get("metrics", {}), artifact=artifact, runner_override=runner,
        extra_files=extra_files, base_state=base_state,
    )


__all__ = ["Model", "model_from_artifact"]
