"""The example notebooks as committed: all six there, outputs stripped (only the expected text of the
cells nbval checks is kept), a python3 kernel, and something for nbval to check in each. Running them is
``pytest --nbval-lax --nbval-current-env notebooks/``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
EXPECTED = ["01-quickstart", "02-compression", "03-parallel-serving", "04-live-tuning", "05-scale-out-ray", "06-tune"]


def _strip_tool():
    spec = importlib.util.spec_from_file_location("strip_outputs", NOTEBOOKS / "strip_outputs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_notebooks_are_there():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_committed_notebook_is_stripped(name):
    path = NOTEBOOKS / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    strip = _strip_tool()
    assert strip.is_stripped(path), f"{path.name} has outputs: run python notebooks/strip_outputs.py"
    checked = [c for c in nb.cells if strip.checked(c)]
    assert checked and all(c.outputs for c in checked), "every checked cell carries the text nbval expects"
    for cell in nb.cells:
        if cell.cell_type == "code" and not strip.checked(cell):
            assert cell.outputs == [] and cell.execution_count is None
    for cell in checked:
        assert all(o.output_type == "stream" and o.name == "stdout" for o in cell.outputs)


def test_the_strip_tool_keeps_only_checked_text(tmp_path):
    strip = _strip_tool()
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("print('timing: 3.2 ms')", execution_count=1, outputs=[
            nbformat.v4.new_output("stream", name="stdout", text="timing: 3.2 ms\n")]),
        nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint('equal:', True)", execution_count=2, outputs=[
            nbformat.v4.new_output("stream", name="stdout", text="equal: True\n"),
            nbformat.v4.new_output("stream", name="stderr", text="a warning\n"),
            nbformat.v4.new_output("display_data", data={"text/plain": "<figure>"})]),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    assert not strip.is_stripped(path)
    assert strip.main([str(path)]) == 0
    assert strip.is_stripped(path) and strip.main(["--check", str(path)]) == 0
    cells = nbformat.read(path, as_version=4).cells
    assert cells[0].outputs == [] and cells[0].execution_count is None
    assert [o.text for o in cells[1].outputs] == ["equal: True\n"] and cells[1].execution_count == 2
