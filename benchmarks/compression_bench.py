"""Compression benchmark: every method on the zoo mlp, cnn and transformer, against the fp32 original.

For each model, all variants are built, then measured together with the original in one interleaved
run (1 intra-op thread, medians over ``--repeats`` rounds): speed ratio at batch 1 and 32, size ratio
(serialized served model), accuracy change on the held-out split. Then the issue's targets are checked:

- dynamic int8 ≥ 1.5× at batch 1 with ≤ 0.5 points lost;
- structured pruning of half the hidden units ≥ 2× (batch 1) with ≤ 1 point lost after fine-tuning;
- a distilled student ≥ 5× faster (batch 1, best runtime) within 1.5 points;
- per model, the best variant (methods combined, any runtime) ≥ 4× faster at batch 1 within 1 point.

Run: ``.venv/bin/python -m benchmarks.compression_bench [--models mlp cnn] [--repeats 25] [--json out.json]``.
Timings on a shared 2-core machine swing ±20 %: compare ratios, not absolute times, and only within a run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

# student shapes that are small enough to be fast and big enough to learn digits, per family
STUDENTS: dict[str, dict[str, Any]] = {
    "mlp": {"student_width": 0.125, "student_depth": 1},
    "cnn": {"student_width": 0.25},
    "transformer": {"student_width": 0.5, "student_depth": 1},
}


def pipelines(name: str, *, epochs_scale: float = 1.0) -> dict[str, list[Any]]:
    from workbench.compression import DistillConfig, OnnxConfig, PruneConfig, QuantizeConfig

    fine_tune = max(1, round(3 * epochs_scale))
    distill_epochs = max(2, round(40 * epochs_scale))
    structured = PruneConfig(method="structured", sparsity=0.5, fine_tune_epochs=fine_tune)
    distill = DistillConfig(epochs=distill_epochs, **STUDENTS[name])
    return {
        "unstructured-0.5": [PruneConfig(method="unstructured", sparsity=0.5, fine_tune_epochs=fine_tune)],
        "structured-0.5": [structured],
        "int8": [QuantizeConfig(dtype="int8")],
        "static-int8": [QuantizeConfig(dtype="static-int8")],
        "bf16": [QuantizeConfig(dtype="bf16")],
        "distill": [distill],
        "onnx": [OnnxConfig()],
        "onnx-int8": [OnnxConfig(quantize="dynamic")],
        "onnx-static-int8": [OnnxConfig(quantize="static")],
        "structured+int8": [structured, QuantizeConfig(dtype="int8")],
        "structured+onnx-int8": [structured, OnnxConfig(quantize="dynamic")],
        "structured+onnx-static-int8": [structured, OnnxConfig(quantize="static")],
        "distill+int8": [distill, QuantizeConfig(dtype="int8")],
        "distill+onnx": [distill, OnnxConfig()],
        "distill+onnx-int8": [distill, OnnxConfig(quantize="dynamic")],
        "distill+onnx-static-int8": [distill, OnnxConfig(quantize="static")],
    }


def _row(key: str, report: Any) -> dict[str, Any]:
    return {
        "pipeline": key, "variant": report.variant.variant, "runtime": report.variant.runtime,
        "speedup_b1": report.speedup(1), "speedup_b32": report.speedup(32), "size_ratio": report.size_ratio,
        "accuracy_change_pt": report.accuracy_change_pt, "accuracy": report.variant.accuracy,
        "latency_b1_ms": report.variant.latency(1), "latency_b32_ms": report.variant.latency(32),
        "parameters": report.variant.parameters, "compress_s": report.compress_s,
    }


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets for one model, each with the variant that decides it and whether it is met."""
    by = {r["pipeline"]: r for r in rows}

    def check(what: str, row: dict[str, Any], min_speedup: float, max_loss_pt: float) -> dict[str, Any]:
        met = row["speedup_b1"] >= min_speedup and -row["accuracy_change_pt"] <= max_loss_pt
        return {"target": what, "variant": row["variant"], "speedup_b1": row["speedup_b1"],
                "accuracy_change_pt": row["accuracy_change_pt"], "met": bool(met)}

    out = [
        check("dynamic int8 ≥ 1.5× at b1, ≤ 0.5 pt lost", by["int8"], 1.5, 0.5),
        check("structured 50% ≥ 2× at b1, ≤ 1 pt lost", by["structured-0.5"], 2.0, 1.0),
    ]
    students = [r for r in rows if r["pipeline"].startswith("distill") and -r["accuracy_change_pt"] <= 1.5]
    student = max(students, key=lambda r: r["speedup_b1"], default=by["distill"])
    out.append(check("distilled student ≥ 5× at b1, ≤ 1.5 pt lost", student, 5.0, 1.5))
    good = [r for r in rows if -r["accuracy_change_pt"] <= 1.0]
    best = max(good, key=lambda r: r["speedup_b1"], default=max(rows, key=lambda r: r["speedup_b1"]))
    out.append(check("best variant ≥ 4× at b1, ≤ 1 pt lost", best, 4.0, 1.0))
    return out


def run_model(name: str, *, repeats: int, epochs_scale: float) -> dict[str, Any]:
    from workbench.compression import compare
    from workbench.models import load_zoo

    model = load_zoo(name, progress=False)
    plan = pipelines(name, epochs_scale=epochs_scale)
    started = time.perf_counter()
    results = compare(model, list(plan.values()), progress=False, repeats=repeats)
    original = results[0][1].original
    rows = [_row(key, report) for key, (_, report) in zip(plan, results)]
    return {
        "model": name, "original": original.to_dict(), "variants": rows, "targets": targets(rows),
        "wall_s": time.perf_counter() - started,
    }


