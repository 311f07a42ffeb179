"""HDR latency histograms: percentiles against numpy, exact merges, encoding, vectorized recording."""

from __future__ import annotations

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.telemetry.histogram import HIGHEST_US, LatencyHistogram

DATA = {
    "lognormal": np.random.default_rng(0).lognormal(np.log(0.004), 1.0, 50_000),
    "uniform": np.random.default_rng(1).uniform(0.0001, 0.2, 20_000),
    "bimodal": np.concatenate([np.random.default_rng(2).normal(0.002, 0.0002, 9_900),
                               np.random.default_rng(3).normal(1.0, 0.05, 100)]),
}


def _within_precision(value_s: float, exact_s: float) -> bool:
    # 3 significant digits: a bucket spans at most 0.1 % of its value, or 1 µs below 2 ms
    return abs(value_s - exact_s) <= max(exact_s * 1e-3, 1e-6) + 1e-9


@pytest.mark.parametrize("name", sorted(DATA))
def test_percentiles_match_numpy_within_the_histogram_precision(name):
    data = np.abs(DATA[name])
    hist = LatencyHistogram()
    hist.record_many(data)
    assert hist.count == len(data)
    ordered = np.sort(data)
    for p in (50, 90, 99, 99.9):
        # HdrHistogram's rank: the nearest rank to p·n (numpy's inverted_cdf takes the next one up on ties)
        rank = max(1, int(p * len(data) / 100 + 0.5))
        exact = float(ordered[rank - 1])
        assert _within_precision(hist.percentile(p), exact), (p, hist.percentile(p), exact)
        if p <= 90:  # where the data are dense, numpy's own (interpolated) percentile agrees too
            assert hist.percentile(p) == pytest.approx(float(np.percentile(data, p)), rel=2e-3, abs=2e-6)
    assert _within_precision(hist.max_s, float(data.max()))
    assert hist.mean_s == pytest.approx(float(data.mean()), rel=1e-3)
    stats = hist.stats()
    assert stats.count == len(data) and stats.p99_ms == hist.percentile(99) * 1e3


def test_merged_histograms_equal_one_histogram_of_all_the_data():
    data = DATA["lognormal"]
    whole = LatencyHistogram()
    whole.record_many(data)
    parts = []
    for chunk in np.array_split(data, 7):  # as if from 7 processes, each sent encoded
        part = LatencyHistogram()
        part.record_many(chunk)
        parts.append(part.encode())
    merged = LatencyHistogram.merged(parts)
    assert merged == whole
    np.testing.assert_array_equal(merged.counts(), whole.counts())
    assert merged.stats() == whole.stats()
    assert LatencyHistogram().merge(whole).merge(LatencyHistogram()) == whole


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.floats(0, 100, allow_nan=False), max_size=60), min_size=1, max_size=5))
def test_any_split_merges_back_exactly(chunks):
    whole = LatencyHistogram()
    whole.record_many([v for c in chunks for v in c])
    merged = LatencyHistogram()
    for c in chunks:
        part = LatencyHistogram()
        part.record_many(c)
        merged.merge(LatencyHistogram.decode(part.encode()))
    assert merged == whole and merged.stats() == whole.stats()


def test_vectorized_recording_equals_hdrhistogram_one_value_at_a_time():
    values_us = np.concatenate([[0, 1, 2, 1023, 1024, 2047, 2048, 4096, 65_535, HIGHEST_US],
                                np.random.default_rng(5).integers(0, 10**9, 5000)])
    ours = LatencyHistogram()
    ours.record_many(values_us / 1e6)
    reference = HdrHistogram(1, HIGHEST_US, 3)
    for v in values_us:
        reference.record_value(int(v))
    np.testing.assert_array_equal(ours.counts(), np.ctypeslib.as_array(reference.counts))
    for p in (0.0, 50.0, 99.0, 99.99, 100.0):
        assert ours.percentiles_us([p])[0] == reference.get_value_at_percentile(p)


def test_out_of_range_values_are_clamped_and_counted():
    hist = LatencyHistogram()
    hist.record_many([-1.0, float("nan"), 1e9, 0.5])
    assert hist.count == 4 and hist.clamped == 3
    assert hist.max_s == pytest.approx(HIGHEST_US / 1e6, rel=1e-3)


def test_empty_histogram_and_encoding_round_trip():
    empty = LatencyHistogram()
    assert empty.count == 0 and empty.percentile(99) == 0 and empty.mean_s == 0
    assert LatencyHistogram.decode(empty.encode()) == empty
    assert repr(empty) == "LatencyHistogram(count=0)"
    one = LatencyHistogram()
    one.record(0.0123)
    assert one.count_above(0.012) == 1 and one.count_above(0.0124) == 0
    assert LatencyHistogram.decode(one.encode().encode()) == one  # bytes or str


def test_bucket_layout_equals_hdrhistogram_index_by_index():
    from workbench.telemetry.histogram import LOWEST_US, SIGNIFICANT_DIGITS, _layout

    lowest, highest, _ = _layout(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
    h = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
    assert len(lowest) == h.counts_len
    assert lowest.tolist() == [h.get_value_from_index(i) for i in range(h.counts_len)]
    assert highest.tolist() == [h.get_highest_equivalent_value(int(v)) for v in lowest]
