from __future__ import annotations

import json

import pytest
import torch

from workbench.cli import main
from workbench.compression import DistillConfig, OnnxConfig, PruneConfig, QuantizeConfig
from workbench.compression.commands import build_steps
from workbench.models import ModelArtifact


def test_compress_prints_original_and_variant_and_saves_it(zoo_mlp, tmp_path, capsys):
    code = main(["compress", "mlp", "--prune", "structured:0.5", "--fine-tune-epochs", "1", "--quantize", "int8",
                 "--save", str(tmp_path / "v"), "--repeats", "2", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    header, _, original, variant = out.splitlines()[:4]
    assert "accuracy" in header and "b1 ms" in header and "b32 ms" in header and "size MB" in header
    assert original.startswith("fp32 ") and "1.00×" in original
    assert variant.startswith("prune-structured-0.5+int8 ")
    artifact = ModelArtifact.open(tmp_path / "v")
    assert artifact.variant == "prune-structured-0.5+int8" and artifact.kind == "architecture"
    assert f"saved prune-structured-0.5+int8 (architecture artifact) to {tmp_path / 'v'}" in out


def test_onnx_with_int8_is_ort_int8_and_json_is_offered(zoo_mlp, capsys):
    code = main(["compress", "mlp", "--onnx", "--quantize", "int8", "--repeats", "1", "--json", "--no-progress"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["variant"]["variant"] == "onnx-int8" and report["variant"]["runtime"] == "onnx"
    assert report["original"]["variant"] == "fp32" and set(report["variant"]["latency_ms"]) == {"1", "32"}


def test_steps_follow_a_fixed_order():
    steps = build_steps(prune="unstructured:0.3", quantize="static-int8", distill=True, student_width=0.5,
                        student_depth=1, distill_epochs=4)
    assert steps == [PruneConfig(method="unstructured", sparsity=0.3), DistillConfig(student_width=0.5, student_depth=1, epochs=4),
                     QuantizeConfig(dtype="static-int8")]
    assert build_steps(prune="structured", onnx=True, quantize="static-int8") == [
        PruneConfig(method="structured", sparsity=0.5), OnnxConfig(quantize="static")]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compress", "mlp"], "give at least one step"),
        (["compress", "mlp", "--prune", "random:0.5"], "method must be 'unstructured' or 'structured'"),
        (["compress", "mlp", "--prune", "structured:lots"], "sparsity must be a number"),
        (["compress", "mlp", "--prune", "structured:1.5"], r"error: PruneConfig.sparsity must be in [0, 1)"),
        (["compress", "mlp", "--quantize", "fp16", "--repeats", "1"], "error: fp16 is not offered on CPU"),
        (["compress", "mlp", "--onnx", "--quantize", "bf16"], "error: --onnx runs fp32, int8 or static-int8"),
        (["compress", "no-such-model", "--quantize", "int8"], "error: unknown model 'no-such-model'"),
    ],
)
def test_mistakes_get_one_clear_line_and_no_traceback(zoo_mlp, argv, message, capsys):
    if "fp16" in argv and torch.cuda.is_available():
        pytest.skip("fp16 is offered where CUDA is available")
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2
    assert message in captured.err
    assert "Traceback" not in captured.err + captured.out
