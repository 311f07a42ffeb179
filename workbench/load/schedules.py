"""Load schedules: when requests are due (open loop) or how many clients loop (closed loop).

Open-loop schedules produce *intended send times*; the generator measures each request's latency
from its intended time, so a stall anywhere shows in the latencies of every request that was due
during it (no coordinated omission). Time-varying rates (step, ramp, spike) are turned into arrival
times by inverting the cumulative rate, deterministically evenly spaced or, with ``poisson=True``,
as a Poisson process with that rate (seeded, so a run repeats exactly).

Each schedule is a frozen keyword-only config with ``to_dict()``/``from_dict()``; ``parse_schedule``
reads the CLI form ``KIND[:VALUE,...][,key=value,...]`` with list values separated by ``/``, e.g.
``poisson:200``, ``step:rates=100/200/400,step_s=2``, ``spike:100,1000,at_s=3,length_s=1``, ``closed:8``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import numpy as np

from workbench.errors import ConfigError

MAX_RATE = 1_000_000.0
MAX_ARRIVALS = 50_000_000


def _check_rate(name: str, value: float, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a number of requests per second, got {value!r}")
    low_ok = value >= 0 if allow_zero else value > 0
    if not low_ok or value > MAX_RATE:
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be {bound} and <= {MAX_RATE:g} requests/s, got {value}")
    return float(value)


def _check_seconds(name: str, value: float, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a number of seconds, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name} must be {'>= 0' if allow_zero else '> 0'} seconds, got {value}")
    return float(value)


class Schedule:
    """Base of every schedule. ``kind`` names it in dicts and on the command line."""

    kind: ClassVar[str]
    open_loop: ClassVar[bool] = True

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)  # type: ignore[call-overload]
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return {"kind": self.kind, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schedule:
        return schedule_from_dict(data)

    def describe(self) -> str:
        values = ", ".join(f"{k}={v}" for k, v in self.to_dict().items() if k != "kind")
        return f"{self.kind}({values})"


class OpenLoop(Schedule):
    """A schedule of intended send times."""

    def rate_at(self, t: np.ndarray, duration_s: float) -> np.ndarray:
        raise NotImplementedError

    def _seed(self) -> int | None:
        return getattr(self, "seed", 0) if getattr(self, "poisson", False) else None

    def mean_rate(self, duration_s: float) -> float:
        """The schedule's average rate over ``duration_s`` (what the run should achieve)."""
        t, cumulative = self._cumulative(duration_s)
        return float(cumulative[-1] / duration_s)

    def _cumulative(self, duration_s: float) -> tuple[np.ndarray, np.ndarray]:
        n = max(1, min(1_000_000, math.ceil(duration_s * 1000)))  # steps of <= 1 ms, or a million steps
        t = np.linspace(0.0, duration_s, n + 1)
        mid = (t[:-1] + t[1:]) / 2
        # sum the rates first and scale once: exact for piecewise-constant rates on the grid
        cumulative = np.concatenate(([0.0], np.cumsum(self.rate_at(mid, duration_s)))) * (duration_s / n)
        return t, cumulative

    def arrivals(self, duration_s: float, *, part: int = 0, parts: int = 1) -> np.ndarray:
        """Intended send times (seconds from the start, < ``duration_s``), every ``parts``-th from ``part``.

        Splitting by parts keeps the union of all parts exactly the whole schedule.
        """
        duration_s = _check_seconds("duration_s", duration_s)
        t, cumulative = self._cumulative(duration_s)
        total = cumulative[-1]
        if total > MAX_ARRIVALS:
            raise ConfigError(f"{self.describe()} over {duration_s:g} s makes {total:.0f} requests; "
                              f"at most {MAX_ARRIVALS} are allowed in one run: shorten it")
        seed = self._seed()
        if seed is None:
            marks = np.arange(0.0, total - 1e-9)
        else:
            rng = np.random.default_rng(seed)
            gaps = rng.exponential(1.0, size=int(total + 6 * math.sqrt(total + 1) + 10))
            marks = np.cumsum(gaps) - gaps[0]  # the first request is due at the start
            marks = marks[marks < total]
        times = np.interp(marks, cumulative, t)
        times = times[times < duration_s]
        return times[part::parts]


