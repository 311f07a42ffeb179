"""Serving configuration: placement, batching, routing, admission and time, per model.

A :class:`ServeConfig` is frozen, keyword-only, validated on construction (a bad value raises
:class:`~workbench.errors.ConfigError` naming the setting, the value and what is allowed) and
round-trips through plain dicts and YAML::

    ServeConfig(placement=PlacementConfig(replicas=2), batching=BatchingConfig(max_batch_size=16))
    ServeConfig.from_dict({"placement": {"replicas": 2}, "routing": "round_robin"})
    config.replace(max_batch_size=16, replicas=3)     # flat setting names, see FLAT_FIELDS

Sections may be given as dicts too: ``ServeConfig(placement={"replicas": 2})``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import ConfigError
from workbench.serving.routing import ROUTERS


def _int(name: str, value: Any, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in {low}..{high}"
        raise ConfigError(f"{name} must be {allowed}, got {value}")


def _number(name: str, value: Any, low: float, *, strict: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if value < low or (strict and value == low) or value != value:
        raise ConfigError(f"{name} must be {'>' if strict else '>='} {low}, got {value}")


class _Section:
    """Shared dict round trip of the config sections (plain fields only)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        if not isinstance(data, dict):
            raise ConfigError(f"{cls.__name__} must be given as a mapping, got {type(data).__name__}")
        allowed = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} setting(s) {unknown}; allowed: {allowed}")
        return cls(**data)


@dataclass(frozen=True, kw_only=True)
class PlacementConfig(_Section):
    """Where a model runs.

    ``replicas`` data-parallel copies, each a pipeline of ``stages`` processes (model parallelism;
    ``stages=1`` is a plain worker); N replicas × K stages = N pipelines. ``split`` optionally names the
    top-level child indices where stages 2..K begin (default: balanced by parameter count). A pipeline
    cuts each batch into micro-batches of ``micro_batch_rows`` rows (default: ``ceil(rows / stages)``)
    so its stages compute at the same time. ``device`` is ``auto`` (CUDA when available), ``cpu`` or
    ``cuda``. ``start_timeout_s`` bounds how long a worker may take to load its model.
    """

    replicas: int = 1
    stages: int = 1
    split: tuple[int, ...] | None = None
    micro_batch_rows: int | None = None
    threads_per_worker: int = 1
    device: str = "auto"
    start_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        _int("replicas", self.replicas, 1, 64)
        _int("stages", self.stages, 1, 16)
        if self.split is not None:
            if not isinstance(self.split, (list, tuple)):
                raise ConfigError(f"split must be a list of child indices, got {self.split!r}")
            object.__setattr__(self, "split", tuple(self.split))
            for i in self.split:
                _int("every split index", i, 1)
            if len(self.split) != self.stages - 1:
                raise ConfigError(
                    f"split must hold stages - 1 = {self.stages - 1} cut indices, got {list(self.split)}"
                )
            if list(self.split) != sorted(set(self.split)):
                raise ConfigError(f"split indices must be strictly increasing, got {list(self.split)}")
        if self.micro_batch_rows is not None:
            _int("micro_batch_rows", self.micro_batch_rows, 1)
        _int("threads_per_worker", self.threads_per_worker, 1, 256)
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise ConfigError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        _number("start_timeout_s", self.start_timeout_s, 0.0, strict=True)


@dataclass(frozen=True, kw_only=True)
class BatchingConfig(_Section):
    """Dynamic batching in the controller.

    A batch closes when it holds ``max_batch_size`` rows or when its oldest request has waited
    ``max_delay_ms`` (0 = no waiting: whatever is queued goes as soon as a worker can take it; batches
    still grow while every worker is busy). ``enabled=False`` sends every request alone.
    """

    enabled: bool = True
    max_batch_size: int = 32
    max_delay_ms: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ConfigError(f"enabled must be true or false, got {self.enabled!r}")
        _int("max_batch_size", self.max_batch_size, 1, 65536)
        _number("max_delay_ms", self.max_delay_ms, 0.0)
        if self.max_delay_ms > 60_000:
            raise ConfigError(f"max_delay_ms must be <= 60000, got {self.max_delay_ms}")


@dataclass(frozen=True, kw_only=True)
class AdmissionConfig(_Section):
    """Admission and time.

    ``max_queue``: the most *rows* that may wait in the controller's queue for a model; a request that
    would pass it is refused at once with ``Overloaded``. ``timeout_ms``: a request's default deadline,
    from its arrival (a request may pass its own). ``retries``: how many times a request whose worker
    died is sent again. ``compute_timeout_ms``: a batch on a worker longer than this marks the worker
    hung: it is killed and replaced (default: ``timeout_ms``).
    """

    max_queue: int = 1024
    timeout_ms: float = 10_000.0
    retries: int = 1
    compute_timeout_ms: float | None = None

    def __post_init__(self) -> None:
        _int("max_queue", self.max_queue, 1)
        _number("timeout_ms", self.timeout_ms, 0.0, strict=True)
        _int("retries", self.retries, 0, 5)
        if self.compute_timeout_ms is not None:
            _number("compute_timeout_ms", self.compute_timeout_ms, 0.0, strict=True)

    @property
    def hung_after_s(self) -> float:
        """Seconds a batch may stay on a worker before the worker counts as hung."""
        ms = self.compute_timeout_ms if self.compute_timeout_ms is not None else self.timeout_ms
        return ms / 1000.0


_SECTIONS: dict[str, Any] = {"placement": PlacementConfig, "batching": BatchingConfig, "admission": AdmissionConfig}

