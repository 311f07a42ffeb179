from __future__ import annotations

import pytest
import torch
from torch import nn

from workbench.compression import DistillConfig, build_variant
from workbench.compression.distillation import distillation_loss
from workbench.errors import CompressionError

# A 784-128-10 student distilled for 20 epochs may lose at most this much held-out accuracy (points)
# against the 784-1024-1024-10 teacher (measured: -0.4 to -1.3).
DISTILL_MAX_LOSS_PT = 3.0


def test_the_student_is_a_smaller_member_of_the_family_and_keeps_accuracy(zoo_mlp, mlp_variants):
    student = mlp_variants["distill"]
    assert student.source["arch"]["hidden"] == [128]
    assert [m.out_features for m in student.module.modules() if isinstance(m, nn.Linear)] == [128, 10]
    assert student.num_parameters < zoo_mlp.num_parameters / 10
    step = student.lineage["steps"][-1]
    assert step["student_parameters"] == student.num_parameters and step["teacher_parameters"] == zoo_mlp.num_parameters
    assert 100 * (zoo_mlp.evaluate() - student.evaluate()) <= DISTILL_MAX_LOSS_PT


def test_the_cnn_student_keeps_two_convolutions(zoo_cnn):
    with pytest.raises(CompressionError, match="cnn family always has 2 convolutions"):
        build_variant(zoo_cnn, [DistillConfig(student_depth=3, epochs=1)], progress=False)


def test_the_loss_mixes_soft_and_hard_targets():
    torch.manual_seed(0)
    student, teacher = torch.randn(8, 10), torch.randn(8, 10)
    labels = torch.randint(0, 10, (8,))
    hard = nn.functional.cross_entropy(student, labels)
    assert torch.allclose(distillation_loss(student, teacher, labels, temperature=4, alpha=0.0), hard)
    assert float(distillation_loss(teacher, teacher, labels, temperature=4, alpha=1.0)) == pytest.approx(0.0, abs=1e-6)
    # T² keeps the soft term's scale: at a high temperature it does not vanish
    assert float(distillation_loss(student, teacher, labels, temperature=8, alpha=1.0)) > 0.01


def test_distillation_reports_progress(zoo_mlp):
    seen: list[tuple[str, int, int]] = []
    build_variant(zoo_mlp, [DistillConfig(student_width=0.125, student_depth=1, epochs=1)], progress=False,
                  callback=lambda stage, done, total: seen.append((stage, done, total)))
    distill = [s for s in seen if s[0] == "distill"]
    assert distill and distill[-1][1] == distill[-1][2] > 1


def test_a_model_outside_the_zoo_needs_a_student_factory(zoo_mlp):
    from workbench.models import from_module

    user = from_module(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), zoo_mlp.example, eval_data=zoo_mlp.eval_data)
    data = zoo_mlp.eval_data  # any labelled rows do for this check
    with pytest.raises(CompressionError, match="student_factory='package.module:function'"):
        build_variant(user, [DistillConfig(epochs=1)], data=data, progress=False)
    config = DistillConfig(student_factory="workbench.models.architectures:mlp",
                           student_kwargs={"in_features": 784, "hidden": [32]}, epochs=2)
    student = build_variant(user, [config], data=data, progress=False)
    assert student.source == {"kind": "factory", "factory": "workbench.models.architectures:mlp",
                              "kwargs": {"in_features": 784, "hidden": [32]}}
    assert student.variant == "distill-mlp"
    assert student.predict(zoo_mlp.example).shape == (len(zoo_mlp.example), 10)
