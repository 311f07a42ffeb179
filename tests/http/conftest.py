"""A real serving ``Server`` (worker processes) with the HTTP API on a free loopback port."""

from __future__ import annotations

import pytest

SLEEPY_MS = 800


@pytest.fixture(scope="session")
def served(zoo_mlp, tmp_path_factory):
    """One Server for the HTTP tests: the zoo MLP, an echo model, and a sleepy model (800 ms a batch,
    one row at a time, a queue of one row) for overload, deadline and drain tests."""
    from workbench.http.serve import serve_http
    from workbench.serving.server import Server
    from workbench.testing import make_artifact

    folder = tmp_path_factory.mktemp("models")
    models = {"mlp": zoo_mlp, "echo": make_artifact("echo", folder / "echo", shape=(4,)),
              "sleepy": make_artifact("sleepy", folder / "sleepy", ms=SLEEPY_MS, shape=(4,))}
    config = {"mlp": None, "echo": None,
              "sleepy": {"batching": {"max_batch_size": 1}, "admission": {"max_queue": 1}}}
    with Server(models=models, config=config) as server, serve_http(server, port=0) as handle:
        yield handle
