"""`workbench bench` end to end: a real OIP v2 server, the rich table, and the saved run records."""

from __future__ import annotations

import json

import pytest

from workbench.cli import main
from workbench.telemetry.runs import list_runs


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")


def test_bench_prints_the_latency_table_and_saves_a_run(echo_server, capsys, _runs_folder):
    code = main(["bench", echo_server.url, "--model", "echo", "--rate", "100", "--arrival", "constant", "--window-ms", "250",
                 "--duration", "0.5"])
    out = capsys.readouterr().out
    assert code == 0, out
    header = [line for line in out.splitlines() if "achieved" in line]
    assert header and all(column in header[0] for column in ("p50", "p90", "p99", "max", "target"))
    assert "latency from each request's intended send time (open loop)" in out
    [run] = list_runs()
    assert run["id"] in out and str(_runs_folder) in out
    assert run["summary"]["ok"] == 50 and run["context"]["cli"] == "bench"
    assert len((run["path"] / "windows.jsonl").read_text().splitlines()) == run["summary"]["windows"] >= 2
    assert json.loads((run["path"] / "context.json").read_text())["schedule"] == {"kind": "constant", "rate": 100.0}


def test_bench_sweep_runs_each_step_and_saves_each(echo_server, capsys):
    code = main(["bench", echo_server.url, "--model", "echo", "--sweep", "concurrency=1,2", "--duration", "0.5",
                 "--binary"])
    out = capsys.readouterr().out
    assert code == 0, out
    runs = list_runs()
    assert [r["context"]["sweep_step"] for r in runs] == [0, 1]
    assert [r["summary"]["concurrency"] for r in runs] == [1, 2]
    assert "c=1" in out and "c=2" in out and "binary" in out
    assert echo_server.binary_requests > 0


@pytest.mark.parametrize("args,message", [
    (["--duration", "1"], "give exactly one of --rate R, --concurrency C"),
    (["--rate", "10", "--concurrency", "2"], "(got --rate, --concurrency)"),
    (["--rate", "-5"], "rate must be > 0"),
    (["--schedule", "foo:1"], "unknown schedule 'foo'"),
    (["--sweep", "speed=1,2"], "use rate=R1,R2,... or concurrency=C1,C2,..."),
])
def test_bench_refuses_bad_arguments_in_one_line(echo_server, capsys, args, message):
    code = main(["bench", echo_server.url, "--model", "echo", *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert list_runs() == []


def test_bench_says_when_the_target_is_not_there(capsys):
    code = main(["bench", "http://127.0.0.1:9", "--model", "echo", "--rate", "10", "--duration", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot reach http://127.0.0.1:9" in err
    code = main(["bench", "localhost:8000", "--model", "echo", "--rate", "10"])
    assert code == 2 and "base URL such as http://127.0.0.1:8000" in capsys.readouterr().err
