"""Fixtures of the tuner tests: a deliberately less accurate variant of the zoo mlp, and a check that
nothing the tuner started outlives it."""

from __future__ import annotations

import copy

import pytest
from tune_helpers import children

from workbench.testing import wait_for


@pytest.fixture(scope="session")
def noisy_mlp(zoo_mlp):
    """The zoo mlp with noise on its weights: a real variant, measurably less accurate."""
    import torch

    module = copy.deepcopy(zoo_mlp.module)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * p.std() * 1.5)
    variant = zoo_mlp.with_changes(module=module, base_state=None, variant="noisy", artifact=None)
    assert variant.evaluate() < zoo_mlp.evaluate() - 0.02
    return variant


@pytest.fixture
def no_leftover_processes():
    """Yields ``leftovers()``: the processes started since the test began that are still alive (processes
    an earlier test or the session left behind are not this test's); after the test, waits for none."""
    before = {p.pid for p in children()}

    def leftovers() -> list:
        return [p for p in children() if p.pid not in before]

    yield leftovers
    wait_for(lambda: not leftovers(), timeout_s=15, message="the tuner's processes to end")
