"""The local backend: worker processes on this machine, driven by :class:`workbench.serving.Server`."""

from __future__ import annotations

from workbench.serving.server import Server


class LocalBackend(Server):
    """The embedded default backend; a :class:`~workbench.serving.server.Server` by another name."""

    kind = "local"


__all__ = ["LocalBackend"]
