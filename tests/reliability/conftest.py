"""Shared setup of the reliability tests (append small, self-contained pieces)."""

from __future__ import annotations

import sys
from pathlib import Path

# The overload and soak tests run the short versions of the code in benchmarks/reliability/; make the
# repository root importable under a bare `pytest` too (`python -m pytest`, as `make test` runs it, has it).
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
