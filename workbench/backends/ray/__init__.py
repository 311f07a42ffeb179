"""The Ray Serve backend: the same Backend protocol, ServeConfig and HTTP API as the local backend, on
a Ray cluster (or a local Ray it starts). Importing this package does not import Ray; starting a
:class:`RayBackend` does."""

from __future__ import annotations

from .backend import RayBackend
from .options import ROUTING, RayOptions

__all__ = ["ROUTING", "RayBackend", "RayOptions"]
