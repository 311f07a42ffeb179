"""The live figures' data sources: windows stream in bounded, changes become markers."""

from __future__ import annotations

import math

import pytest

from workbench.ui.plots import LivePlots

from .conftest import make_window


@pytest.fixture
def plots():
    return LivePlots(rollover=5, batch_windows=2, worker_windows=1)


def test_windows_stream_into_the_series_with_rollover(plots):
    windows = [make_window(i, latencies_ms=[float(i + 1)] * 20) for i in range(8)]
    plots.push(windows[:3], windows[:3])
    assert plots.source.data["t"] == [0.5, 1.0, 1.5]
    plots.push(windows[3:], windows)
    assert plots.source.data["t"] == [2.0, 2.5, 3.0, 3.5, 4.0]  # only the last `rollover` points stay
    assert plots.source.data["p50"] == pytest.approx([4.0, 5.0, 6.0, 7.0, 8.0], rel=0.01)
    assert math.isnan(plots.source.data["compute_p99"][0])


def test_config_changes_become_markers_on_every_time_series(plots):
    plots.push([make_window(0), make_window(1, changes=[{"at_s": 0.8, "description": "max_batch_size 32 → 8"}])], [])
    assert plots.changes.data["t"] == [0.8] and plots.changes.data["text"] == ["max_batch_size 32 → 8"]
    for fig in (plots.latency, plots.server, plots.throughput, plots.queue):
        assert any(r.data_source is plots.changes for r in fig.renderers), fig.title.text
    assert plots.latency.x_range is plots.throughput.x_range  # one time axis
    plots.push([make_window(2)], [])
    assert plots.changes.data["t"] == [0.8]  # nothing new: markers stay


def test_distributions_are_redrawn_from_the_recent_windows(plots):
    recent = [make_window(0, batch_sizes={1: 10}, worker_busy={"mlp/r0": 0.1}),
              make_window(1, batch_sizes={4: 2}, worker_busy={"mlp/r0": 0.5, "mlp/r1": 0.25})]
    plots.push(recent, recent)
    assert plots.batches.data["size"] == [1, 4] and plots.batches.data["batches"] == [10, 2]
    assert plots.workers.data["worker"] == ["mlp/r0", "mlp/r1"]  # worker_windows=1: the last window only
    assert plots.workers.data["percent"] == pytest.approx([50.0, 25.0])
    assert list(plots.utilization.y_range.factors) == ["mlp/r0", "mlp/r1"]
    plots.push([], recent)  # no new window: nothing redrawn
    assert plots.batches.data["size"] == [1, 4]