@dataclass(frozen=True, kw_only=True)
class Constant(OpenLoop):
    """Evenly spaced requests at ``rate`` per second."""

    kind: ClassVar[str] = "constant"
    rate: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate", _check_rate("rate", self.rate))

    def rate_at(self, t: np.ndarray, duration_s: float) -> np.ndarray:
        return np.full_like(t, self.rate)

    def arrivals(self, duration_s: float, *, part: int = 0, parts: int = 1) -> np.ndarray:
        duration_s = _check_seconds("duration_s", duration_s)
        n = math.ceil(duration_s * self.rate - 1e-9)
        if n > MAX_ARRIVALS:
            raise ConfigError(f"{self.describe()} over {duration_s:g} s makes {n} requests; "
                              f"at most {MAX_ARRIVALS} are allowed in one run: shorten it")
        return (np.arange(n, dtype=np.float64) / self.rate)[part::parts]


@dataclass(frozen=True, kw_only=True)
class Poisson(OpenLoop):
    """A Poisson process: exponential gaps with mean ``1/rate``, seeded."""

    kind: ClassVar[str] = "poisson"
    rate: float
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate", _check_rate("rate", self.rate))

    def _seed(self) -> int | None:
        return self.seed

    def rate_at(self, t: np.ndarray, duration_s: float) -> np.ndarray:
        return np.full_like(t, self.rate)


@dataclass(frozen=True, kw_only=True)
class Step(OpenLoop):
    """``rates[0]`` for ``step_s`` seconds, then ``rates[1]``, ...; the last rate holds to the end."""

    kind: ClassVar[str] = "step"
    rates: tuple[float, ...]
    step_s: float
    poisson: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        rates = self.rates if isinstance(self.rates, (list, tuple)) else (self.rates,)
        if not rates:
            raise ConfigError("step: rates must list at least one rate")
        object.__setattr__(self, "rates", tuple(_check_rate("rates[]", r) for r in rates))
        object.__setattr__(self, "step_s", _check_seconds("step_s", self.step_s))

    def rate_at(self, t: np.ndarray, duration_s: float) -> np.ndarray:
        step = np.minimum((t // self.step_s).astype(np.int64), len(self.rates) - 1)
        return np.asarray(self.rates)[step]


@dataclass(frozen=True, kw_only=True)
class Ramp(OpenLoop):
    """The rate moves linearly from ``start_rate`` to ``end_rate`` over ``ramp_s`` (default: the run)."""

    kind: ClassVar[str] = "ramp"
    start_rate: float
    end_rate: float
    ramp_s: float | None = None
    poisson: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "start_rate", _check_rate("start_rate", self.start_rate, allow_zero=True))
        object.__setattr__(self, "end_rate", _check_rate("end_rate", self.end_rate, allow_zero=True))
        if self.start_rate == 0 and self.end_rate == 0:
            raise ConfigError("ramp: start_rate and end_rate cannot both be 0")
        if self.ramp_s is not None:
            object.__setattr__(self, "ramp_s", _check_seconds("ramp_s", self.ramp_s))

    def rate_at(self, t: np.ndarray, duration_s: float) -> np.ndarray:
        length = self.ramp_s if self.ramp_s is not None else duration_s
        frac = np.clip(t / length, 0.0, 1.0)
        return self.start_rate + (self.end_rate - self.start_rate) * frac


@dataclass(frozen=True, kw_only=True)
class Spike(OpenLoop):
    """``base_rate``, except ``spike_rate`` from ``at_s`` for ``length_s`` seconds."""

    kind: ClassVar[str] = "spike"
    base_rate: float
    spike_rate: float
    at_s: float
    length_s: float
    poisson: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_rate", _check_rate("base_rate", self.base_rate))
        object.__setattr__(self, "spike_rate", _check_rate("spike_rate", self.spike_rate))
        object.__setattr__(self, "at_s", _check_seconds("at_s", self.at_s, allow_zero=True))
        object.__setattr__(self, "length_s", _check_seconds("length_s", self.length_s))

    def rate_at(self, t: np.ndarray, duration_s: float) -> np.ndarray:
        inside = (t >= self.at_s) & (t < self.at_s + self.length_s)
        return np.where(inside, self.spike_rate, self.base_rate)


@dataclass(frozen=True, kw_only=True)
class Closed(Schedule):
    """Closed loop: ``concurrency`` clients, each sends its next request when the last one answered."""

    kind: ClassVar[str] = "closed"
    open_loop: ClassVar[bool] = False
    concurrency: int
    think_ms: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.concurrency, bool) or not isinstance(self.concurrency, int) or not 1 <= self.concurrency <= 100_000:
            raise ConfigError(f"concurrency must be an integer between 1 and 100000, got {self.concurrency!r}")
        if isinstance(self.think_ms, bool) or not isinstance(self.think_ms, (int, float)) or self.think_ms < 0:
            raise ConfigError(f"think_ms must be >= 0, got {self.think_ms!r}")

    def split(self, parts: int) -> list[int]:
        """Clients per part when the load is spread over ``parts`` processes."""
        if parts > self.concurrency:
            raise ConfigError(f"cannot spread {self.concurrency} clients over {parts} processes; "
                              f"use processes <= concurrency")
        return [self.concurrency // parts + (1 if i < self.concurrency % parts else 0) for i in range(parts)]


SCHEDULES: dict[str, type[Schedule]] = {c.kind: c for c in (Constant, Poisson, Step, Ramp, Spike, Closed)}


def schedule_from_dict(data: dict[str, Any]) -> Schedule:
    """Build a schedule from ``{"kind": ..., field: value, ...}``."""
    if not isinstance(data, dict) or "kind" not in data:
        raise ConfigError(f"a schedule needs a 'kind' (one of {sorted(SCHEDULES)}), got {data!r}")
    kind = data["kind"]
    cls = SCHEDULES.get(kind)
    if cls is None:
        raise ConfigError(f"unknown schedule kind {kind!r}; allowed: {sorted(SCHEDULES)}")
    allowed = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(allowed) - {"kind"})
    if unknown:
        raise ConfigError(f"{kind} schedule: unknown field(s) {unknown}; allowed: {allowed}")
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k != "kind"}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{kind} schedule: {exc}; fields: {allowed}") from None


