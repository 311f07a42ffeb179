"""The package as a whole: lean import, the public API, the set-up files agree with each other."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import tomllib
import yaml

import workbench

ROOT = Path(__file__).resolve().parents[1]


def _requirement_name(req: str) -> str:
    return re.split(r"[\[<>=!~ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_import_workbench_is_lean():
    code = (
        "import sys, workbench\n"
        "heavy = [m for m in ('ray', 'panel', 'bokeh', 'torch', 'pandas', 'onnxruntime') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "", f"import workbench pulled in: {out.stdout.strip()}"


def test_public_api_is_exactly_all():
    import types

    public = {n for n in dir(workbench) if not n.startswith("_") and not isinstance(getattr(workbench, n), types.ModuleType)}
    assert set(workbench.__all__) == set(workbench._LAZY)
    for name in workbench.__all__:
        assert getattr(workbench, name) is not None, name
    assert public == set(workbench.__all__), public ^ set(workbench.__all__)


def test_environment_yml_lists_every_runtime_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_requirement_name(r) for r in project["dependencies"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {_requirement_name(r) for r in pip_section if not r.startswith("-")}
    assert declared <= listed, f"missing from environment.yml: {sorted(declared - listed)}"


def test_torch_is_pinned_in_one_place():
    constraints = (ROOT / "constraints.txt").read_text()
    assert re.search(r"^torch==\d", constraints, re.M)
    makefile = (ROOT / "Makefile").read_text()
    assert "constraints.txt" in makefile
    for path in (ROOT / "pyproject.toml", ROOT / "environment.yml"):
        assert "torch==" not in path.read_text(), f"{path.name} pins torch: pin it only in constraints.txt"


def test_cli_help_everywhere():
    from click.testing import CliRunner

    from workbench.cli import cli

    runner = CliRunner()
    top = runner.invoke(cli, ["--help"])
    assert top.exit_code == 0 and "models" in top.output
    for name in cli.list_commands(None):  # type: ignore[arg-type]
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
