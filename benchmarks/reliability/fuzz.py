"""The long bad-input run: the properties of ``tests/reliability/test_fuzz_http.py`` and the schemathesis
run of ``tests/reliability/test_schemathesis.py`` with many more examples, against ``workbench serve``
as a real process; counts the cases sent per endpoint and the status codes they got.

    python -m benchmarks.reliability.fuzz [--examples 400] [--markdown docs/reliability.md]

Passes when pytest passes: no 5xx, every error a JSON ``{"error": ...}``, responses as the OpenAPI
document declares, the server healthy and still correct afterwards. The table goes to the
"## Bad input and security" section of the Markdown file.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ["tests/reliability/test_fuzz_http.py", "tests/reliability/test_schemathesis.py"]

CHECKS = """\
| family | what each case sends | what must hold |
|---|---|---|
| paths+methods | any of 7 methods on random paths under `/v2` (`..`, `%2e%2e`, `%2F`, unicode, names of 6,000 chars) with random bodies | no 5xx; errors are JSON `{"error": ...}` |
| model names | every model route with a name/version that is not served | 404 naming the served models |
| headers | lying `Content-Type`, `Inference-Header-Content-Length` (negative, 10^30, non-digits), `Content-Encoding`, 60 KB header values | no 5xx; JSON errors |
| content-length lies | `Content-Length` larger or smaller than the body, then EOF | a 4xx or a closed connection, never a hang or 5xx |
| huge shapes | shapes of 10^6..2^62 rows, JSON and binary | 400 at once, nothing allocated |
| deep nesting | `data`, `parameters`, `outputs` or the whole body nested up to 10^5 deep | 400, no RecursionError |
| schemathesis | cases generated from `/openapi.json` (positive and negative), any and the served model names | no 5xx; status codes, content types and bodies as declared; errors are JSON |
| schemathesis (no token) | every operation of a server with a token, without it | the documented 401 |
"""


def run(examples: int) -> tuple[int, list[dict], float, str]:
    with tempfile.TemporaryDirectory() as tmp:
        tally = Path(tmp) / "tally.jsonl"
        env = {**os.environ, "WORKBENCH_FUZZ_EXAMPLES": str(examples), "WORKBENCH_FUZZ_TALLY": str(tally)}
        start = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "pytest", *TESTS, "-q", "-p", "no:cacheprovider",
                               "--timeout=1800"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
        elapsed = time.monotonic() - start
        cases = [json.loads(line) for line in tally.read_text().splitlines()] if tally.exists() else []
    return proc.returncode, cases, elapsed, proc.stdout[-3000:] + proc.stderr[-2000:]


def table(cases: list[dict]) -> str:
    rows: dict[tuple[str, str], collections.Counter] = collections.defaultdict(collections.Counter)
    for case in cases:
        rows[(case["family"], case["endpoint"])][case["status"]] += 1
    lines = ["| family | endpoint | cases | status codes | 5xx |", "|---|---|---:|---|---:|"]
    for (family, endpoint), counts in sorted(rows.items()):
        codes = ", ".join(f"{'closed' if code is None else code}: {n}" for code, n in
                          sorted(counts.items(), key=lambda kv: -1 if kv[0] is None else kv[0]))
        fives = sum(n for code, n in counts.items() if code is not None and code >= 500)
        lines.append(f"| {family} | `{endpoint}` | {sum(counts.values())} | {codes} | {fives} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=400, help="hypothesis examples per property")
    parser.add_argument("--markdown", type=Path, help="write the section into this Markdown file")
    args = parser.parse_args(argv)
    code, cases, elapsed, output = run(args.examples)
    total = collections.Counter(c["status"] for c in cases)
    fives = sum(n for status, n in total.items() if status is not None and status >= 500)
    verdict = "passed" if code == 0 else f"FAILED (pytest exit {code})"
    summary = (f"{len(cases)} cases in {elapsed:.0f} s, {fives} answered 5xx; every property and schemathesis check "
               f"{verdict}; afterwards the server was ready and both models still answered correctly"
               if code == 0 else f"{len(cases)} cases in {elapsed:.0f} s, {fives} answered 5xx; {verdict}")
    print(table(cases))
    print(summary)
    if code != 0:
        print(output)
    if args.markdown is not None:
        from benchmarks.markdown import write_section

        command = "python -m benchmarks.reliability.fuzz" + (f" --examples {args.examples}") + \
            f" --markdown {args.markdown}"
        section = (f"## Bad input and security\n\nMade by `{command}` (the short versions run in `make test`: "
                   f"`tests/reliability/test_fuzz_http.py`, `test_schemathesis.py`, `test_files.py`, "
                   f"`test_security.py`). `workbench serve` ran as a real process with two models (`echo`, "
                   f"4 features; `mlp`, the seeded 784-1024-1024-10 reference MLP) and a 1 MiB body limit.\n\n"
                   f"**{summary}.**\n\n{CHECKS}\n{table(cases)}\n\n"
                   "Model files (`test_files.py`): corrupt, truncated and empty `.pt`/`.pt2`/`.onnx`/TorchScript "
                   "files, files of another format, checksum mismatches, broken manifests, pickles whose "
                   "`__reduce__` runs a command (as a file, inside a state_dict, as an artifact's weights with a "
                   "matching checksum, as `example.npy`), manifests naming `subprocess:run` and other non-factories, "
                   "manifest paths with `..`, absolute paths and symlinks out of the folder: each is one clear "
                   "error (`workbench serve FILE`: exit code 2, one `error:` line) and the marker file the code "
                   "would create never appears. Security (`test_security.py`): loopback by default, a token "
                   "required beyond loopback and compared with `hmac.compare_digest`, cross-origin dashboard "
                   "websockets refused (403), and the token in no log line of the API server or the dashboard.\n")
        write_section(args.markdown, section, title="# Reliability")
    return code


if __name__ == "__main__":
    sys.exit(main())
