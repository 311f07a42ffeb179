"""``workbench dashboard`` and ``workbench demo`` (= ``workbench dashboard --demo``, what ``make demo`` runs)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from workbench.ui.server import DEFAULT_PORT


def _options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--address", default="127.0.0.1", show_default=True,
                     help="Address to bind; anything but loopback needs a token."),
        click.option("--port", default=DEFAULT_PORT, show_default=True, type=int, help="Port (0 picks a free one)."),
        click.option("--token", envvar="WORKBENCH_TOKEN",
                     help="Access token the page asks for (required beyond loopback) [env: WORKBENCH_TOKEN]."),
        click.option("--allow-origin", multiple=True, metavar="HOST[:PORT]",
                     help="Another origin the page may be opened from (e.g. behind a proxy); repeatable."),
        click.option("--show/--no-show", default=False, help="Open a browser tab."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _run(*, demo: bool, address: str, port: int, token: str | None, allow_origin: tuple[str, ...], show: bool) -> None:
    import logging

    from workbench.http.auth import resolve_token
    from workbench.ui.server import run_dashboard

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("workbench").setLevel(logging.INFO)
    token = resolve_token(address, token)  # refuse a bad bind before loading anything
    if demo:
        from workbench.models import DEFAULT_MODEL, load_zoo

        click.echo(f"preparing the demo model {DEFAULT_MODEL!r} (trained once, then cached)...", err=True)
        load_zoo(DEFAULT_MODEL)

    def announce(url: str) -> None:
        click.echo(f"dashboard on {url} (Ctrl+C to stop)", err=True)

    run_dashboard(address=address, port=port, token=token, demo=demo, allow_origin=allow_origin, show=show,
                  ready=announce)


@click.command()
@_options
@click.option("--demo", is_flag=True, help="Start with the default model served and a light load running.")
def dashboard(address: str, port: int, token: str | None, allow_origin: tuple[str, ...], show: bool, demo: bool) -> None:
    """Serve the dashboard: pick a model, compress it, serve it, load it and watch latency live.

    Stop with Ctrl+C or SIGTERM: every session's load, workers and threads stop with it."""
    _run(demo=demo, address=address, port=port, token=token, allow_origin=allow_origin, show=show)


@click.command()
@_options
def demo(address: str, port: int, token: str | None, allow_origin: tuple[str, ...], show: bool) -> None:
    """The dashboard with the default model already served and a light load running (= dashboard --demo)."""
    _run(demo=True, address=address, port=port, token=token, allow_origin=allow_origin, show=show)


__all__ = ["dashboard", "demo"]
