"""What a model to serve may be given as, turned into the :class:`ModelArtifact` workers rebuild.

Accepted: a ``ModelArtifact``; a ``workbench.models.Model`` (saved into a folder the server owns and
deletes at close; the user's object is not changed); a path to an artifact folder; or anything
``workbench.models.load_model`` takes (a zoo name such as ``"mlp"``, a model file).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from workbench.errors import ConfigError
from workbench.models.artifact import ModelArtifact

_seq = itertools.count()


def resolve_artifact(source: Any, workdir: Path, name: str) -> ModelArtifact:
    """The artifact to serve for ``source`` (see the module docstring)."""
    from workbench.models.model import Model

    if isinstance(source, ModelArtifact):
        return source
    if isinstance(source, Model):
        return source.with_changes().save(workdir / f"{name}-{next(_seq)}")
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir() and (path / "manifest.json").is_file():
            return ModelArtifact.open(path)
        from workbench.models.loading import load_model

        model = load_model(source)
        if model.artifact is not None:
            return model.artifact
        return model.save(workdir / f"{name}-{next(_seq)}")
    kind = type(source).__name__
    hint = (" Wrap an nn.Module first: workbench.models.from_module(module, example_batch)"
            if hasattr(source, "forward") else "")
    raise ConfigError(
        f"model {name!r}: cannot serve a {kind}; give a Model, a ModelArtifact, an artifact folder, a model "
        f"file or a zoo name.{hint}")


def check_placement(artifact: ModelArtifact, stages: int, split: Any) -> None:
    """Raise ConfigError now if the model cannot be cut as asked (instead of in a worker later)."""
    if stages > 1:
        artifact.stage_bounds(stages, split)


def check_same_signature(name: str, old: ModelArtifact, new: ModelArtifact) -> None:
    """A variant swap must keep the served signature, or clients would break mid-flight."""
    a, b = old.signature, new.signature
    if a.input != b.input or a.output != b.output:
        raise ConfigError(
            f"model {name!r}: the new variant's signature differs (input {b.input.to_dict()} / output "
            f"{b.output.to_dict()}, served: {a.input.to_dict()} / {a.output.to_dict()}); serve it under "
            "another name instead")


__all__ = ["check_placement", "check_same_signature", "resolve_artifact"]
