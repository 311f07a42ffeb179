"""What the tuner searches for and what each of its trials found.

::

    Objective(p99_ms=20, rate=300)                    # p99 <= 20 ms at 300 req/s
    Objective(p99_ms=20)                              # the highest rate with p99 <= 20 ms
    Objective(p99_ms=20, rate=300, min_accuracy=0.97) # ... among variants at least this accurate

A :class:`Trial` is one measured configuration (serve settings + model variant). Trials are plain,
frozen values: the tuner hands them to its subscribers (dashboard, notebook, CLI) as they finish.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class Objective:
    """A latency objective: p99 at most ``p99_ms`` at ``rate`` requests/s, or (``rate=None``) the highest
    rate that keeps p99 at most ``p99_ms``. ``min_accuracy`` (a fraction in 0..1) excludes variants below it."""

    p99_ms: float
    rate: float | None = None
    min_accuracy: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.p99_ms, bool) or not isinstance(self.p99_ms, (int, float)) \
                or not math.isfinite(self.p99_ms) or self.p99_ms <= 0:
            raise ConfigError(f"p99_ms must be a number > 0, got {self.p99_ms!r}")
        if self.rate is not None and (isinstance(self.rate, bool) or not isinstance(self.rate, (int, float))
                                      or not math.isfinite(self.rate) or self.rate <= 0):
            raise ConfigError(f"rate must be a number of requests/s > 0 (or None for the highest rate), got {self.rate!r}")
        if self.min_accuracy is not None and (isinstance(self.min_accuracy, bool)
                                              or not isinstance(self.min_accuracy, (int, float))
                                              or not 0 <= self.min_accuracy <= 1):
            raise ConfigError(f"min_accuracy must be a fraction in 0..1 (0.97 = 97%), got {self.min_accuracy!r}")

    @property
    def max_rate(self) -> bool:
        """Whether the objective is the highest rate under the latency bound."""
        return self.rate is None

    def describe(self) -> str:
        where = f"at {self.rate:g} req/s" if self.rate is not None else "at the highest rate"
        floor = f", accuracy >= {self.min_accuracy:.1%}" if self.min_accuracy is not None else ""
        return f"p99 <= {self.p99_ms:g} ms {where}{floor}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, kw_only=True)
class Trial:
    """One measured configuration.

    ``config`` holds the flat serve settings tried (names from ``workbench.serving.config.FLAT_FIELDS``),
    ``variant`` the model variant's name (``"original"`` for the uncompressed model). ``rate`` is the
    offered rate (for a highest-rate objective: the highest rate that met the bound, 0 if none did);
    ``throughput`` the completed requests/s; ``p50_ms``/``p99_ms`` client-side latency at that rate.
    ``meets`` says whether the trial met the objective; ``stopped_early`` that it was cut short once it
    clearly could not (``reason`` says why, in words). ``measured_s`` is the load time it cost and
    ``run_id`` names its run record. ``score`` orders trials (higher is better; ``None`` when it failed).
    """

    number: int
    config: dict[str, Any]
    variant: str = "original"
    rate: float = 0.0
    throughput: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int = 0
    accuracy: float | None = None
    cores: int = 1
    meets: bool = False
    stopped_early: bool = False
    reason: str = ""
    measured_s: float = 0.0
    run_id: str | None = None
    score: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A flat row (config settings inlined) for tables and DataFrames."""
        row = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("config", "extra")}
        return {**row, **self.config, **self.extra}


__all__ = ["Objective", "Trial"]
