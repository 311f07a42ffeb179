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
    # compression
    "compress": "workbench.compression",
    "compare": "workbench.compression",
    "PruneConfig": "workbench.compression",
    "QuantizeConfig": "workbench.compression",
    "DistillConfig": "workbench.compression",
    "OnnxConfig": "workbench.compression",
    "CompressionReport": "workbench.compression",
    # serving
    "Server": "workbench.serving.server",
    "ServeConfig": "workbench.serving.config",
    "create_backend": "workbench.backends",
    "serve_http": "workbench.http.serve",
    # load and telemetry
    "LoadRun": "workbench.load",
    "HttpTarget": "workbench.load",
    "InProcessTarget": "workbench.load",
    "Constant": "workbench.load",
    "Poisson": "workbench.load",
    "Step": "workbench.load",
    "Ramp": "workbench.load",
    "Spike": "workbench.load",
    "Closed": "workbench.load",
    "TelemetryHub": "workbench.telemetry",
    "RunRecord": "workbench.telemetry",
    "list_runs": "workbench.telemetry",
    "compare_runs": "workbench.telemetry",
    # notebooks and dashboard
    "WorkbenchSession": "workbench.ui.session",
    "load_ipython_extension": "workbench.ui.magics",
    "unload_ipython_extension": "workbench.ui.magics",
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
