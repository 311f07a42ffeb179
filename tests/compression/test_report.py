from __future__ import annotations

import pytest

from workbench.compression import CompressionReport, Measurement, pareto_figure, reports_frame
from workbench.compression.report import pareto_front


def m(variant: str, *, b1: float, b32: float, nbytes: int, accuracy: float | None, runtime: str = "torch") -> Measurement:
    return Measurement(variant=variant, runtime=runtime, parameters=1000, model_bytes=nbytes, artifact_bytes=nbytes + 10,
                       sparsity=0.0, accuracy=accuracy, latency_ms={1: b1, 32: b32})


ORIGINAL = m("fp32", b1=1.0, b32=8.0, nbytes=4000, accuracy=0.97)
INT8 = CompressionReport(original=ORIGINAL, variant=m("int8", b1=0.5, b32=1.0, nbytes=1000, accuracy=0.965),
                         steps=({"step": "quantize", "dtype": "int8"},))
ONNX = CompressionReport(original=ORIGINAL, variant=m("onnx", b1=0.25, b32=2.0, nbytes=4000, accuracy=0.97, runtime="onnx"),
                         steps=({"step": "onnx", "quantize": None},))


def test_ratios_are_against_the_original():
    assert INT8.speedup(1) == 2.0 and INT8.speedup(32) == 8.0
    assert INT8.size_ratio == 4.0
    assert INT8.accuracy_change_pt == pytest.approx(-0.5)


def test_frame_has_the_original_once_then_each_variant():
    frame = reports_frame([INT8, ONNX])
    assert list(frame["variant"]) == ["fp32", "int8", "onnx"]
    assert list(frame["speedup_b1"]) == [1.0, 2.0, 4.0]
    assert list(frame["size_ratio"]) == [1.0, 4.0, 1.0]
    assert frame.loc[1, "steps"] == "quantize dtype=int8"
    assert {"accuracy_pct", "accuracy_change_pt", "latency_b32_ms", "parameters", "model_bytes", "artifact_bytes",
            "sparsity", "runtime"} <= set(frame.columns)
    assert len(INT8.to_frame()) == 2


def test_an_original_measured_again_is_listed_once():
    again = m("fp32", b1=1.2, b32=9.0, nbytes=4000, accuracy=0.97)
    later = CompressionReport(original=again, variant=m("bf16", b1=2.4, b32=3.0, nbytes=2000, accuracy=0.97))
    frame = reports_frame([INT8, later])
    assert list(frame["variant"]) == ["fp32", "int8", "bf16"]
    assert list(frame["speedup_b1"]) == [1.0, 2.0, 0.5]  # bf16 against its own run's original


def test_text_table_and_dict_round_trip():
    text = str(INT8)
    assert "int8" in text and "2.00×" in text and "8.00×" in text and "-0.50" in text
    assert CompressionReport.from_dict(INT8.to_dict()) == INT8


def test_pareto_front_keeps_points_nothing_beats():
    points = [(1.0, 0.97), (0.5, 0.965), (0.25, 0.97), (0.3, 0.90), (2.0, 0.99)]
    assert pareto_front(points) == [2, 4]


def test_pareto_figure_plots_every_model_sized_by_bytes():
    from bokeh.models import ColumnDataSource

    fig = pareto_figure([INT8, ONNX], batch_size=32)
    source = next(r.data_source for r in fig.renderers if isinstance(getattr(r, "data_source", None), ColumnDataSource)
                  and "variant" in r.data_source.data)
    data = source.data
    assert list(data["variant"]) == ["fp32", "int8", "onnx"]
    assert list(data["latency"]) == [8.0, 1.0, 2.0]
    assert data["size"][1] < data["size"][0] == data["size"][2]
    assert "batch 32" in fig.xaxis[0].axis_label
    assert INT8.pareto_figure() is not None