def reference_int8(repeats: int) -> list[dict[str, Any]]:
    """Speed only (untrained weights: latency does not depend on them), by model size: dynamic int8 of the
    MLP at the earlier 784-512-512-10 and the reference 784-1024-1024-10 shape; and for the transformer at
    the zoo's shape and at a serving-size one (d_model 256, ff 1024, 4 heads, 2 layers), dynamic int8
    (which leaves the fused fast path) and the half-width architecture structured pruning of half the
    hidden units produces, both against the fp32 original with its fast path."""
    import copy

    import numpy as np
    import torch

    from workbench.compression.measure import time_models
    from workbench.compression.transforms import quantize_dynamic_int8
    from workbench.models.architectures import mlp, transformer
    from workbench.models.runner import TorchRunner

    def linears(module: torch.nn.Module) -> list[str]:
        return [n for n, m in module.named_modules() if type(m) is torch.nn.Linear]

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = []
    try:
        cases: list[tuple[str, Any, Any, tuple[int, ...]]] = []
        for hidden in ([512, 512], [1024, 1024]):
            fp32 = mlp(hidden=hidden).eval()
            cases.append(("mlp 784-" + "-".join(map(str, hidden)) + "-10", fp32, None, (784,)))
        for d, ff in ((64, 128), (256, 1024)):
            torch.manual_seed(0)
            fp32 = transformer(d_model=d, ff=ff, heads=4, layers=2).eval()
            half = transformer(d_model=d // 2, ff=ff // 2, heads=4, layers=2).eval()
            cases.append((f"transformer d_model {d} ff {ff}", fp32, half, (28, 28)))
        for shape, fp32, half, view in cases:
            int8 = quantize_dynamic_int8(copy.deepcopy(fp32), linears(fp32))
            row: dict[str, Any] = {"shape": shape}
            for b in (1, 32):
                x = np.random.default_rng(0).random((b, *view), dtype=np.float32)
                runners = [TorchRunner(fp32), TorchRunner(int8)] + ([TorchRunner(half)] if half is not None else [])
                times = time_models(runners, [x] * len(runners), repeats=repeats)
                row[f"speedup_b{b}"] = times[0] / times[1]
                if half is not None:
                    row[f"half_width_speedup_b{b}"] = times[0] / times[2]
            rows.append(row)
    finally:
        torch.set_num_threads(previous)
    return rows


def markdown(results: list[dict[str, Any]]) -> str:
    lines = []
    for res in results:
        o = res["original"]
        lines += [
            f"**{res['model']}** — fp32 original: accuracy {100 * o['accuracy']:.2f} %, "
            f"{o['latency_ms']['1']:.3f} ms at batch 1, {o['latency_ms']['32']:.3f} ms at batch 32, "
            f"{o['model_bytes'] / 1e6:.2f} MB",
            "",
            "| variant | runtime | speed-up b1 | speed-up b32 | size ratio | Δ accuracy (pt) |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for r in res["variants"]:
            lines.append(f"| {r['variant']} | {r['runtime']} | {r['speedup_b1']:.2f}× | {r['speedup_b32']:.2f}× | "
                         f"{r['size_ratio']:.2f}× | {r['accuracy_change_pt']:+.2f} |")
        lines += ["", "| target | deciding variant | speed-up b1 | Δ accuracy (pt) | met |", "|---|---|---:|---:|---|"]
        for t in res["targets"]:
            lines.append(f"| {t['target']} | {t['variant']} | {t['speedup_b1']:.2f}× | {t['accuracy_change_pt']:+.2f} | "
                         f"{'yes' if t['met'] else '**no**'} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn", "transformer"])
    parser.add_argument("--repeats", type=int, default=25, help="timing rounds per model and batch size (medians)")
    parser.add_argument("--epochs-scale", type=float, default=1.0, help="scale fine-tune/distill epochs (0.1 = quick)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--markdown", type=Path, help="write the tables as Markdown to this file (overwritten: not a "
                        "section of docs/performance.md, whose Compression section also holds the reading)")
    args = parser.parse_args(argv)

    import torch

    results = []
    for name in args.models:
        res = run_model(name, repeats=args.repeats, epochs_scale=args.epochs_scale)
        results.append(res)
        print(f"\n== {name} ({res['wall_s']:.0f} s) ==")
        print(markdown([res]))
        sys.stdout.flush()
    reference = reference_int8(args.repeats)
    print("\n== speed only, by model size (fp32 original = 1) ==")
    for row in reference:
        line = f"{row['shape']}: int8 {row['speedup_b1']:.2f}x at batch 1, {row['speedup_b32']:.2f}x at batch 32"
        if "half_width_speedup_b1" in row:
            line += (f"; half width (structured 50%) {row['half_width_speedup_b1']:.2f}x at batch 1, "
                     f"{row['half_width_speedup_b32']:.2f}x at batch 32")
        print(line)
    meta = {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.processor(),
            "cores": os.cpu_count(), "repeats": args.repeats, "threads": 1,
            "date": time.strftime("%Y-%m-%d")}
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results, "reference_int8": reference}, indent=2))
    if args.markdown:
        args.markdown.write_text(markdown(results))
    missed = [(r["model"], t["target"]) for r in results for t in r["targets"] if not t["met"]]
    print(f"\ntargets missed: {missed if missed else 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
