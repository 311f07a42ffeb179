"""The ``workbench`` command. Each subcommand lives beside the capability it drives and is imported
only when used, so ``workbench --help`` stays fast."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

# subcommand name -> "module:attribute" of its click command
COMMANDS = {
    "models": "workbench.models.commands:models",
    "serve": "workbench.http.commands:serve",
    "bench": "workbench.load.commands:bench",
    "runs": "workbench.telemetry.commands:runs",
    "compress": "workbench.compression.commands:compress",
    "dashboard": "workbench.ui.commands:dashboard",
    "demo": "workbench.ui.commands:demo",
    "tune": "workbench.tune.commands:tune",
}


def _installed(module: str) -> bool:
    """Whether ``module`` (a ``workbench.*`` module) is there, without importing its package."""
    from pathlib import Path

    root = Path(__file__).resolve().parent
    return root.joinpath(*module.split(".")[1:]).with_suffix(".py").is_file()


def _available() -> dict[str, str]:
    return {name: target for name, target in COMMANDS.items() if _installed(target.split(":")[0])}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_available())

    def get_command(self, ctx: click.Context, cmd_name: str) -> Any:
        target = _available().get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="workbench")
def cli() -> None:
    """workbench: load, compress, serve, load-test and watch PyTorch models."""


def main(argv: list[str] | None = None) -> int:
    """Entry point. A user's mistake (a WorkbenchError) prints one clear line, never a traceback."""
    from workbench.errors import WorkbenchError

    try:
        cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except WorkbenchError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
