"""What a tuning session found: the best trial, a one-line verdict, which knobs mattered, and the config
to serve as YAML (``workbench serve MODEL --config best.yaml``; the Ray backend takes the same file)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.tune.explain import explain
from workbench.tune.select import closest, select_best
from workbench.tune.space import SERVE_KNOBS
from workbench.tune.trial import Objective, Trial


def _describe_config(trial: Trial) -> str:
    knobs = ", ".join(f"{k}={trial.config[k]}" for k in SERVE_KNOBS if k in trial.config)
    return f"{knobs}, variant {trial.variant}"


@dataclass
class TuneResult:
    """``best`` (None when nothing met the objective), ``met``, ``message`` (one line: what was found, or
    why the objective is unreachable and what came closest), ``explanation`` (lines: which knobs
    mattered), ``serve_config`` (the best's, else the closest's, else the defaults), ``trials``."""

    objective: Objective
    trials: list[Trial]
    best: Trial | None
    met: bool
    message: str
    explanation: list[str]
    serve_config: Any  # ServeConfig
    model: str = "model"
    closest: Trial | None = None
    pruned: list[str] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)
    accuracy: dict[str, float | None] = field(default_factory=dict)
    spent_s: float = 0.0
    budget_s: float = 0.0
    stopped: bool = False
    error: BaseException | None = None
    models: dict[str, Any] = field(default_factory=dict, repr=False)  # variant -> Model, to save the best

    # ------------------------------------------------------------ building
    @classmethod
    def build(cls, objective: Objective, trials: Sequence[Trial], *, prepared: Any, spent_s: float,
              budget_s: float, stopped: bool, space: Any = None) -> TuneResult:
        from workbench.serving.config import ServeConfig

        trials = sorted(trials, key=lambda t: t.number)
        best = select_best(objective, trials)
        near = None if best is not None else closest(objective, trials)
        shown = best or near
        config = ServeConfig().replace(**shown.config) if shown is not None else ServeConfig()
        result = cls(objective=objective, trials=list(trials), best=best, met=best is not None, message="",
                     explanation=explain(objective, trials), serve_config=config,
                     model=prepared.name if prepared else "model", closest=near,
                     pruned=list(prepared.pruned) if prepared else [],
                     excluded=dict(prepared.excluded) if prepared else {},
                     accuracy=dict(prepared.accuracy) if prepared else {}, spent_s=spent_s, budget_s=budget_s,
                     stopped=stopped, models=dict(prepared.models) if prepared else {})
        result.message = result._verdict()
        return result

    @classmethod
    def failed(cls, objective: Objective, trials: Sequence[Trial], error: BaseException, *,
               prepared: Any = None) -> TuneResult:
        from workbench.serving.config import ServeConfig

        what = str(error) or type(error).__name__
        return cls(objective=objective, trials=list(trials), best=None, met=False,
                   message=f"Tuning failed: {what}", explanation=[], serve_config=ServeConfig(),
                   model=prepared.name if prepared else "model", error=error,
                   excluded=dict(prepared.excluded) if prepared else {})

    def _verdict(self) -> str:
        obj = self.objective
        n, stopped_early = len(self.trials), sum(t.stopped_early for t in self.trials)
        facts = f"{n} trials in {self.spent_s:.0f} s of measurement"
        if stopped_early:
            facts += f", {stopped_early} stopped early"
        if self.pruned:
            facts += f", {sum(int(p.split()[0]) for p in self.pruned)} configs pruned"
        tail = f" ({facts})"
        if self.excluded:
            tail += "; excluded by the accuracy floor: " + ", ".join(f"{k} ({v})" for k, v in self.excluded.items())
        head = "Stopped early. " if self.stopped else ""
        b = self.best
        if b is not None:
            where = f"{b.rate:,.0f} req/s" if obj.max_rate else f"p99 {b.p99_ms:.1f} ms at {obj.rate:g} req/s"
            extra = f" (p99 {b.p99_ms:.1f} ms)" if obj.max_rate else ""
            serve = f"; serve variant {b.variant!r}" if b.variant != "original" else ""
            return (f"{head}Met {obj.describe()}: best is trial {b.number} ({_describe_config(b)}): {where}{extra} "
                    f"on {b.cores} core(s){serve}{tail}.")
        if not self.trials:
            return f"{head}No trial finished, so nothing can be said about {obj.describe()}{tail}."
        c = self.closest
        near = ""
        if c is not None:
            kept = "" if c.extra.get("kept_up", True) else ", not keeping up with the rate"
            near = (f"; closest: trial {c.number} ({_describe_config(c)}) with p99 {c.p99_ms:.1f} ms"
                    f"{'' if obj.max_rate else f' at {obj.rate:g} req/s'}{kept}")
        why = "at any rate tried" if obj.max_rate else "in this search space"
        return f"{head}Unreachable: no config met {obj.describe()} {why}{near}{tail}."

    # ------------------------------------------------------------ output
    @property
    def variant(self) -> str | None:
        shown = self.best or self.closest
        return shown.variant if shown is not None else None

    def to_yaml(self, variant_folder: str | None = None) -> str:
        """The config to serve, as ``workbench serve --config`` reads it, with comments that say what it
        achieved and which variant to serve (``variant_folder``: where :meth:`save` put it)."""
        shown = self.best or self.closest
        lines = [f"# workbench tune: model {self.model}, objective {self.objective.describe()}"]
        if shown is None:
            lines.append("# nothing was measured: these are the defaults")
        else:
            status = "best" if self.best is not None else "closest (does NOT meet the objective)"
            lines.append(f"# {status}: trial {shown.number}, p99 {shown.p99_ms:.1f} ms at {shown.rate:,.0f} req/s, "
                         f"{shown.cores} core(s)")
            if shown.variant != "original":
                folder = variant_folder or "<this file>.variant"
                lines.append(f"# variant: {shown.variant} -- serve the saved variant, not the original model: "
                             f"workbench serve {folder} --name {self.model} --config <this file>")
        return "\n".join(lines) + "\n" + self.serve_config.to_yaml()

    def save(self, path: str | Path) -> Path:
        """Write the YAML to ``path``; when the config is for a variant other than the original, save that
        variant's artifact next to it as ``<path without suffix>.variant/``. Returns the YAML path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        variant = self.variant
        path.write_text(self.to_yaml(str(self.variant_path(path))))
        if variant not in (None, "original") and variant in self.models:
            folder = self.variant_path(path)
            if folder.is_dir() and (folder / "manifest.json").is_file():
                shutil.rmtree(folder)  # an earlier saved variant: replace it
            self.models[variant].save(folder)
        return path

    @staticmethod
    def variant_path(path: str | Path) -> Path:
        """Where :meth:`save` puts the variant's artifact for a YAML at ``path``."""
        return Path(path).with_suffix(".variant")

    def to_frame(self) -> Any:
        """The trials as a pandas DataFrame, one row each (config settings as columns)."""
        import pandas as pd

        return pd.DataFrame([t.to_dict() for t in self.trials])

    def __repr__(self) -> str:
        return f"TuneResult(met={self.met}, trials={len(self.trials)}, message={self.message!r})"


__all__ = ["TuneResult"]
