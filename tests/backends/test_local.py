"""The local backend implements the Backend protocol and is built by name."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.backends import create_backend
from workbench.backends.base import Backend
from workbench.backends.local import LocalBackend
from workbench.errors import ConfigError
from workbench.testing import make_artifact


def test_local_backend_serves_through_the_protocol(tmp_path):
    artifact = make_artifact("echo", tmp_path / "echo", shape=(3,))
    backend = create_backend("local", models={"echo": artifact})
    assert isinstance(backend, LocalBackend) and isinstance(backend, Backend)
    with backend:
        x = np.ones((2, 3), np.float32)
        np.testing.assert_array_equal(backend.infer("echo", x), x)
        assert backend.models() == ["echo"]
        assert backend.model_info("echo")["signature"]["input"]["shape"] == [3]
        assert backend.reconfigure("echo", max_batch_size=4).batching.max_batch_size == 4
        assert backend.stats()["echo"]["outcomes"] == {"ok": 1}


def test_unknown_backends_are_named():
    with pytest.raises(ConfigError, match=r"unknown backend 'k8s'; known: \['local', 'ray'\]"):
        create_backend("k8s")
