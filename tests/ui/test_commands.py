"""``workbench dashboard`` and ``workbench demo`` (the same command with ``--demo``)."""

from __future__ import annotations

from click.testing import CliRunner


def test_the_cli_refuses_a_wide_bind_without_a_token(monkeypatch):
    from workbench.cli import main

    monkeypatch.delenv("WORKBENCH_TOKEN", raising=False)
    for command in (["dashboard", "--demo"], ["demo"]):  # demo is dashboard --demo: same checks
        assert main([*command, "--address", "0.0.0.0", "--port", "0"]) == 2


def test_demo_takes_the_same_options_as_dashboard():
    from workbench.ui.commands import dashboard, demo

    names = {p.name for p in demo.params}
    assert names == {p.name for p in dashboard.params} - {"demo"}
    result = CliRunner().invoke(demo, ["--help"])
    assert result.exit_code == 0 and "dashboard --demo" in result.output
