"""Strip the example notebooks' outputs before committing them.

Every output is removed except the printed text of cells marked ``# NBVAL_CHECK_OUTPUT``: that text is
what ``pytest --nbval-lax`` compares a fresh run against, so it stays (with an execution count, which
nbval requires of a cell whose outputs it compares). Other execution counts and per-cell metadata go. ``--execute`` first runs each notebook (in this environment's ``python3`` kernel) to
record the expected text afresh::

    python notebooks/strip_outputs.py                  # every notebook here, in place
    python notebooks/strip_outputs.py --execute 02-compression.ipynb
    python notebooks/strip_outputs.py --check          # exit 1 if a notebook is not stripped
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
MARK = "# NBVAL_CHECK_OUTPUT"


def checked(cell: dict) -> bool:
    return cell.get("cell_type") == "code" and cell.get("source", "").lstrip().startswith(MARK)


def stripped(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` holding only the stream text of checked cells."""
    nb = nbformat.from_dict(copy.deepcopy(nb))
    code_cells = 0
    for cell in nb.cells:
        cell.metadata = {}
        cell.pop("id", None)
        if cell.cell_type != "code":
            continue
        code_cells += 1
        cell.execution_count = None
        if checked(cell):
            cell.outputs = [nbformat.v4.new_output("stream", name=o.name, text=o.text)
                            for o in cell.outputs if o.output_type == "stream" and o.name == "stdout"]
            if cell.outputs:  # nbval compares only the outputs of cells that ran: give it a count
                cell.execution_count = code_cells
        else:
            cell.outputs = []
    nb.metadata = {key: nb.metadata[key] for key in ("kernelspec", "language_info") if key in nb.metadata}
    nb.metadata.get("language_info", {}).pop("version", None)
    nb.nbformat_minor = max(nb.nbformat_minor, 5)
    for i, cell in enumerate(nb.cells):  # nbformat >= 4.5 wants ids: keep them short and stable
        cell.id = f"cell-{i:02d}"
    return nb


def execute(path: Path, timeout_s: int = 600) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout_s, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def is_stripped(path: Path) -> bool:
    nb = nbformat.read(path, as_version=4)
    return nbformat.writes(stripped(nb)) == nbformat.writes(nb)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook in this folder")
    parser.add_argument("--execute", action="store_true", help="run each notebook first to record the checked text")
    parser.add_argument("--check", action="store_true", help="only report notebooks that are not stripped")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(HERE.glob("*.ipynb"))
    if args.check:
        dirty = [p for p in paths if not is_stripped(p)]
        for p in dirty:
            print(f"{p}: has outputs; run python notebooks/strip_outputs.py")
        return 1 if dirty else 0
    for path in paths:
        nb = execute(path) if args.execute else nbformat.read(path, as_version=4)
        nbformat.write(stripped(nb), path)
        print(f"stripped {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
