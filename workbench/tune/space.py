"""The tuner's search space: the values each knob may take, and which configs fit the machine.

::

    SearchSpace(replicas=(1, 2), max_batch_size=(1, 8, 32), max_delay_ms=(0.0, 1.0, 5.0),
                routing=("least_outstanding", "round_robin"), variants=("original", "int8"))

A config is a flat dict of serve settings (names from ``ServeConfig.flat()``) plus ``variant``.
``variants=()`` (the default) means every variant the tuner was given, ``"original"`` included.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from workbench.errors import ConfigError

#: the serve settings the tuner may search (flat names), in the order configs list them
SERVE_KNOBS = ("replicas", "stages", "threads_per_worker", "max_batch_size", "max_delay_ms", "routing")
#: every knob, the model variant included
KNOBS = (*SERVE_KNOBS, "variant")
#: knobs that change live (no new worker processes)
LIVE_KNOBS = ("max_batch_size", "max_delay_ms", "routing")


def _values(name: str, value: Any) -> tuple[Any, ...]:
    if isinstance(value, (str, int, float)):
        value = (value,)
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{name} must be a list of values to try, got {value!r}")
    values = tuple(value)
    if len(set(values)) != len(values):
        raise ConfigError(f"{name} lists a value twice: {list(values)}")
    return values


@dataclass(frozen=True, kw_only=True)
class SearchSpace:
    """The values to try per knob. Each serve setting must list at least one value; every value is
    checked as ``ServeConfig`` would check it. ``variants`` names model variants (``"original"`` is the
    model as given); empty means all the variants the tuner has."""

    replicas: tuple[int, ...] = (1, 2)
    stages: tuple[int, ...] = (1,)
    threads_per_worker: tuple[int, ...] = (1,)
    max_batch_size: tuple[int, ...] = (1, 8, 32)
    max_delay_ms: tuple[float, ...] = (0.0, 1.0, 5.0)
    routing: tuple[str, ...] = ("least_outstanding", "round_robin")
    variants: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        from workbench.serving.config import ServeConfig

        base = ServeConfig()
        for name in SERVE_KNOBS:
            values = _values(name, getattr(self, name))
            if not values:
                raise ConfigError(f"the search space is empty: {name} must list at least one value to try")
            for v in values:
                if name == "max_delay_ms" and isinstance(v, int) and not isinstance(v, bool):
                    v = float(v)
                base.replace(**{name: v})  # raises ConfigError naming the setting and what is allowed
            if name == "max_delay_ms":
                values = tuple(float(v) for v in values)
            object.__setattr__(self, name, values)
        variants = _values("variants", self.variants)
        for v in variants:
            if not isinstance(v, str) or not v:
                raise ConfigError(f"variants must be variant names such as 'original' or 'int8', got {v!r}")
        object.__setattr__(self, "variants", variants)

    # ------------------------------------------------------------ round trip
    def to_dict(self) -> dict[str, list[Any]]:
        return {f.name: list(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SearchSpace:
        """Build from a mapping of knob -> values; missing knobs take the defaults."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ConfigError(f"a search space must be a mapping of knob -> values, got {type(data).__name__}")
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ConfigError(f"unknown knob(s) {unknown} in the search space; allowed: {allowed}")
        return cls(**{k: _values(k, v) for k, v in data.items()})

    def replace(self, **changes: Any) -> SearchSpace:
        return SearchSpace.from_dict({**self.to_dict(), **changes})

    # ------------------------------------------------------------ configs
    def with_variants(self, available: list[str]) -> SearchSpace:
        """This space with ``variants`` resolved against the variants the tuner has."""
        if not self.variants:
            return self.replace(variants=list(available))
        missing = [v for v in self.variants if v not in available]
        if missing:
            raise ConfigError(f"the search space names variant(s) {missing} the tuner was not given; "
                              f"given: {available} (pass variants={{name: model}} to the Tuner)")
        return self

    def knobs(self) -> dict[str, tuple[Any, ...]]:
        """Knob -> values, ``variant`` included (as a knob name, singular)."""
        out: dict[str, tuple[Any, ...]] = {k: getattr(self, k) for k in SERVE_KNOBS}
        out["variant"] = self.variants or ("original",)
        return out

    @property
    def size(self) -> int:
        n = 1
        for values in self.knobs().values():
            n *= len(values)
        return n

    def configs(self) -> Iterator[dict[str, Any]]:
        """Every combination, as flat dicts (knob -> value)."""
        knobs = self.knobs()
        for combo in itertools.product(*knobs.values()):
            yield dict(zip(knobs, combo))


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cores_of(config: dict[str, Any]) -> int:
    """Cores a config's workers occupy: replicas × stages × threads per worker."""
    return int(config.get("replicas", 1)) * int(config.get("stages", 1)) * int(config.get("threads_per_worker", 1))


def config_key(config: dict[str, Any]) -> tuple[Any, ...]:
    """A hashable identity of a config (knob order fixed)."""
    return tuple(config.get(k) for k in KNOBS)


def restart_key(config: dict[str, Any]) -> tuple[Any, ...]:
    """What needs new worker processes to change: configs with the same key switch live."""
    return tuple(config.get(k) for k in KNOBS if k not in LIVE_KNOBS)


def prune(space: SearchSpace, *, cores: int, max_stages: int | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """Split the space into configs worth measuring and the reasons the others were pruned: their
    workers need more cores than there are (``cores``), or more stages than the model has layers."""
    kept: list[dict[str, Any]] = []
    reasons: dict[str, int] = {}
    for config in space.configs():
        why = None
        if max_stages is not None and config["stages"] > max_stages:
            why = f"more stages than the model's {max_stages} cuttable layers"
        elif cores_of(config) > cores:
            why = f"needs more than the {cores} core(s) available (replicas × stages × threads_per_worker)"
        if why is None:
            kept.append(config)
        else:
            reasons[why] = reasons.get(why, 0) + 1
    return kept, [f"{n} config(s) {why}" for why, n in reasons.items()]


__all__ = ["KNOBS", "LIVE_KNOBS", "SERVE_KNOBS", "SearchSpace", "available_cores", "config_key", "cores_of",
           "prune", "restart_key"]
