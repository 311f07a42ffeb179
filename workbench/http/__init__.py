"""The inference API: Open Inference Protocol v2 over HTTP (JSON and binary tensors), Prometheus
metrics, OpenAPI, bearer-token auth and size limits, in front of a running ``Server``::

    with Server(models={"mlp": load_model("mlp")}) as server, serve_http(server, port=8000) as api:
        print(api.url)          # http://127.0.0.1:8000

Importing this package loads nothing heavy: names are resolved on first use.
"""

from __future__ import annotations

from workbench._lazy import lazy_getattr

#: Default request body limit: 64 MiB (a batch of 20,000 MNIST images as FP32 binary tensors).
DEFAULT_MAX_BODY_BYTES = 64 << 20

_LAZY = {
    "serve_http": "workbench.http.serve",
    "run_http": "workbench.http.serve",
    "HttpHandle": "workbench.http.serve",
    "InferenceApp": "workbench.http.app",
}

__all__ = ["DEFAULT_MAX_BODY_BYTES", *sorted(_LAZY)]


__getattr__ = lazy_getattr(__name__, _LAZY)