def _parse_value(text: str) -> Any:
    text = text.strip()
    if "/" in text:
        return [_parse_value(part) for part in text.split("/") if part.strip()]
    if text.lower() in ("true", "yes"):
        return True
    if text.lower() in ("false", "no"):
        return False
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{text!r} is not a number") from None


def parse_schedule(text: str) -> Schedule:
    """Parse ``KIND[:VALUE,...][,key=value,...]`` (see the module docstring)."""
    kind, _, rest = text.strip().partition(":")
    kind = kind.strip().lower()
    cls = SCHEDULES.get(kind)
    if cls is None:
        raise ConfigError(f"unknown schedule {kind!r} in {text!r}; allowed: {sorted(SCHEDULES)}, "
                          f"e.g. 'poisson:200' or 'step:rates=100/200,step_s=2'")
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    data: dict[str, Any] = {"kind": kind}
    positional = 0
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            if positional >= len(names):
                raise ConfigError(f"too many values in {text!r}; {kind} takes {names}")
            key, value = names[positional], item
            positional += 1
        try:
            data[key.strip()] = _parse_value(value)
        except ConfigError as exc:
            raise ConfigError(f"schedule {text!r}: {key.strip()}: {exc}") from None
    if kind == "step" and "rates" in data and not isinstance(data["rates"], list):
        data["rates"] = [data["rates"]]
    if kind == "closed" and isinstance(data.get("concurrency"), float):
        raise ConfigError(f"closed: concurrency must be an integer, got {data['concurrency']}")
    return schedule_from_dict(data)


__all__ = ["SCHEDULES", "Closed", "Constant", "OpenLoop", "Poisson", "Ramp", "Schedule", "Spike", "Step",
           "parse_schedule", "schedule_from_dict"]
