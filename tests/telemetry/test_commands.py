"""`workbench runs list | show | compare` on saved run records."""

from __future__ import annotations

import pytest

from workbench.cli import main

from .test_runs import save


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "220")


def test_runs_list_and_show(make_windows, capsys):
    assert main(["runs", "list"]) == 0
    assert "no runs in" in capsys.readouterr().out
    record = save(make_windows([0.001, 0.003]), window_ms=500)
    assert main(["runs", "list"]) == 0
    out = capsys.readouterr().out
    assert record.id in out and "mlp" in out and "constant(rate=100.0)" in out
    assert main(["runs", "show", record.id[-6:]]) == 0
    out = capsys.readouterr().out
    assert f"run {record.id}" in out and "max_batch_size=8" in out and "latency_p99_ms" in out
    assert "windows (500 ms)" in out


def test_runs_compare_prints_the_differences(make_windows, capsys):
    a = save(make_windows([0.001]), rate=100, p99=5.0, throughput=99.5)
    b = save(make_windows([0.001]), rate=200, p99=20.0, throughput=150.0)
    assert main(["runs", "compare", a.id, b.id]) == 0
    out = capsys.readouterr().out
    lines = {line.split("│")[2].strip(): line for line in out.splitlines() if line.count("│") >= 5}
    assert "schedule.rate" in lines and "200" in lines["schedule.rate"] and "2.000×" in lines["schedule.rate"]
    assert "4.000×" in lines["latency_p99_ms"] and "1.508×" in lines["throughput_rps"]
    assert "errors" not in lines  # equal figures are hidden...
    assert main(["runs", "compare", a.id, b.id, "--all"]) == 0
    assert "│ errors" in capsys.readouterr().out  # ...unless asked for


def test_runs_commands_report_a_missing_run_in_one_line(capsys):
    assert main(["runs", "show", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no run 'nope'" in err and "Traceback" not in err
