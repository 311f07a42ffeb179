"""``workbench models``: list the zoo and describe a model."""

from __future__ import annotations

import click


@click.group()
def models() -> None:
    """The model zoo: list the built-in models and describe one."""


@models.command("list")
def list_models() -> None:
    """List the zoo models and whether each is trained and cached."""
    from rich.console import Console
    from rich.table import Table

    from workbench.models.zoo import ZOO, cache_dir

    table = Table(title=f"zoo (cache: {cache_dir()})")
    for col in ("name", "input", "data set", "cached", "description"):
        table.add_column(col)
    for entry in ZOO.values():
        cached = (cache_dir() / "zoo" / entry.cache_key() / "manifest.json").is_file()
        table.add_row(entry.name, "×".join(map(str, entry.input_shape)), entry.dataset,
                      "yes" if cached else "no (trains on first use)", entry.description)
    Console().print(table)


@models.command("info")
@click.argument("name")
@click.option("--no-train", is_flag=True, help="Only describe; do not train a zoo model that is not cached yet.")
def info(name: str, no_train: bool) -> None:
    """Describe NAME (a zoo model or a model file): signature, size, accuracy."""
    from rich.console import Console
    from rich.table import Table

    from workbench.models.loading import load_model
    from workbench.models.zoo import ZOO

    if no_train and name in ZOO:
        entry = ZOO[name]
        click.echo(f"{name}: {entry.description}\ninput: {entry.input_shape} float32\ndata set: {entry.dataset}")
        return
    model = load_model(name)
    table = Table(title=f"model {model.name}", show_header=False)
    table.add_row("variant", model.variant)
    table.add_row("input", f"{model.signature.input.name} {list(model.signature.input.shape)} {model.signature.input.datatype}")
    table.add_row("output", f"{model.signature.output.name} {list(model.signature.output.shape)} {model.signature.output.datatype}")
    table.add_row("parameters", f"{model.num_parameters:,}")
    if model.artifact is not None:
        size = sum(f.stat().st_size for f in model.artifact.path.iterdir() if f.is_file())
        table.add_row("artifact", f"{model.artifact.path} ({size / 1e6:.2f} MB)")
    if model.eval_data is not None:
        table.add_row("accuracy (held-out)", f"{model.evaluate():.2%} on {len(model.eval_data[1])} samples")
    Console().print(table)
