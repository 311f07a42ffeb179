"""Serving backends behind one protocol (:class:`workbench.backends.base.Backend`): ``local`` (worker
processes on this machine, the default) and ``ray`` (Ray Serve). :func:`create_backend` builds one by
name and imports only that backend."""

from __future__ import annotations

import importlib
from typing import Any

from workbench.errors import ConfigError

BACKENDS = {
    "local": "workbench.backends.local:LocalBackend",
    "ray": "workbench.backends.ray:RayBackend",
}


def create_backend(kind: str = "local", **kwargs: Any) -> Any:
    """A backend of ``kind`` (not started): ``create_backend("local", models={...}, config=...)``."""
    try:
        target = BACKENDS[kind]
    except KeyError:
        raise ConfigError(f"unknown backend {kind!r}; known: {sorted(BACKENDS)}") from None
    module_name, attr = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"backend {kind!r} is not available: {exc}") from None
    return getattr(module, attr)(**kwargs)


__all__ = ["BACKENDS", "create_backend"]
