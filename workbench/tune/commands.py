"""``workbench tune``: search serving configs (and variants) for one that meets a latency objective.

::

    workbench tune mlp --p99-ms 20 --rate 300 --budget-s 60 --out best.yaml
    workbench tune mlp --p99-ms 20 --max-rate --compress int8 --min-accuracy 0.97 --out best.yaml
    workbench tune mlp --p99-ms 5 --rate 500 --variant small=./mlp-small --max-batch-size 1,8,32

Exit code 0 when the objective is met (the YAML is written), 1 when it is unreachable (the message says
what came closest; no file is written).
"""

from __future__ import annotations

from typing import Any

import click

_INT_KNOBS = ("replicas", "stages", "threads_per_worker", "max_batch_size")


class Unreachable(click.ClickException):
    """Exit code 1: the tuner ran, and no config met the objective."""

    exit_code = 1


def _list(knob: str, text: str | None) -> list[Any] | None:
    if text is None:
        return None
    items = [s.strip() for s in text.split(",") if s.strip()]
    if not items:
        raise click.BadParameter(f"give at least one value, e.g. --{knob.replace('_', '-')} 1,2")
    try:
        if knob in _INT_KNOBS:
            return [int(s) for s in items]
        if knob == "max_delay_ms":
            return [float(s) for s in items]
    except ValueError:
        kind = "integers" if knob in _INT_KNOBS else "numbers"
        raise click.BadParameter(f"--{knob.replace('_', '-')} takes comma-separated {kind}, got {text!r}") from None
    return items


def _variants(specs: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise click.BadParameter(f"--variant takes NAME=PATH (a saved variant folder), got {spec!r}")
        out[name] = path
    return out


@click.command()
@click.argument("model", metavar="MODEL_OR_FILE")
@click.option("--p99-ms", type=float, required=True, help="The latency bound: p99 at most this many ms.")
@click.option("--rate", type=float, help="Requests/s the config must carry within the bound.")
@click.option("--max-rate", is_flag=True, help="Find the highest rate that keeps p99 within the bound instead.")
@click.option("--min-accuracy", type=float, help="Exclude variants under this held-out accuracy (0.97 = 97%).")
@click.option("--budget-s", type=float, default=60.0, show_default=True, help="Seconds of measurement to spend.")
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True, help="Where to write the best config (YAML).")
@click.option("--variant", "variant_specs", multiple=True, metavar="NAME=PATH",
              help="A variant to try beside the model (a saved artifact folder); repeatable.")
@click.option("--compress", "compress_dtypes", multiple=True, type=click.Choice(["int8", "static-int8", "bf16"]),
              help="Make a quantized variant with the compression lab and try it too; repeatable.")
@click.option("--replicas", help="Values to try, e.g. 1,2.")
@click.option("--stages", help="Pipeline stages to try, e.g. 1,2.")
@click.option("--threads-per-worker", help="Threads per worker to try, e.g. 1,2.")
@click.option("--max-batch-size", help="Batch sizes to try, e.g. 1,8,32.")
@click.option("--max-delay-ms", help="Batch delays to try (ms), e.g. 0,1,5.")
@click.option("--routing", help="Routing policies to try, e.g. least_outstanding,round_robin.")
@click.option("--variants", "variant_names", help="Which variants to try (default: all), e.g. original,int8.")
@click.option("--runs-dir", type=click.Path(file_okay=False), help="Where each trial's run record goes.")
@click.option("--seed", type=int, default=0, show_default=True)
def tune(model: str, p99_ms: float, rate: float | None, max_rate: bool, min_accuracy: float | None, budget_s: float,
         out: str, variant_specs: tuple[str, ...], compress_dtypes: tuple[str, ...], replicas: str | None,
         stages: str | None, threads_per_worker: str | None, max_batch_size: str | None, max_delay_ms: str | None,
         routing: str | None, variant_names: str | None, runs_dir: str | None, seed: int) -> None:
    """Find the serving config of MODEL_OR_FILE (a zoo name or a model file) that meets a latency objective."""
    from workbench.errors import ConfigError
    from workbench.tune.space import SearchSpace
    from workbench.tune.trial import Objective

    if (rate is None) == (not max_rate):
        raise ConfigError("give either --rate R (p99 within the bound at R req/s) or --max-rate (the highest rate "
                          "within the bound), not both or neither")
    objective = Objective(p99_ms=p99_ms, rate=rate, min_accuracy=min_accuracy)
    knobs = {"replicas": replicas, "stages": stages, "threads_per_worker": threads_per_worker,
             "max_batch_size": max_batch_size, "max_delay_ms": max_delay_ms, "routing": routing,
             "variants": variant_names}
    given = {k: _list(k, v) for k, v in knobs.items() if v is not None}
    space = SearchSpace.from_dict(given)
    variants: dict[str, Any] = dict(_variants(variant_specs))
    if compress_dtypes:
        variants.update(_compressed(model, compress_dtypes))
    _run(model, objective, space, variants, budget_s, out, runs_dir, seed)


def _compressed(model: str, dtypes: tuple[str, ...]) -> dict[str, Any]:
    from workbench.compression import QuantizeConfig, build_variants
    from workbench.tune.prepare import load_source

    base = load_source(model, "model")
    click.echo(f"building variant(s) {', '.join(dtypes)} with the compression lab ...", err=True)
    built = build_variants(base, [[QuantizeConfig(dtype=d)] for d in dtypes], progress=False)
    return dict(zip(dtypes, built))


def _run(model: str, objective: Any, space: Any, variants: dict[str, Any], budget_s: float, out: str,
         runs_dir: str | None, seed: int) -> None:
    from tqdm import tqdm

    from workbench.tune.tuner import Tuner

    tuner = Tuner(model, objective, space=space, variants=variants, budget_s=budget_s, runs_dir=runs_dir, seed=seed)
    bar = tqdm(total=100, desc="budget", unit="%", leave=False, bar_format="{l_bar}{bar}| {n:.0f}% [{elapsed}]")

    def on_trial(trial: Any) -> None:
        bar.n = round(100 * tuner.progress)
        bar.refresh()
        knobs = " ".join(f"{k}={v}" for k, v in trial.config.items())
        p99 = f"{trial.p99_ms:.1f} ms" if trial.p99_ms is not None else "-"
        where = f"{trial.rate:,.0f} req/s" if objective.max_rate else f"{trial.throughput:,.0f} req/s"
        verdict = "meets" if trial.meets else f"fails: {trial.reason}"
        bar.write(f"trial {trial.number:>2} [{trial.extra.get('phase')}] {knobs} variant={trial.variant}: "
                  f"p99 {p99}, {where}, {verdict}")

    tuner.subscribe(on_trial)
    try:
        result = tuner.run()
    finally:
        bar.close()
    click.echo(result.message)
    for line in result.explanation:
        click.echo(f"  {line}")
    if not result.met:
        raise Unreachable(f"the objective is unreachable here; nothing was written to {out}")
    path = result.save(out)
    click.echo(f"wrote {path}" + (f" and the variant {result.variant_path(path)}/" if result.variant != "original" else ""))


__all__ = ["tune"]
