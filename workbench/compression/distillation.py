"""Knowledge distillation: train a smaller student from the current model with soft targets.

The loss is Hinton et al.'s: ``alpha * T² * KL(softmax(teacher/T) ‖ softmax(student/T)) + (1 - alpha) *
cross-entropy(student, labels)``. The teacher is the variant as it stands (whatever runtime), asked
batch by batch; the student starts from seeded random weights and trains with a progress bar.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from workbench.compression.config import DistillConfig
from workbench.compression.families import student_arch
from workbench.compression.registry import StepContext, Work, register_method
from workbench.errors import CompressionError


def distillation_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, *, temperature: float, alpha: float
) -> torch.Tensor:
    """Temperature-scaled soft-target KL (times T², so its gradients keep their scale) plus hard-label CE."""
    t = float(temperature)
    soft = F.kl_div(F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
                    reduction="batchmean", log_target=True) * (t * t)
    hard = F.cross_entropy(student_logits, labels)
    return alpha * soft + (1.0 - alpha) * hard


def _build_student(work: Work, config: DistillConfig) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """The untrained student, its source (how an artifact rebuilds it) and what to record."""
    if config.student_factory:
        from workbench.models.loading import call_factory

        kwargs = dict(config.student_kwargs or {})
        module = call_factory(config.student_factory, kwargs)
        return module, {"kind": "factory", "factory": config.student_factory, "kwargs": kwargs}, {}
    family = work.family
    if family is None:
        raise CompressionError(
            "distillation builds the student from the zoo family of the model; this model is not a zoo model, "
            "so pass DistillConfig(student_factory='package.module:function', student_kwargs={...})"
        )
    from workbench.models.architectures import build_architecture

    arch = student_arch(family, dict(work.source.get("arch", {})), config.student_width, config.student_depth)
    return build_architecture(family, arch), {**work.source, "arch": arch}, {
        "arch_before": work.source.get("arch"), "arch_after": arch,
    }


@register_method(DistillConfig)
def distill(work: Work, config: DistillConfig, context: StepContext) -> Work:
    """Replace the variant by a student distilled from it (the student is fp32; later steps may compress it)."""
    from workbench.models.zoo import train_classifier

    x, y = context.data.require_train("distillation")
    teacher = work.runner()
    torch.manual_seed(context.seed)
    student, source, done = _build_student(work, config)
    example = torch.from_numpy(np.ascontiguousarray(work.example))
    with torch.inference_mode():
        out = student.eval()(example)
    expected = tuple(teacher(work.example).shape)
    if tuple(out.shape) != expected:
        raise CompressionError(f"the student's output shape {tuple(out.shape)} differs from the teacher's {expected}")

    def loss_fn(logits: torch.Tensor, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            teacher_logits = torch.from_numpy(np.asarray(teacher(xb.numpy()), dtype=np.float32))
        return distillation_loss(logits, teacher_logits, yb, temperature=config.temperature, alpha=config.alpha)

    train_classifier(
        student, x, y, epochs=config.epochs, lr=config.lr, batch_size=config.batch_size, seed=context.seed,
        progress=context.progress, desc="distilling student", loss_fn=loss_fn, callback=context.report("distill"),
    )
    teacher_params = sum(p.numel() for p in work.base.parameters()) if work.base is not None else None
    replaced = [str(t["op"]) for t in work.transforms] + (["onnx"] if work.onnx_file is not None else [])
    work.base, work.source = student.eval(), source
    work.transforms, work.files, work.onnx_file = [], {}, None
    work.record(
        config, teacher_parameters=teacher_params, student_parameters=sum(p.numel() for p in student.parameters()),
        **done, **({"note": f"the student is fp32; the teacher's {', '.join(replaced)} does not carry over"} if replaced else {}),
    )
    return work


__all__ = ["distill", "distillation_loss"]
