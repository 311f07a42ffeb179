"""The worker's micro-batching and reassembly, and a real stage process's life."""

from __future__ import annotations

import multiprocessing as mp
import os

import numpy as np

from workbench.serving.messages import Result, Shutdown, StageSpec, WorkerReady, WorkItem
from workbench.serving.worker import Joiner, micro_batches, worker_main
from workbench.testing import make_artifact


def spec(artifact, stages: int = 1, micro: int | None = None) -> StageSpec:
    return StageSpec(replica="t/r0", artifact=artifact, stage=0, stages=stages, split=None, threads=1,
                     device="cpu", micro_batch_rows=micro, parent_pid=os.getpid())


def test_micro_batches_cover_the_batch_in_order_and_join_back():
    data = np.arange(20, dtype=np.float32).reshape(10, 2)
    parts = micro_batches(WorkItem(batch_id=7, data=data), spec(None, stages=2, micro=3), started=5.0)
    assert [len(p.data) for p in parts] == [3, 3, 3, 1] and {p.parts for p in parts} == {4}
    joiner = Joiner()
    results = [joiner.add(p) for p in reversed(parts)]  # whatever order the parts come in
    assert results[:-1] == [None, None, None]
    result = results[-1]
    assert isinstance(result, Result) and result.batch_id == 7 and result.compute_start == 5.0
    np.testing.assert_array_equal(result.data, data)
    default = micro_batches(WorkItem(batch_id=1, data=data), spec(None, stages=3), started=0.0)
    assert [len(p.data) for p in default] == [4, 4, 2]  # ceil(rows / stages)


def test_a_failed_part_fails_the_whole_batch():
    joiner = Joiner()
    assert joiner.add(WorkItem(batch_id=1, data=np.ones((1, 2)), part=0, parts=2)) is None
    result = joiner.add(WorkItem(batch_id=1, data=None, part=1, parts=2, error="ValueError: bad"))
    assert result.error == "ValueError: bad" and result.data is None


def test_a_stage_process_serves_then_stops(tmp_path):
    artifact = make_artifact("echo", tmp_path / "echo", shape=(2,))
    ctx = mp.get_context("spawn")
    (in_r, in_w), (out_r, out_w) = ctx.Pipe(duplex=False), ctx.Pipe(duplex=False)
    proc = ctx.Process(target=worker_main, args=(spec(artifact), in_r, out_w), daemon=True)
    proc.start()
    in_r.close()
    out_w.close()
    try:
        assert out_r.poll(60)
        ready = out_r.recv()
        assert isinstance(ready, WorkerReady) and ready.pid == proc.pid and ready.device == "cpu"
        x = np.ones((3, 2), np.float32)
        in_w.send(WorkItem(batch_id=4, data=x))
        assert out_r.poll(10)
        result = out_r.recv()
        assert result.batch_id == 4 and result.compute_start <= result.compute_end
        np.testing.assert_array_equal(result.data, x)
        in_w.send(Shutdown())
        proc.join(timeout=10)
        assert proc.exitcode == 0
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join(5)
