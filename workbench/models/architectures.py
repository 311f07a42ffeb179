"""The zoo's network architectures, each an ``nn.Sequential`` so it can be cut into pipeline stages.

Every builder takes only plain keyword arguments (ints and tuples of ints), so an architecture is fully
described by its name and a small dict: that dict travels in model artifacts instead of a pickle.
Structured pruning and distillation produce smaller members of the same families by changing them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from workbench.errors import ConfigError


def mlp(*, in_features: int = 784, hidden: Sequence[int] = (512, 512), classes: int = 10) -> nn.Sequential:
    """Multilayer perceptron: Linear → ReLU for each hidden width, then a Linear head."""
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, int(h)), nn.ReLU()]
        width = int(h)
    layers.append(nn.Linear(width, classes))
    return nn.Sequential(*layers)


def cnn(*, channels: Sequence[int] = (32, 64), hidden: int = 128, classes: int = 10) -> nn.Sequential:
    """The classic small digit CNN for 1×28×28 images: two 3×3 convolutions, 2×2 max pooling, two Linears."""
    c1, c2 = (int(c) for c in channels)
    return nn.Sequential(
        nn.Conv2d(1, c1, 3),
        nn.ReLU(),
        nn.Conv2d(c1, c2, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(c2 * 12 * 12, int(hidden)),
        nn.ReLU(),
        nn.Linear(int(hidden), classes),
    )


class RowEmbedding(nn.Module):
    """Reads a (rows, features) input as a sequence of tokens: a Linear per row plus a learned position
    (initialised small and random, so the positions are told apart from the first step)."""

    def __init__(self, rows: int, features: int, d_model: int):
        super().__init__()
        self.proj = nn.Linear(features, d_model)
        self.position = nn.Parameter(torch.randn(1, rows, d_model) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x) + self.position


class MeanPool(nn.Module):
    """Averages the token dimension: (batch, tokens, d) → (batch, d)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1)


def transformer(
    *, rows: int = 28, features: int = 28, d_model: int = 64, heads: int = 4, layers: int = 2,
    ff: int = 128, classes: int = 10,
) -> nn.Sequential:
    """A small Transformer encoder that reads each image row as a token, mean-pools, and classifies."""
    layer = nn.TransformerEncoderLayer(
        d_model=int(d_model), nhead=int(heads), dim_feedforward=int(ff), dropout=0.0, batch_first=True
    )
    return nn.Sequential(
        RowEmbedding(int(rows), int(features), int(d_model)),
        nn.TransformerEncoder(layer, num_layers=int(layers), enable_nested_tensor=False),
        MeanPool(),
        nn.LayerNorm(int(d_model)),
        nn.Linear(int(d_model), classes),
    )


ARCHITECTURES: dict[str, Callable[..., nn.Sequential]] = {"mlp": mlp, "cnn": cnn, "transformer": transformer}


def build_architecture(family: str, arch: dict[str, Any]) -> nn.Sequential:
    """Build ``family`` with the keyword arguments in ``arch``; a clear error for unknown names or arguments."""
    try:
        builder = ARCHITECTURES[family]
    except KeyError:
        raise ConfigError(f"unknown architecture {family!r}; known: {sorted(ARCHITECTURES)}") from None
    try:
        return builder(**arch)
    except TypeError as exc:
        raise ConfigError(f"architecture {family!r} does not accept {sorted(arch)}: {exc}") from None


__all__ = ["ARCHITECTURES", "MeanPool", "RowEmbedding", "build_architecture", "cnn", "mlp", "transformer"]
