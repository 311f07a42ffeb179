"""Before measuring: load the model and its variants, save each as an artifact the server's workers
load, measure each variant's held-out accuracy, and drop those under the accuracy floor."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import ConfigError
from workbench.tune.trial import Objective

log = logging.getLogger("workbench.tune")


@dataclass
class Prepared:
    """The model and variants the tuner serves. ``models``: variant -> ``Model`` (kept so the best one
    can be saved next to the YAML); ``artifacts``: variant -> ``ModelArtifact`` the workers load;
    ``excluded``: variant -> why it is not searched."""

    name: str
    models: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)
    accuracy: dict[str, float | None] = field(default_factory=dict)
    excluded: dict[str, str] = field(default_factory=dict)
    max_stages: int | None = None
    pruned: list[str] = field(default_factory=list)


def load_source(source: Any, what: str) -> Any:
    """A ``Model`` from a Model, a ``ModelArtifact``, an artifact folder, a model file or a zoo name."""
    from workbench.models.artifact import ModelArtifact
    from workbench.models.loading import load_model
    from workbench.models.model import Model, model_from_artifact

    if isinstance(source, Model):
        return source
    if isinstance(source, ModelArtifact):
        return model_from_artifact(source)
    if isinstance(source, (str, Path)):
        return load_model(str(source), progress=False) if _is_zoo(source) else load_model(source)
    raise ConfigError(f"{what}: cannot tune a {type(source).__name__}; give a Model, an artifact folder, a model "
                      "file or a zoo name")


def _is_zoo(source: Any) -> bool:
    from workbench.models.zoo import ZOO

    return isinstance(source, str) and source in ZOO


def accuracy_of(model: Any) -> float | None:
    """Held-out accuracy (0..1), or None if the model has no evaluation split."""
    if model.eval_data is None:
        value = model.metrics.get("accuracy")
        return float(value) if isinstance(value, (int, float)) else None
    return float(model.evaluate())


def prepare(model: Any, variants: dict[str, Any], objective: Objective, workdir: Path,
            searched: tuple[str, ...]) -> Prepared:
    """Load, save and evaluate the variants in ``searched`` (all given if empty); apply the floor."""
    base = load_source(model, "model")
    prepared = Prepared(name=_served_name(base.name))
    wanted = searched or ("original", *variants)
    sources = {"original": base, **variants}
    for name in wanted:
        m = base if name == "original" else load_source(sources[name], f"variant {name!r}")
        if name != "original":
            _check_signature(base, m, name)
        accuracy = accuracy_of(m) if (objective.min_accuracy is not None or m.eval_data is not None) else None
        prepared.accuracy[name] = accuracy
        floor = objective.min_accuracy
        if floor is not None:
            if accuracy is None:
                prepared.excluded[name] = "its accuracy is unknown (no evaluation split)"
                continue
            if accuracy < floor:
                prepared.excluded[name] = f"accuracy {accuracy:.2%} is under the floor {floor:.2%}"
                continue
        prepared.models[name] = m
        prepared.artifacts[name] = m.save(workdir / f"variant-{name}")
    if not prepared.models:
        why = "; ".join(f"{k}: {v}" for k, v in prepared.excluded.items())
        raise ConfigError(f"no variant meets the accuracy floor {objective.min_accuracy:.2%} ({why}); lower "
                          "--min-accuracy or give a more accurate variant")
    prepared.max_stages = _max_stages(next(iter(prepared.artifacts.values())))
    return prepared


def _served_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in str(name)).strip("-") or "model"
    return cleaned


def _check_signature(base: Any, variant: Any, name: str) -> None:
    a, b = base.signature, variant.signature
    if a.input != b.input or a.output != b.output:
        raise ConfigError(f"variant {name!r} has another signature than the model (input {b.input.to_dict()}, "
                          f"expected {a.input.to_dict()}); a variant must take and give the same tensors")


def _max_stages(artifact: Any) -> int | None:
    """How many stages the model may be cut into (its top-level layers), 1 if it cannot be cut."""
    try:
        artifact.stage_bounds(2)
    except ConfigError:
        return 1
    module = artifact.build_module()
    try:
        return len(list(module))
    except TypeError:
        return 1


__all__ = ["Prepared", "accuracy_of", "load_source", "prepare"]
