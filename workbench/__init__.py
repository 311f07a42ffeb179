"""workbench: load, compress, serve, load-test and watch PyTorch models from a notebook or a dashboard.

Importing the package is lean: the names below are loaded on first use, so ``import workbench``
imports neither torch, ray nor panel.
"""

import importlib as _importlib
from typing import Any as _Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY: dict[str, str] = {
    # models
    "load_model": "workbench.models.loading",
    "load_zoo": "workbench.models.zoo",
    "Model": "workbench.models.model",
    "ModelArtifact": "workbench.models.artifact",
    "Signature": "workbench.models.signature",
    "TensorSpec": "workbench.models.signature",
    # errors
    "WorkbenchError": "workbench.errors",
    "ConfigError": "workbench.errors",
    "ModelLoadError": "workbench.errors",
    "CompressionError": "workbench.errors",
    "ServingError": "workbench.errors",
    "Overloaded": "workbench.errors",
    "RequestTimeout": "workbench.errors",
    "WorkerCrashed": "workbench.errors",
    "ModelNotFound": "workbench.errors",
    "BackendUnavailable": "workbench.errors",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
