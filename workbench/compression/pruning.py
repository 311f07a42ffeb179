"""Pruning: magnitude (L1) unstructured zeroing, and structured removal of neurons / channels.

Unstructured pruning uses ``torch.nn.utils.prune`` to pick the smallest weights; the zeros are baked
into the weights (shapes unchanged, so on CPU nothing shrinks or speeds up without sparse kernels).
Structured pruning uses torch-pruning's ``MetaPruner`` with L1 group importance, which follows the
dependency graph (a Linear's removed outputs are removed from the next layer's inputs too), then
fine-tunes briefly. On the zoo transformer "hidden units" are the model width (d_model: embedding,
every LayerNorm, every head's attention projections, feed-forward outputs, classifier input, narrowed
together with each head keeping equally many of its dimensions) and the feed-forward units; the result
is an ordinary, narrower ``nn.TransformerEncoder``. For zoo models the result is a smaller member of the same family, so its artifact
rebuilds from the architecture arguments.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.compression.config import PruneConfig, resolve_filter
from workbench.compression.families import arch_of, prunable_layers, pruner_options, rebuild_check
from workbench.compression.registry import StepContext, Work, register_method
from workbench.errors import CompressionError

_TRANSFORMER_UNITS = "'0.proj' for the model width d_model, each 'linear1' for the feed-forward units; "


def _weight_params(module: nn.Module) -> dict[str, nn.Parameter]:
    """A module's own weight matrices / kernels (``weight`` or ``*_weight``, at least 2-D)."""
    return {
        n: p for n, p in module.named_parameters(recurse=False)
        if p.dim() >= 2 and (n == "weight" or n.endswith("_weight"))
    }


def _fine_tune(work: Work, module: nn.Module, config: PruneConfig, context: StepContext) -> None:
    from workbench.models.zoo import train_classifier

    x, y = context.data.require_train(f"fine-tuning after {config.method} pruning (fine_tune_epochs > 0)")
    train_classifier(
        module, x, y, epochs=config.epochs, lr=config.lr, seed=context.seed, progress=context.progress,
        desc=f"fine-tuning ({config.method} pruning)", callback=context.report("fine-tune"),
    )


def _unstructured(work: Work, config: PruneConfig, context: StepContext) -> Work:
    from torch.nn.utils import prune as torch_prune

    module = work.base
    chosen = resolve_filter(config.filter_fn)
    selected: dict[str, nn.Module] = {}
    for name, m in module.named_modules():
        if chosen is not None and not chosen(m, name):
            continue
        if not _weight_params(m):
            if chosen is not None and name:
                raise CompressionError(
                    f"unstructured pruning zeroes weight matrices and kernels (Linear, Conv, attention "
                    f"projections); the filter selected {name!r} ({type(m).__name__}), which has none"
                )
            continue
        selected[name] = m
    if not selected:
        raise CompressionError("unstructured pruning found no layer with weight matrices to prune")
    masks: dict[nn.Parameter, torch.Tensor] = {}
    for m in selected.values():
        for pname in _weight_params(m):
            torch_prune.l1_unstructured(m, pname, amount=float(config.sparsity))
            torch_prune.remove(m, pname)  # bake the zeros into the parameter
            new_param = getattr(m, pname)
            masks[new_param] = new_param.detach() != 0
    hooks = [p.register_hook(lambda g, mask=mask: g * mask) for p, mask in masks.items()]
    try:
        if config.epochs:
            _fine_tune(work, module, config, context)  # masked gradients keep pruned weights at zero
    finally:
        for h in hooks:
            h.remove()
    with torch.no_grad():
        for p, mask in masks.items():
            p.mul_(mask)
    zeros = sum(int((~mask).sum()) for mask in masks.values())
    total = sum(mask.numel() for mask in masks.values())
    work.record(
        config, fine_tune_epochs=config.epochs, layers=sorted(selected), reached_sparsity=zeros / max(1, total),
        note="weights zeroed, shapes unchanged: no smaller model and no speed-up on CPU without sparse kernels",
    )
    return work


def _structured(work: Work, config: PruneConfig, context: StepContext) -> Work:
    import torch_pruning as tp

    module = work.base
    family = work.family
    candidates = prunable_layers(family, module)
    chosen = resolve_filter(config.filter_fn)
    if chosen is None:
        selected = candidates
    else:
        selected = {}
        for name, m in module.named_modules():
            if name and chosen(m, name):
                if name not in candidates:
                    raise CompressionError(
                        f"structured pruning can remove output units of {sorted(candidates)} "
                        f"({_TRANSFORMER_UNITS if family == 'transformer' else ''}never the output "
                        f"layer); the filter selected {name!r} ({type(m).__name__})"
                    )
                selected[name] = m
    if not selected:
        raise CompressionError("structured pruning found no layer to narrow (the filter selected none)")
    options = pruner_options(family, module, selected)
    before = {n: _width(m) for n, m in selected.items()}
    example = torch.from_numpy(np.ascontiguousarray(work.example[:1]))
    module.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. about parameters it leaves alone (the transformer's positions)
            pruner = tp.pruner.MetaPruner(
                module, example, importance=tp.importance.MagnitudeImportance(p=1),
                pruning_ratio=float(config.sparsity), global_pruning=False, **options,
            )
            pruner.step()
    except Exception as exc:  # torch-pruning could not trace or prune this model
        raise CompressionError(f"structured pruning failed on this model ({type(exc).__name__}: {exc})") from None
    after = {n: _width(m) for n, m in selected.items()}
    done: dict[str, Any] = {"widths_before": before, "widths_after": after}
    if family is not None:
        arch = arch_of(family, module, dict(work.source.get("arch", {})))
        rebuild_check(family, arch, module)
        from workbench.models.architectures import build_architecture

        rebuilt = build_architecture(family, arch)
        rebuilt.load_state_dict(module.state_dict())
        work.base = module = rebuilt
        done["arch_before"], done["arch_after"] = work.source.get("arch"), arch
        work.source = {**work.source, "arch": arch}
    elif work.source.get("kind") == "factory":
        # the factory rebuilds the original widths: the smaller model is saved as a program instead
        work.source = {"kind": "module"}
        done["saved_as"] = "torch.export program (the factory builds the unpruned widths)"
    if config.epochs:
        _fine_tune(work, module, config, context)
    work.record(config, fine_tune_epochs=config.epochs, **done)
    return work


def _width(m: nn.Module) -> int:
    for attr in ("out_features", "out_channels"):
        if isinstance(getattr(m, attr, None), int):
            return int(getattr(m, attr))
    return 0


@register_method(PruneConfig)
def prune(work: Work, config: PruneConfig, context: StepContext) -> Work:
    """Apply :class:`PruneConfig` to the variant's fp32 model."""
    work.require_plain(f"{config.method} pruning")
    if config.sparsity == 0:
        work.record(config, note="sparsity 0: nothing pruned")
        return work
    if config.method == "unstructured":
        return _unstructured(work, config, context)
    return _structured(work, config, context)


__all__ = ["prune"]
