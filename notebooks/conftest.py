"""When pytest runs the notebooks (``pytest --nbval-lax --nbval-current-env notebooks/``): their cells are
marked ``notebook`` and ``slow``, and the run records their load runs save go to a temporary folder,
not to the user's."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

_RUNS: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    if "WORKBENCH_RUNS" not in os.environ:
        folder = tempfile.mkdtemp(prefix="workbench-notebook-runs-")
        _RUNS.append(folder)
        os.environ["WORKBENCH_RUNS"] = folder  # the kernels nbval starts inherit it


def pytest_unconfigure(config: pytest.Config) -> None:
    for folder in _RUNS:
        shutil.rmtree(folder, ignore_errors=True)
        if os.environ.get("WORKBENCH_RUNS") == folder:
            del os.environ["WORKBENCH_RUNS"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.notebook)
            item.add_marker(pytest.mark.slow)
