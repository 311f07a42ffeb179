"""Local serving runtime: ServeConfig, the dynamic batcher, routing policies, worker processes and the
``Server`` controller. Importing this package loads neither torch nor the worker machinery: names are
resolved on first use."""

from __future__ import annotations

from workbench._lazy import lazy_getattr

_LAZY = {
    "Server": "workbench.serving.server",
    "ServeConfig": "workbench.serving.config",
    "PlacementConfig": "workbench.serving.config",
    "BatchingConfig": "workbench.serving.config",
    "AdmissionConfig": "workbench.serving.config",
    "DynamicBatcher": "workbench.serving.batcher",
    "ROUTERS": "workbench.serving.routing",
    "RequestRecord": "workbench.serving.records",
    "ConfigChange": "workbench.serving.records",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)