#: flat setting name -> the section that holds it (``None``: a top-level field)
FLAT_FIELDS: dict[str, str | None] = {
    **{f.name: section for section, cls in _SECTIONS.items() for f in dataclasses.fields(cls)},
    "routing": None,
}
#: settings that need new worker processes when they change (a rolling replacement)
RESTART_FIELDS = ("stages", "split", "micro_batch_rows", "threads_per_worker", "device")


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    """How one model is served. ``routing`` names a policy in :data:`workbench.serving.routing.ROUTERS`:
    ``round_robin``, ``least_outstanding`` (default) or ``power_of_two``."""

    placement: PlacementConfig = field(default_factory=PlacementConfig)
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    routing: str = "least_outstanding"
    admission: AdmissionConfig = field(default_factory=AdmissionConfig)

    def __post_init__(self) -> None:
        for name, cls in _SECTIONS.items():
            value = getattr(self, name)
            if isinstance(value, dict):
                object.__setattr__(self, name, cls.from_dict(value))
            elif not isinstance(value, cls):
                raise ConfigError(f"{name} must be a {cls.__name__} or a mapping, got {type(value).__name__}")
        if self.routing not in ROUTERS:
            raise ConfigError(f"routing must be one of {sorted(ROUTERS)}, got {self.routing!r}")

    # ------------------------------------------------------------ round trips
    def to_dict(self) -> dict[str, Any]:
        return {
            "placement": self.placement.to_dict(), "batching": self.batching.to_dict(),
            "routing": self.routing, "admission": self.admission.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ServeConfig:
        """Build from a nested dict (as :meth:`to_dict` writes it). Missing settings take their defaults."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ConfigError(f"a serve config must be a mapping, got {type(data).__name__}")
        allowed = [*_SECTIONS, "routing"]
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            flat = [k for k in unknown if k in FLAT_FIELDS]
            hint = f" ({', '.join(f'{k} belongs under {FLAT_FIELDS[k]}' for k in flat)})" if flat else ""
            raise ConfigError(f"unknown serve config key(s) {unknown}{hint}; allowed: {allowed}")
        kwargs: dict[str, Any] = {k: _SECTIONS[k].from_dict(v or {}) for k, v in data.items() if k in _SECTIONS}
        if "routing" in data:
            kwargs["routing"] = data["routing"]
        return cls(**kwargs)

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, source: str | Path) -> ServeConfig:
        """Parse YAML text, or read a ``.yaml``/``.yml`` file when given a path."""
        import yaml

        text = Path(source).read_text() if isinstance(source, Path) or str(source).endswith((".yaml", ".yml")) else source
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"serve config is not valid YAML: {exc}") from None
        return cls.from_dict(data)

    # ------------------------------------------------------------ changes
    def flat(self) -> dict[str, Any]:
        """Every setting by its flat name (``max_batch_size``, ``replicas``, ``routing``, ...)."""
        return {name: (self.routing if section is None else getattr(getattr(self, section), name))
                for name, section in FLAT_FIELDS.items()}

    def replace(self, **changes: Any) -> ServeConfig:
        """A new config with settings changed by flat name (``max_batch_size=16``) or whole sections
        (``batching={...}`` or ``batching=BatchingConfig(...)``); validated like any other."""
        sections: dict[str, dict[str, Any]] = {name: getattr(self, name).to_dict() for name in _SECTIONS}
        routing = self.routing
        for key, value in changes.items():
            if key in _SECTIONS:
                sections[key] = value.to_dict() if isinstance(value, _Section) else {**sections[key], **dict(value)}
            elif key == "routing":
                routing = value
            elif key in FLAT_FIELDS:
                sections[str(FLAT_FIELDS[key])][key] = value
            else:
                raise ConfigError(f"unknown serve setting {key!r}; allowed: {sorted([*FLAT_FIELDS, *_SECTIONS])}")
        return ServeConfig.from_dict({**sections, "routing": routing})

    def diff(self, other: ServeConfig) -> dict[str, list[Any]]:
        """``{setting: [mine, other's]}`` for every flat setting that differs."""
        mine, theirs = self.flat(), other.flat()
        return {k: [mine[k], theirs[k]] for k in mine if mine[k] != theirs[k]}


def configs_for_models(models: list[str], config: Any) -> dict[str, ServeConfig]:
    """One config per model from what a user gave: ``None`` (defaults), one ``ServeConfig`` (or its dict)
    for every model, or a mapping of model name to config (missing names get the defaults)."""
    if config is None or isinstance(config, ServeConfig):
        return {name: as_serve_config(config) for name in models}
    if not isinstance(config, Mapping):
        raise ConfigError(f"config must be a ServeConfig or a mapping, got {type(config).__name__}")
    if set(config) <= {*_SECTIONS, "routing"}:  # one config, as a dict, for every model
        return {name: as_serve_config(dict(config)) for name in models}
    unknown = sorted(set(config) - set(models))
    if unknown:
        raise ConfigError(f"config names model(s) {unknown} that are not served; served: {sorted(models)}")
    return {name: as_serve_config(config.get(name)) for name in models}


def as_serve_config(value: ServeConfig | Mapping[str, Any] | None) -> ServeConfig:
    """Accept a ServeConfig, a nested mapping, or None (the defaults)."""
    if isinstance(value, ServeConfig):
        return value
    if value is None or isinstance(value, Mapping):
        return ServeConfig.from_dict(None if value is None else dict(value))
    raise ConfigError(f"expected a ServeConfig or a mapping, got {type(value).__name__}")


__all__ = [
    "FLAT_FIELDS", "RESTART_FIELDS", "AdmissionConfig", "BatchingConfig", "PlacementConfig", "ServeConfig",
    "as_serve_config", "configs_for_models",
]
