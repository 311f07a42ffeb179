"""Run records on disk: the round trip, listing, finding by id, and comparing two runs."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from workbench.errors import ConfigError
from workbench.telemetry.runs import RunRecord, compare_runs, environment, flatten, list_runs, runs_dir


def save(windows, *, rate=100.0, p99=5.0, throughput=99.5, **context):
    ctx = {"model": "mlp", "variant": "fp32", "schedule": {"kind": "constant", "rate": rate},
           "serve_config": {"batching": {"max_batch_size": 8}}, **environment(), **context}
    summary = {"latency_p99_ms": p99, "throughput_rps": throughput, "errors": 0, "generator_limited": False,
               "schedule": f"constant(rate={rate})"}
    return RunRecord.create(context=ctx, windows=windows, summary=summary)


def test_a_run_record_round_trips(make_windows, runs_folder):
    windows = make_windows([0.001, 0.004, 0.02])
    record = save(windows)
    assert record.path.parent == runs_folder == runs_dir()
    assert sorted(p.name for p in record.path.iterdir()) == ["context.json", "summary.json", "windows.jsonl"]
    loaded = RunRecord.load(record.id)
    assert loaded == record and loaded.windows == tuple(windows)
    assert loaded.context["id"] == record.id and loaded.context["serve_config"]["batching"]["max_batch_size"] == 8
    assert loaded.windows[0].server_latency.count == 3 and loaded.windows[0].latency.count == 3
    lines = (record.path / "windows.jsonl").read_text().splitlines()
    assert [json.loads(line)["index"] for line in lines] == [0, 1, 2]  # plain JSON lines, one per window
    frame = loaded.to_frame()
    assert len(frame) == 3 and frame["latency_count"].tolist() == [3, 3, 3]


def test_runs_are_listed_and_found_by_prefix_or_suffix(make_windows, runs_folder):
    first, second = save(make_windows([0.001])), save(make_windows([0.002]), rate=200)
    assert [r["id"] for r in list_runs()] == [first.id, second.id]
    assert RunRecord.load(second.id[-6:]).id == second.id
    assert RunRecord.load(str(second.path)).id == second.id
    with pytest.raises(ConfigError, match="matches 2 runs"):
        RunRecord.load(first.id[:4])
    with pytest.raises(ConfigError, match="no run 'zzz'"):
        RunRecord.load("zzz")
    (first.path / "summary.json").write_text("{not json")
    with pytest.raises(ConfigError, match="incomplete or damaged"):
        RunRecord.load(first.id)
    assert [r["id"] for r in list_runs()] == [second.id]  # a damaged run is skipped in listings
    (runs_folder / ".half-written.tmp").mkdir()
    assert len(list_runs()) == 1


def test_compare_lists_differing_context_and_summary_side_by_side(make_windows):
    a = save(make_windows([0.001]), rate=100, p99=5.0, throughput=99.5)
    b = save(make_windows([0.001]), rate=200, p99=20.0, throughput=150.0, variant="int8")
    frame = compare_runs(a.id, b.id)
    context = frame[frame.section == "context"].set_index("field")
    assert set(context.index) == {"schedule.rate", "variant"}  # ids, times and equal fields are left out
    assert context.loc["schedule.rate", "ratio"] == 2.0 and context.loc["variant", "b"] == "int8"
    summary = frame[frame.section == "summary"].set_index("field")
    assert summary.loc["latency_p99_ms", "ratio"] == 4.0
    assert summary.loc["throughput_rps", "a"] == 99.5 and summary.loc["throughput_rps", "b"] == 150.0
    assert pd.isna(summary.loc["generator_limited", "ratio"])  # no ratio of booleans or strings
    assert frame.attrs == {"a": a.id, "b": b.id}


def test_flatten_and_the_runs_folder_setting(monkeypatch, tmp_path):
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": {}}) == {"a.b": 1, "a.c.d": [1, 2], "e": {}}
    monkeypatch.delenv("WORKBENCH_RUNS")
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    assert runs_dir() == tmp_path / "home" / "runs"
    monkeypatch.delenv("WORKBENCH_HOME")
    assert runs_dir().parts[-4:] == (".local", "share", "workbench", "runs")
    assert runs_dir(tmp_path) == tmp_path
