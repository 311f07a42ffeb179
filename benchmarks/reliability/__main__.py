"""All the long reliability runs, one after another: faults under load, overload, soak, bad input.

Run: ``.venv/bin/python -m benchmarks.reliability [--markdown docs/reliability.md] [--only faults soak]``
(about 20 minutes; the soak alone is 10). Each part writes its own section of the Markdown file and exits
non-zero when a promise is broken; this runner goes on to the next part and exits non-zero if any failed.
Each part also runs alone (``python -m benchmarks.reliability.soak --help``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time

PARTS = ("faults", "overload", "soak", "fuzz")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--markdown", help="write each part's section into this Markdown file")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS), help="which parts to run")
    args = parser.parse_args(argv)
    failed = []
    for part in args.only:
        print(f"\n=== {part} ===", flush=True)
        started = time.monotonic()
        module = importlib.import_module(f"benchmarks.reliability.{part}")
        code = module.main(["--markdown", args.markdown] if args.markdown else [])
        print(f"=== {part}: {'ok' if code == 0 else f'FAILED (exit {code})'} in {time.monotonic() - started:.0f} s",
              flush=True)
        if code:
            failed.append(part)
    if failed:
        print(f"broken promises in: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
