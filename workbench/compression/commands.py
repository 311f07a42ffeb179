"""``workbench compress``: apply compression steps to a model and print the report."""

from __future__ import annotations

from typing import Any

import click


def _parse_prune(value: str | None) -> tuple[str, float] | None:
    if value is None:
        return None
    method, _, amount = value.partition(":")
    if method not in ("unstructured", "structured"):
        raise click.BadParameter(f"method must be 'unstructured' or 'structured', got {method!r}", param_hint="--prune")
    try:
        sparsity = float(amount) if amount else 0.5
    except ValueError:
        raise click.BadParameter(f"sparsity must be a number in [0, 1), got {amount!r}", param_hint="--prune") from None
    return method, sparsity


def build_steps(
    *, prune: str | None = None, fine_tune_epochs: int | None = None, quantize: str | None = None,
    distill: bool = False, student_width: float = 0.25, student_depth: int | None = None,
    distill_epochs: int = 30, onnx: bool = False,
) -> list[Any]:
    """The step configs the command's options describe, in the order prune, distill, quantize, ONNX."""
    from workbench.compression.config import DistillConfig, OnnxConfig, PruneConfig, QuantizeConfig
    from workbench.errors import ConfigError

    steps: list[Any] = []
    parsed = _parse_prune(prune)
    if parsed is not None:
        steps.append(PruneConfig(method=parsed[0], sparsity=parsed[1], fine_tune_epochs=fine_tune_epochs))
    if distill:
        steps.append(DistillConfig(student_width=student_width, student_depth=student_depth, epochs=distill_epochs))
    if onnx:
        onnx_quant = {None: None, "int8": "dynamic", "static-int8": "static"}
        if quantize not in onnx_quant:
            raise ConfigError(f"--onnx runs fp32, int8 or static-int8 in ONNX Runtime; --quantize {quantize} is not offered there")
        steps.append(OnnxConfig(quantize=onnx_quant[quantize]))
    elif quantize is not None:
        steps.append(QuantizeConfig(dtype=quantize))
    return steps


@click.command()
@click.argument("model")
@click.option("--prune", metavar="METHOD[:SPARSITY]",
              help="unstructured:0.5 (zero the smallest weights) or structured:0.5 (remove half the neurons/channels).")
@click.option("--fine-tune-epochs", type=click.IntRange(min=0), default=None,
              help="Epochs of fine-tuning after pruning [default: 2 unstructured, 3 structured].")
@click.option("--quantize", type=click.Choice(["int8", "static-int8", "bf16", "fp16"]),
              help="int8 (dynamic), static-int8 (calibrated on training rows) or bf16. fp16 is refused on CPU.")
@click.option("--distill", is_flag=True, help="Distill a smaller student of the same family from the model.")
@click.option("--student-width", type=float, default=0.25, show_default=True,
              help="Student width as a fraction of the teacher's.")
@click.option("--student-depth", type=click.IntRange(min=1), default=None, help="Student layers [default: as the teacher].")
@click.option("--distill-epochs", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--onnx", is_flag=True, help="Export to ONNX and run with ONNX Runtime (with --quantize: int8 by ORT).")
@click.option("--save", "save_dir", type=click.Path(file_okay=False), help="Save the variant as a model artifact here.")
@click.option("--repeats", type=click.IntRange(min=1), default=15, show_default=True,
              help="Timing rounds (medians are reported).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of a table.")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
def compress(
    model: str, prune: str | None, fine_tune_epochs: int | None, quantize: str | None, distill: bool,
    student_width: float, student_depth: int | None, distill_epochs: int, onnx: bool, save_dir: str | None,
    repeats: int, as_json: bool, no_progress: bool,
) -> None:
    """Compress MODEL (a zoo name or a model file) and print accuracy, latency at batch 1 and 32 (one
    thread, medians) and size, for the original and the variant, measured in the same run.

    Steps run in this order: prune, distill, quantize, ONNX.
    """
    steps = build_steps(prune=prune, fine_tune_epochs=fine_tune_epochs, quantize=quantize, distill=distill,
                        student_width=student_width, student_depth=student_depth, distill_epochs=distill_epochs,
                        onnx=onnx)
    if not steps:
        raise click.UsageError("give at least one step: --prune, --quantize, --distill or --onnx")
    import json

    from workbench.compression.api import compress as run_compress
    from workbench.models.loading import load_model

    loaded = load_model(model, progress=not no_progress) if _is_zoo(model) else load_model(model)
    variant, report = run_compress(loaded, steps, progress=not no_progress, repeats=repeats)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        click.echo(str(report))
        for step in report.steps:
            if step.get("note"):
                click.echo(f"note ({step['step']}): {step['note']}")
    if save_dir:
        artifact = variant.save(save_dir)
        click.echo(f"saved {artifact.variant} ({artifact.kind} artifact) to {artifact.path}", err=as_json)


def _is_zoo(name: str) -> bool:
    from workbench.models.zoo import ZOO

    return name in ZOO


__all__ = ["build_steps", "compress"]
