"""Small models and helpers that tests, notebooks and benchmarks share.

Every model here is an ``nn.Sequential`` built by a plain function, so an artifact of it records the
factory (``"workbench.testing:<name>"``) and workers rebuild it by import, never by unpickling, and it
can be cut into pipeline stages::

    art = make_artifact("echo", tmp_path / "echo", shape=(4,))       # output == input
    art = make_artifact("sleepy", tmp_path / "s", ms=20)              # sleeps 20 ms per batch
    art = make_artifact("sleepy", tmp_path / "h", hang_value=-7.0)    # hangs on inputs holding -7
    art = make_artifact("reference_mlp", tmp_path / "m")              # 784-1024-1024-10, seeded

Importing this module does not import torch; building a model does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

_FACTORIES = ("echo_model", "sleepy_model", "reference_mlp")


def echo_model(shape: Sequence[int] = (4,), layers: int = 2) -> Any:
    """``layers`` identity layers: the output is the input (so results can be matched to requests)."""
    from torch import nn

    _ = shape  # recorded in the artifact's factory kwargs; identity layers take any shape
    return nn.Sequential(*[nn.Identity() for _ in range(max(1, int(layers)))])


def _sleep_layer(ms: float, hang_value: float | None, error_value: float | None) -> Any:
    import torch
    from torch import nn

    class Sleep(nn.Module):
        """Sleeps ``ms`` per batch; hangs (sleeps for an hour) on a batch holding ``hang_value``; raises
        on a batch holding ``error_value``."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if hang_value is not None and bool((x == hang_value).any()):
                time.sleep(3600)
            if error_value is not None and bool((x == error_value).any()):
                raise ValueError(f"the input holds {error_value}, which this test model refuses")
            if ms > 0:
                time.sleep(ms / 1000.0)
            return x

    return Sleep()


def sleepy_model(ms: float = 10.0, shape: Sequence[int] = (4,), hang_value: float | None = None,
                 error_value: float | None = None, layers: int = 1) -> Any:
    """An echo model of ``layers`` layers that each sleep ``ms`` per batch (whatever its size). With
    ``hang_value`` it hangs whenever an input holds that value (hung-worker tests); with
    ``error_value`` it raises (model-error tests). Neither may be 0: the example input is zeros."""
    from torch import nn

    _ = shape
    return nn.Sequential(*[_sleep_layer(float(ms), hang_value, error_value) for _ in range(max(1, int(layers)))],
                         nn.Identity())


def reference_mlp(seed: int = 0) -> Any:
    """The reference MLP 784-1024-1024-10 of the peer baselines: seeded, untrained."""
    import torch

    from workbench.models.architectures import mlp

    torch.manual_seed(int(seed))
    return mlp(in_features=784, hidden=(1024, 1024), classes=10)


def make_model(kind: str, *, name: str | None = None, **kwargs: Any) -> Any:
    """A :class:`workbench.models.Model` of one of the test models (``echo``, ``sleepy``,
    ``reference_mlp``), rebuildable by factory in any process."""
    from workbench.errors import ConfigError
    from workbench.models.loading import from_module

    fn_name = kind if kind in _FACTORIES else f"{kind}_model"
    if fn_name not in _FACTORIES:
        raise ConfigError(f"unknown test model {kind!r}; known: echo, sleepy, reference_mlp")
    factory: Callable[..., Any] = globals()[fn_name]
    kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}
    module = factory(**kwargs)
    if fn_name == "reference_mlp":
        example = np.random.default_rng(0).standard_normal((2, 784)).astype(np.float32)
    else:
        example = np.zeros((1, *kwargs.get("shape", (4,))), dtype=np.float32)
    return from_module(module, example, name=name or kind, factory=f"workbench.testing:{fn_name}",
                       factory_kwargs=kwargs)


def make_artifact(kind: str, folder: str | Path, *, name: str | None = None, **kwargs: Any) -> Any:
    """Save a test model (see :func:`make_model`) as a ``ModelArtifact`` in ``folder``."""
    return make_model(kind, name=name, **kwargs).save(folder)


def wait_for(condition: Callable[[], Any], timeout_s: float = 10.0, interval_s: float = 0.02,
             message: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy and return that; ``TimeoutError`` after
    ``timeout_s``. For tests and notebooks that wait on a server (never a bare sleep)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{message} not met within {timeout_s} s")
        time.sleep(interval_s)


__all__ = ["echo_model", "make_artifact", "make_model", "reference_mlp", "sleepy_model", "wait_for"]
