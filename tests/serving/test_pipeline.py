"""Model parallelism: a model cut into K stage processes computes what the uncut model computes,
with micro-batches flowing so the stages work at the same time."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import ConfigError
from workbench.models import from_module
from workbench.serving import ServeConfig, Server
from workbench.testing import make_artifact, wait_for


@pytest.mark.parametrize(
    ("replicas", "stages", "split"),
    [(2, 1, None), (1, 2, None), (1, 3, (2, 4))],
    ids=["2 replicas", "2 stages", "3 stages, explicit split"],
)
def test_every_placement_computes_what_the_model_computes(artifacts, replicas, stages, split):
    x = np.random.default_rng(3).standard_normal((37, 784)).astype(np.float32)
    expected = artifacts.mlp.build_runner()(x)
    config = ServeConfig(placement={"replicas": replicas, "stages": stages, "split": split, "micro_batch_rows": 4},
                         batching={"max_batch_size": 16})
    with Server(models={"mlp": artifacts.mlp}, config=config) as server:
        stats = server.stats()["mlp"]
        assert stats["replicas"]["ready"] == replicas
        assert all(len(w["pids"]) == stages for w in stats["workers"].values())
        outputs = [server.infer("mlp", x[i:i + 5]) for i in range(0, len(x), 5)]
        np.testing.assert_allclose(np.concatenate(outputs), expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(server.infer("mlp", x), expected, rtol=1e-5, atol=1e-5)  # split over batches


def test_two_pipelines_of_a_cnn_cut_across_flatten_match(tmp_path):
    import torch

    from workbench.models.architectures import cnn

    torch.manual_seed(0)
    module = cnn(channels=(4, 8), hidden=16)
    example = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    artifact = from_module(module, example, name="cnn", factory="workbench.models.architectures:cnn",
                           factory_kwargs={"channels": [4, 8], "hidden": 16}).save(tmp_path / "cnn")
    x = np.random.default_rng(4).standard_normal((9, 1, 28, 28)).astype(np.float32)
    expected = artifact.build_runner()(x)
    config = ServeConfig(placement={"replicas": 2, "stages": 2, "split": [5]})  # N pipelines: N x K processes
    with Server(models={"cnn": artifact}, config=config) as server:
        assert sorted(len(w["pids"]) for w in server.stats()["cnn"]["workers"].values()) == [2, 2]
        for _ in range(3):
            np.testing.assert_allclose(server.infer("cnn", x), expected, rtol=1e-5, atol=1e-5)


def test_micro_batches_let_the_stages_work_at_the_same_time(tmp_path):
    # two stages that each sleep 60 ms per micro-batch; 4 micro-batches:
    # in turn that is 4 * 2 * 60 = 480 ms, pipelined (4 + 1) * 60 = 300 ms
    artifact = make_artifact("sleepy", tmp_path / "two", ms=60, shape=(4,), layers=2)
    config = ServeConfig(placement={"stages": 2, "split": [1], "micro_batch_rows": 1})
    records = []
    with Server(models={"s": artifact}, config=config) as server:
        unsubscribe = server.subscribe(records.extend)
        x = np.arange(16, dtype=np.float32).reshape(4, 4)
        np.testing.assert_array_equal(server.infer("s", x), x)
        wait_for(lambda: records)
        unsubscribe()
    (record,) = records
    assert record.batch_size == 4
    assert record.compute_s < 0.42, f"stages did not overlap: the batch took {record.compute_s * 1000:.0f} ms"


def test_models_that_cannot_be_cut_get_a_clear_error(tmp_path):
    import torch
    from torch import nn

    class Block(nn.Module):  # not a Sequential, saved as a torch.export program
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.a(x))

    artifact = from_module(Block(), np.zeros((1, 4), np.float32), name="block").save(tmp_path / "block")
    with pytest.raises(ConfigError, match="export artifact and cannot be cut into stages"):
        Server(models={"block": artifact}, config=ServeConfig(placement={"stages": 2})).start()
    echo = make_artifact("echo", tmp_path / "echo", layers=2)
    with pytest.raises(ConfigError, match="has 2 top-level layers: stages must be <= that"):
        Server(models={"e": echo}, config=ServeConfig(placement={"stages": 3})).start()
