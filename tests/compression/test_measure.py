from __future__ import annotations

import pytest
import torch

from workbench.compression.measure import Measurement, measure, measure_many, time_models


def test_measurement_covers_size_sparsity_accuracy_and_latency(zoo_mlp, mlp_variants):
    original, pruned, int8, onnx_int8 = measure_many(
        [zoo_mlp, mlp_variants["unstructured"], mlp_variants["int8"], mlp_variants["onnx-int8"]], repeats=3,
    )
    assert original.variant == "fp32" and original.runtime == "torch" and onnx_int8.runtime == "onnx"
    assert original.parameters == zoo_mlp.num_parameters == int8.parameters == onnx_int8.parameters
    assert original.accuracy == zoo_mlp.evaluate() and int8.accuracy == mlp_variants["int8"].evaluate()
    assert original.sparsity == 0.0 and pruned.sparsity == pytest.approx(0.5, abs=0.005)
    # int8 weights take a quarter of the bytes; unstructured zeros take as many bytes as before
    assert int8.model_bytes < 0.3 * original.model_bytes and onnx_int8.model_bytes < 0.3 * original.model_bytes
    assert pruned.model_bytes == pytest.approx(original.model_bytes, rel=0.01)
    assert original.model_bytes == pytest.approx(4 * original.parameters, rel=0.05)
    # the artifact of a torch int8 variant holds the fp32 weights plus the transform
    assert int8.artifact_bytes == pytest.approx(original.artifact_bytes, rel=0.02)
    for m in (original, pruned, int8, onnx_int8):
        assert set(m.latency_ms) == {1, 32} and all(v > 0 for v in m.latency_ms.values())
        assert m.latency(32) > m.latency(1)  # 32 rows take longer than one
        assert m.threads == 1


def test_measuring_restores_the_thread_count(zoo_mlp):
    before = torch.get_num_threads()
    measure(zoo_mlp, repeats=1, batch_sizes=(1,), accuracy=False)
    assert torch.get_num_threads() == before


def test_round_trip_and_bad_requests(zoo_mlp):
    m = measure(zoo_mlp, repeats=1, batch_sizes=(1,), accuracy=False)
    assert m.accuracy is None
    assert Measurement.from_dict(m.to_dict()) == m
    with pytest.raises(ValueError, match="batch size 32 was not measured"):
        m.latency(32)
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        measure(zoo_mlp, repeats=0)


def test_time_models_tells_slow_from_fast():
    import time

    def fast(x):
        return x

    def slow(x):
        deadline = time.perf_counter() + 0.001
        while time.perf_counter() < deadline:
            pass
        return x

    fast_s, slow_s = time_models([fast, slow], [None, None], repeats=3, min_block_s=0.002)
    assert slow_s >= 0.001 > fast_s
