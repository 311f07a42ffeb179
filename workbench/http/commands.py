"""``workbench serve``: serve models over the Open Inference Protocol v2 HTTP API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from workbench.http import DEFAULT_MAX_BODY_BYTES


def _api_name(source: str) -> str:
    """The zoo name, or a file's (or artifact folder's) stem."""
    from workbench.models.zoo import ZOO

    return source if source in ZOO else Path(source).stem


@click.command()
@click.argument("models", nargs=-1, required=True, metavar="MODEL_OR_FILE...")
@click.option("--name", help="The model's name in the API (one model only). Default: zoo name or file stem.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="A serve config YAML (ServeConfig.to_yaml format); the flags below override it.")
@click.option("--replicas", type=int, help="Data-parallel worker copies.")
@click.option("--stages", type=int, help="Pipeline stages per replica (model parallelism).")
@click.option("--max-batch-size", type=int, help="Rows per batch at most.")
@click.option("--max-delay-ms", type=float, help="Longest wait of a batch's oldest request.")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where the models run: worker processes on this machine, or Ray Serve (workbench[ray]).")
@click.option("--ray-address", envvar="RAY_ADDRESS",
              help="With --backend ray: the cluster ('auto', HOST:6379, ray://HOST:10001) [env: RAY_ADDRESS]; "
                   "default: start a local Ray.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but loopback needs a token.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port (0 picks a free one).")
@click.option("--token", envvar="WORKBENCH_TOKEN", help="Bearer token every request must carry [env: WORKBENCH_TOKEN].")
@click.option("--max-body-bytes", default=DEFAULT_MAX_BODY_BYTES, show_default=True, type=int,
              help="Largest request body accepted (413 beyond).")
def serve(models: tuple[str, ...], name: str | None, config_file: str | None, replicas: int | None,
          stages: int | None, max_batch_size: int | None, max_delay_ms: float | None, backend: str,
          ray_address: str | None, host: str, port: int,
          token: str | None, max_body_bytes: int) -> None:
    """Serve MODEL_OR_FILE (a zoo name, a model file or an artifact folder; several may be given) over HTTP.

    Stop with Ctrl+C or SIGTERM: in-flight requests finish first."""
    from workbench.backends import create_backend
    from workbench.errors import ConfigError
    from workbench.http.auth import resolve_token
    from workbench.http.serve import run_http
    from workbench.models.loading import load_model
    from workbench.serving.config import ServeConfig

    if name is not None and len(models) != 1:
        raise ConfigError("--name names one model; serve several under their own names")
    token = resolve_token(host, token)  # fail before loading anything
    config = ServeConfig.from_yaml(Path(config_file)) if config_file else ServeConfig()
    overrides: dict[str, Any] = {k: v for k, v in {"replicas": replicas, "stages": stages,
                                                   "max_batch_size": max_batch_size,
                                                   "max_delay_ms": max_delay_ms}.items() if v is not None}
    if overrides:
        config = config.replace(**overrides)
    names = [name] if name else [_api_name(m) for m in models]
    if len(set(names)) != len(names):
        raise ConfigError(f"two models would share a name in the API: {names}")
    # Ray replicas load artifact folders by path: give Ray the sources as they are (an artifact folder is
    # then served in place, e.g. from a shared filesystem); the local backend takes loaded models.
    loaded = {api_name: (source if backend == "ray" else load_model(source)) for api_name, source in zip(names, models)}
    options = {"address": ray_address} if backend == "ray" else {}

    def announce(handle: Any) -> None:
        click.echo(f"serving {', '.join(loaded)} on {handle.url} (OIP v2; Ctrl+C to stop)", err=True)

    with create_backend(backend, models=loaded, config=config, **options) as server:
        run_http(server, host=host, port=port, token=token, max_body_bytes=max_body_bytes, ready=announce)
