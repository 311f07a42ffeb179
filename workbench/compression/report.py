"""``CompressionReport``: a variant measured against its original in the same run, as numbers, a
table (pandas DataFrame) and a Pareto plot (Bokeh: accuracy vs latency, marker size = model size).
pandas and bokeh are imported only when a table or figure is asked for."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from workbench.compression.measure import Measurement


@dataclass(frozen=True)
class CompressionReport:
    """One variant against its original: what was done (``steps``, the lineage entries of this run) and
    both measurements. ``compress_s``: seconds spent building (in ``compare()``, all variants together)."""

    original: Measurement
    variant: Measurement
    steps: tuple[Mapping[str, Any], ...] = field(default=())
    compress_s: float = 0.0

    def speedup(self, batch_size: int = 1) -> float:
        """Original latency / variant latency at ``batch_size`` (> 1 means the variant is faster)."""
        return self.original.latency(batch_size) / self.variant.latency(batch_size)

    @property
    def size_ratio(self) -> float:
        """Original serialized bytes / variant serialized bytes (> 1 means the variant is smaller)."""
        return self.original.model_bytes / max(1, self.variant.model_bytes)

    @property
    def accuracy_change_pt(self) -> float | None:
        """Change in held-out accuracy in percentage points (negative: the variant lost accuracy)."""
        if self.original.accuracy is None or self.variant.accuracy is None:
            return None
        return 100.0 * (self.variant.accuracy - self.original.accuracy)

    def to_dict(self) -> dict[str, Any]:
        return {"original": self.original.to_dict(), "variant": self.variant.to_dict(),
                "steps": [dict(s) for s in self.steps], "compress_s": self.compress_s}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CompressionReport:
        return cls(original=Measurement.from_dict(data["original"]), variant=Measurement.from_dict(data["variant"]),
                   steps=tuple(dict(s) for s in data.get("steps", ())), compress_s=float(data.get("compress_s", 0.0)))

    def to_frame(self) -> Any:
        """A DataFrame with one row for the original and one for the variant."""
        return reports_frame([self])

    def pareto_figure(self, batch_size: int = 1) -> Any:
        """A Bokeh figure: accuracy vs latency at ``batch_size``, marker area ∝ serialized size."""
        return pareto_figure([self], batch_size=batch_size)

    def __str__(self) -> str:
        return format_table([self])


def _row(m: Measurement, base: Measurement, steps: str) -> dict[str, Any]:
    row: dict[str, Any] = {
        "variant": m.variant, "runtime": m.runtime,
        "accuracy_pct": None if m.accuracy is None else 100.0 * m.accuracy,
        "accuracy_change_pt": None if m.accuracy is None or base.accuracy is None else 100.0 * (m.accuracy - base.accuracy),
    }
    for b, ms in sorted(m.latency_ms.items()):
        row[f"latency_b{b}_ms"] = ms
        row[f"speedup_b{b}"] = base.latency_ms[b] / ms if b in base.latency_ms else None
    row.update({
        "parameters": m.parameters, "model_bytes": m.model_bytes, "size_ratio": base.model_bytes / max(1, m.model_bytes),
        "artifact_bytes": m.artifact_bytes, "sparsity": m.sparsity, "steps": steps,
    })
    return row


def _describe(steps: Sequence[Mapping[str, Any]]) -> str:
    return " → ".join(
        " ".join([str(s.get("step"))] + [f"{k}={v}" for k, v in s.items()
                                        if k in ("method", "sparsity", "dtype", "quantize", "student_width", "student_depth")
                                        and v is not None])
        for s in steps
    )


def _same_model(a: Measurement, b: Measurement) -> bool:
    return (a.variant, a.parameters, a.model_bytes, a.accuracy) == (b.variant, b.parameters, b.model_bytes, b.accuracy)


def rows(reports: Sequence[CompressionReport]) -> list[dict[str, Any]]:
    """Table rows: each distinct original once (its first measurement), then every variant, whose ratios
    are against the original measured in its own run."""
    out: list[dict[str, Any]] = []
    seen: list[Measurement] = []
    for r in reports:
        if not any(_same_model(r.original, s) for s in seen):
            seen.append(r.original)
            out.append(_row(r.original, r.original, "original"))
        out.append(_row(r.variant, r.original, _describe(r.steps)))
    return out


def reports_frame(reports: Sequence[CompressionReport]) -> Any:
    """A pandas DataFrame of :func:`rows`."""
    import pandas as pd

    return pd.DataFrame(rows(reports))


def format_table(reports: Sequence[CompressionReport]) -> str:
    """A plain-text table for terminals: accuracy, speed at each batch size, size."""
    table = rows(reports)
    batches = sorted({int(k[len("latency_b"):-3]) for r in table for k in r if k.startswith("latency_b")})
    header = ["variant", "runtime", "accuracy", "Δacc pt"] + [f"b{b} ms  (×)" for b in batches] + ["size MB (×)", "params", "sparsity"]
    lines = []
    for r in table:
        cells = [
            str(r["variant"]), str(r["runtime"]),
            "-" if r["accuracy_pct"] is None else f"{r['accuracy_pct']:.2f}%",
            "-" if r["accuracy_change_pt"] is None else f"{r['accuracy_change_pt']:+.2f}",
        ]
        for b in batches:
            cells.append(f"{r[f'latency_b{b}_ms']:.3f} ({r[f'speedup_b{b}']:.2f}×)")
        cells += [f"{r['model_bytes'] / 1e6:.2f} ({r['size_ratio']:.2f}×)", f"{r['parameters']:,}",
                  "-" if r["sparsity"] is None else f"{r['sparsity']:.2f}"]
        lines.append(cells)
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [fmt.format(*c) for c in lines])


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the (latency, accuracy) points no other point beats on both (lower latency, higher accuracy)."""
    front = []
    for i, (lat, acc) in enumerate(points):
        if not any((l2 <= lat and a2 >= acc) and (l2 < lat or a2 > acc) for j, (l2, a2) in enumerate(points) if j != i):
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def pareto_figure(reports: Sequence[CompressionReport], *, batch_size: int = 1, title: str | None = None) -> Any:
    """A Bokeh figure of every original and variant: latency (x, log) vs accuracy (y), marker area ∝ bytes,
    the Pareto front joined by a line, hover showing the numbers."""
    from bokeh.models import ColumnDataSource, HoverTool
    from bokeh.plotting import figure

    table = [r for r in rows(reports) if r["accuracy_pct"] is not None]
    key = f"latency_b{batch_size}_ms"
    biggest = max((r["model_bytes"] for r in table), default=1) or 1
    data = {
        "variant": [r["variant"] for r in table], "latency": [r[key] for r in table],
        "accuracy": [r["accuracy_pct"] for r in table], "mb": [r["model_bytes"] / 1e6 for r in table],
        "speedup": [r[f"speedup_b{batch_size}"] for r in table], "size_ratio": [r["size_ratio"] for r in table],
        "size": [8 + 32 * (r["model_bytes"] / biggest) ** 0.5 for r in table],
        "color": ["#444444" if r["steps"] == "original" else "#1f77b4" for r in table],
    }
    fig = figure(title=title or f"Compression: accuracy vs latency at batch {batch_size} (marker size = model size)",
                 x_axis_type="log", x_axis_label=f"latency at batch {batch_size} (ms, 1 thread)",
                 y_axis_label="held-out accuracy (%)", width=720, height=420, tools="pan,wheel_zoom,box_zoom,reset,save")
    source = ColumnDataSource(data)
    fig.scatter("latency", "accuracy", size="size", color="color", alpha=0.6, source=source)
    front = pareto_front(list(zip(data["latency"], data["accuracy"])))
    fig.line([data["latency"][i] for i in front], [data["accuracy"][i] for i in front], line_dash="dashed",
             color="#d62728", legend_label="Pareto front")
    fig.text("latency", "accuracy", text="variant", source=source, text_font_size="8pt", x_offset=6, y_offset=-6)
    fig.add_tools(HoverTool(tooltips=[("variant", "@variant"), ("latency", "@latency{0.000} ms"),
                                      ("speed-up", "@speedup{0.00}×"), ("accuracy", "@accuracy{0.00}%"),
                                      ("size", "@mb{0.00} MB (@size_ratio{0.00}× smaller)")]))
    fig.legend.location = "bottom_right"
    return fig


__all__ = ["CompressionReport", "format_table", "pareto_figure", "pareto_front", "reports_frame", "rows"]
