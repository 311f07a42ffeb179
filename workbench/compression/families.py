"""What compression knows about the zoo families: which layers structured pruning may narrow, how to
read a (pruned) module back into its architecture arguments, and how to shape a distillation student.

Reading the architecture from the module's actual shapes, then rebuilding it and loading the weights
strictly, guarantees that an artifact of a pruned or distilled model rebuilds exactly.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from workbench.errors import CompressionError


def _linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def prunable_layers(family: str | None, module: nn.Module) -> dict[str, nn.Module]:
    """Layers whose output units structured pruning may remove, by name.

    Zoo ``mlp``/``cnn``: every Linear and Conv but the output layer. ``transformer``: the embedding's
    projection ``0.proj``, which stands for the model width (``d_model``: the residual stream that the
    embedding, every LayerNorm, the attention projections of every head and the feed-forward outputs
    share, so they are narrowed together), and the first feed-forward Linear of each encoder layer (its
    ``ff`` units). Any other model: every Linear / Conv but the last one registered (the output layer).
    """
    named = dict(module.named_modules())
    if family == "transformer":
        width = {n: m for n, m in named.items() if n == "0.proj" and isinstance(m, nn.Linear)}
        return {**width, **{n: m for n, m in named.items() if n.endswith(".linear1") and isinstance(m, nn.Linear)}}
    layers: dict[str, nn.Module] = {
        n: m for n, m in named.items() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))
    }
    if family is None:
        layers = {n: m for n, m in layers.items() if not isinstance(m, nn.modules.linear.NonDynamicallyQuantizableLinear)}
    if layers:
        layers.pop(list(layers)[-1])
    return layers


def _holds_weights(m: nn.Module) -> bool:
    return isinstance(m, nn.MultiheadAttention) or any(True for _ in m.parameters(recurse=False))


def pruner_options(family: str | None, module: nn.Module, selected: dict[str, nn.Module]) -> dict[str, Any]:
    """torch-pruning ``MetaPruner`` arguments that narrow exactly the ``selected`` prunable layers.

    A layer that holds weights and is not selected is ignored, which keeps every dependency group it
    belongs to whole. For the transformer, selecting the width (``0.proj``) frees the whole residual
    stream; each attention module's channels are grouped by head, so every head loses the same
    within-head positions (heads stay coherent and equally wide, ``d_model`` stays a multiple of
    ``heads``); the learned positions (a bare parameter) are narrowed along their last dimension.
    """
    keep = set(map(id, selected.values()))
    if family != "transformer":
        ignored = [m for m in module.modules() if id(m) not in keep and _holds_weights(m)]
        return {"ignored_layers": ignored}
    named = dict(module.named_modules())
    head = [m for m in module.modules() if isinstance(m, nn.Linear)][-1]
    ignored = [head] + [m for n, m in named.items() if n.endswith(".linear1") and id(m) not in keep]
    options: dict[str, Any] = {}
    if "0.proj" in selected:
        heads = {m: m.num_heads for m in module.modules() if isinstance(m, nn.MultiheadAttention)}
        options = {"out_channel_groups": dict(heads), "in_channel_groups": dict(heads)}
        position = getattr(named.get("0"), "position", None)
        if isinstance(position, nn.Parameter):
            options["unwrapped_parameters"] = [(position, position.dim() - 1)]
    else:
        ignored += [m for n, m in named.items() if n and not n.endswith(".linear1") and _holds_weights(m)]
    return {"ignored_layers": list({id(m): m for m in ignored}.values()), **options}


def arch_of(family: str, module: nn.Module, arch: dict[str, Any]) -> dict[str, Any]:
    """The architecture arguments of ``module`` (a member of ``family``), starting from ``arch``."""
    new = dict(arch)
    if family == "mlp":
        new["hidden"] = [m.out_features for m in _linears(module)[:-1]]
    elif family == "cnn":
        convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
        new["channels"] = [c.out_channels for c in convs]
        new["hidden"] = _linears(module)[0].out_features
    elif family == "transformer":
        layers = [m for m in module.modules() if isinstance(m, nn.TransformerEncoderLayer)]
        widths = {layer.linear1.out_features for layer in layers}
        if len(widths) != 1:
            raise CompressionError(
                f"the transformer family has one feed-forward width for all layers; pruning left {sorted(widths)}: "
                "select the linear1 of every layer or of none"
            )
        new["ff"] = widths.pop()
        new["layers"] = len(layers)
        new["d_model"] = layers[0].linear1.in_features
    else:
        raise CompressionError(f"compression does not know the architecture family {family!r}")
    return new


def rebuild_check(family: str, arch: dict[str, Any], module: nn.Module) -> None:
    """Raise unless ``build_architecture(family, arch)`` takes ``module``'s weights exactly."""
    from workbench.models.architectures import build_architecture

    try:
        build_architecture(family, arch).load_state_dict(module.state_dict(), strict=True)
    except Exception as exc:
        raise CompressionError(
            f"the compressed model no longer matches a {family} architecture ({arch}): {exc}"
        ) from None


def _scaled(width: int, fraction: float, multiple: int = 1) -> int:
    return max(multiple, int(round(width * fraction / multiple)) * multiple)


def student_arch(family: str, arch: dict[str, Any], width: float, depth: int | None) -> dict[str, Any]:
    """The student's architecture: ``width`` times as wide, ``depth`` layers deep (None: unchanged)."""
    from workbench.models.architectures import ARCHITECTURES

    if family not in ARCHITECTURES:
        raise CompressionError(f"compression does not know the architecture family {family!r}")
    defaults = {k: p.default for k, p in inspect.signature(ARCHITECTURES[family]).parameters.items()}
    full = {**defaults, **arch}
    new = dict(arch)
    if family == "mlp":
        hidden = [_scaled(int(h), width) for h in full["hidden"]]
        if depth is not None:
            hidden = (hidden + [hidden[-1]] * depth)[:depth] if hidden else [_scaled(512, width)] * depth
        new["hidden"] = hidden
    elif family == "cnn":
        if depth is not None and depth != 2:
            raise CompressionError("the cnn family always has 2 convolutions: leave student_depth unset (or 2)")
        new["channels"] = [_scaled(int(c), width) for c in full["channels"]]
        new["hidden"] = _scaled(int(full["hidden"]), width)
    elif family == "transformer":
        heads = int(full["heads"])
        new["d_model"] = _scaled(int(full["d_model"]), width, multiple=heads)
        new["ff"] = _scaled(int(full["ff"]), width)
        if depth is not None:
            new["layers"] = depth
    else:
        raise CompressionError(f"compression does not know the architecture family {family!r}")
    return new


__all__ = ["arch_of", "prunable_layers", "pruner_options", "rebuild_check", "student_arch"]
