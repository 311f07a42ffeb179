"""Latency histograms: HDR histograms (the ``hdrhistogram`` package) with vectorized recording.

Values are recorded in whole microseconds, 3 significant digits, from 1 µs to 1 hour; the public API
takes and returns seconds. Percentiles follow HdrHistogram's definition (the highest value equivalent
to the bucket that holds the requested rank), so they agree with ``numpy.percentile`` on the same data
within the histogram's precision (0.1 % of the value, or 1 µs). Histograms encode to HdrHistogram's
standard base64 form, so they travel between processes and into run records, and two histograms
merge exactly: the merge of parts equals the histogram of all the data, count for count.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour
SIGNIFICANT_DIGITS = 3
#: The percentiles a window or a summary reports.
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


@dataclass(frozen=True, kw_only=True)
class LatencyStats:
    """Percentiles of one histogram, in milliseconds."""

    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyStats:
        return cls(**data)


@functools.lru_cache(maxsize=4)
def _layout(lowest_us: int, highest_us: int, digits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every counts index: the lowest, highest and median value it stands for (µs).

    HdrHistogram's ``get_value_from_index`` and ``get_highest_equivalent_value``, vectorized.
    """
    h = HdrHistogram(lowest_us, highest_us, digits)
    index = np.arange(h.counts_len, dtype=np.int64)
    bucket = (index >> h.sub_bucket_half_count_magnitude) - 1
    sub_bucket = (index & (h.sub_bucket_half_count - 1)) + h.sub_bucket_half_count
    first = bucket < 0
    sub_bucket[first] -= h.sub_bucket_half_count
    bucket[first] = 0
    lowest = sub_bucket << (bucket + h.unit_magnitude)
    highest = lowest + (np.int64(1) << (bucket + h.unit_magnitude)) - 1
    median = (lowest + (highest - lowest + 1) // 2).astype(np.float64)
    return lowest, highest, median


class LatencyHistogram:
    """An HDR latency histogram. Record seconds one at a time or many at once (numpy, vectorized)."""

    __slots__ = ("_h", "_counts", "clamped")

    def __init__(self, _hdr: HdrHistogram | None = None) -> None:
        self._h = _hdr if _hdr is not None else HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
        self._counts = np.ctypeslib.as_array(self._h.counts)
        self.clamped = 0  # values outside 0..1 h that were clamped into range

    # -- recording ---------------------------------------------------------------------------
    def record(self, value_s: float) -> None:
        self.record_many((value_s,))

    def record_many(self, values_s: Iterable[float] | np.ndarray) -> None:
        """Record many latencies (seconds) at once; the cost is a few numpy passes, not a Python loop."""
        values = np.asarray(values_s, dtype=np.float64).ravel()
        if values.size == 0:
            return
        us = np.rint(values * 1e6)
        clamped = (us < 0) | (us > HIGHEST_US) | ~np.isfinite(us)
        if clamped.any():
            self.clamped += int(clamped.sum())
            us = np.clip(np.nan_to_num(us, nan=0.0, posinf=HIGHEST_US), 0, HIGHEST_US)
        v = us.astype(np.int64)
        self._counts_add(v)

    def _counts_add(self, v: np.ndarray) -> None:
        h = self._h
        # the same index arithmetic as HdrHistogram.record_value, vectorized
        _, pow2ceiling = np.frexp((v | h.sub_bucket_mask).astype(np.float64))
        bucket = pow2ceiling.astype(np.int64) - h.unit_magnitude - (h.sub_bucket_half_count_magnitude + 1)
        sub_bucket = v >> (bucket + h.unit_magnitude)
        index = ((bucket + 1) << h.sub_bucket_half_count_magnitude) + sub_bucket - h.sub_bucket_half_count
        np.add.at(self._counts, index, 1)
        h.total_count += int(v.size)
        h.min_value = min(h.min_value, int(v.min()))
        h.max_value = max(h.max_value, int(v.max()))

    # -- reading -----------------------------------------------------------------------------
    @property
    def count(self) -> int:
        return int(self._h.total_count)

    def percentiles_us(self, percentiles: Sequence[float]) -> list[int]:
        """Values (µs) at the given percentiles (0..100), as HdrHistogram defines them; 0 when empty."""
        total = self.count
        if total == 0:
            return [0 for _ in percentiles]
        lowest, highest, _ = _layout(self._h.lowest_trackable_value, self._h.highest_trackable_value,
                                     self._h.significant_figures)
        cumulative = np.cumsum(self._counts)
        out = []
        for p in percentiles:
            target = max(int(min(p, 100.0) * total / 100 + 0.5), 1)
            index = int(np.searchsorted(cumulative, target, side="left"))
            out.append(int(highest[index] if p > 0 else lowest[index]))
        return out

    def percentile(self, percentile: float) -> float:
        """The latency (seconds) at ``percentile`` (0..100)."""
        return self.percentiles_us([percentile])[0] / 1e6

    @property
    def max_s(self) -> float:
        """The largest value, as the highest value equivalent to it (what percentile 100 reports)."""
        return self.percentiles_us([100.0])[0] / 1e6

    @property
    def mean_s(self) -> float:
        if self.count == 0:
            return 0.0
        _, _, median = _layout(self._h.lowest_trackable_value, self._h.highest_trackable_value,
                               self._h.significant_figures)
        return float((self._counts * median).sum() / self.count / 1e6)  # no BLAS: np.dot wakes its threads

    def count_above(self, value_s: float) -> int:
        """How many recorded values are certainly above ``value_s`` (whole buckets above it)."""
        lowest, _, _ = _layout(self._h.lowest_trackable_value, self._h.highest_trackable_value,
                               self._h.significant_figures)
        return int(self._counts[lowest > value_s * 1e6].sum())

    def stats(self) -> LatencyStats:
        p50, p90, p99, p999, top = self.percentiles_us([*PERCENTILES, 100.0])
        return LatencyStats(count=self.count, mean_ms=round(self.mean_s * 1e3, 4), p50_ms=p50 / 1e3,
                            p90_ms=p90 / 1e3, p99_ms=p99 / 1e3, p999_ms=p999 / 1e3, max_ms=top / 1e3)

    # -- merging and encoding ----------------------------------------------------------------
    def merge(self, other: LatencyHistogram) -> LatencyHistogram:
        """Add ``other``'s counts into this histogram (exact) and return self."""
        if other.count:
            self._h.add(other._h)
        self.clamped += other.clamped
        return self

    def copy(self) -> LatencyHistogram:
        return LatencyHistogram().merge(self)

    def encode(self) -> str:
        """HdrHistogram's standard compressed base64 form."""
        return self._h.encode().decode("ascii")

    @classmethod
    def decode(cls, encoded: str | bytes) -> LatencyHistogram:
        data = encoded.encode("ascii") if isinstance(encoded, str) else encoded
        return cls(HdrHistogram.decode(data))

    @classmethod
    def merged(cls, histograms: Iterable[LatencyHistogram | str | bytes]) -> LatencyHistogram:
        """One histogram holding every count of ``histograms`` (histograms or their encodings)."""
        out = cls()
        for h in histograms:
            out.merge(h if isinstance(h, LatencyHistogram) else cls.decode(h))
        return out

    def counts(self) -> np.ndarray:
        """A copy of the raw counts array (for exact comparisons)."""
        return self._counts.copy()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LatencyHistogram):
            return NotImplemented
        return self.count == other.count and bool(np.array_equal(self._counts, other._counts))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if not self.count:
            return "LatencyHistogram(count=0)"
        s = self.stats()
        return f"LatencyHistogram(count={s.count}, p50_ms={s.p50_ms}, p99_ms={s.p99_ms}, max_ms={s.max_ms})"


__all__ = ["PERCENTILES", "LatencyHistogram", "LatencyStats"]
