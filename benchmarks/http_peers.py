"""The peer servers of the HTTP benchmark, each serving the reference MLP at OIP v2 paths.

Each peer answers ``GET /v2/models/mlp`` (metadata, so the load generator can build its request) and
``POST /v2/models/mlp/infer`` with a JSON OIP v2 body, the way a user of that framework would write it:

- ``fastapi``: plain FastAPI on uvicorn, one process, the model run inline in the handler (no
  batching), ``request.json()`` and a dict answer (stdlib JSON, as FastAPI does by default);
- ``litserve``: LitServe with its batching (``max_batch_size=32``, ``batch_timeout=5 ms``) and
  ``workers_per_device`` workers, plus the metadata route added to its FastAPI app;
- ``ray``: Ray Serve (a fresh local Ray started by this process, no dashboard, its own temp dir), one
  deployment of ``replicas`` replicas behind Serve's own HTTP proxy on 127.0.0.1:PORT, with
  ``@serve.batch`` (``max_batch_size=32``, ``batch_wait_timeout_s=0.005``) and
  ``max_ongoing_requests=64`` (Ray 2.60's default of 5 would cap the batches at 5). The deployment's
  ``__call__`` takes Serve's Starlette request: ``GET`` answers the metadata, ``POST .../infer``
  awaits ``request.json()`` and the batched predict, and returns a dict (Serve encodes it as JSON).

Every peer uses one intra-op torch thread per process, as workbench's workers do. Started by
``http_bench.py`` as ``python -m benchmarks.http_peers PEER PORT [WORKERS]``; each runs in the
foreground until SIGINT (Ray: then ``serve.shutdown()`` and ``ray.shutdown()``; the benchmark kills
whatever is left of the process group). Benchmark-only dependencies: ``pip install -c constraints.txt
fastapi litserve "ray[serve]"`` (not runtime dependencies).
"""

# No ``from __future__ import annotations`` here: FastAPI reads the handlers' annotations at run time,
# and they name classes imported inside the functions.
import sys
from typing import Any

INPUT, OUTPUT, FEATURES, CLASSES = "input", "logits", 784, 10
METADATA = {"name": "mlp", "versions": ["1"], "platform": "pytorch",
            "inputs": [{"name": INPUT, "datatype": "FP32", "shape": [-1, FEATURES]}],
            "outputs": [{"name": OUTPUT, "datatype": "FP32", "shape": [-1, CLASSES]}]}


def _model() -> Any:
    import torch

    from workbench.testing import reference_mlp

    torch.set_num_threads(1)
    return reference_mlp(seed=0).eval()


def _answer(rows: list[list[float]]) -> dict[str, Any]:
    return {"model_name": "mlp", "model_version": "1",
            "outputs": [{"name": OUTPUT, "datatype": "FP32", "shape": [len(rows), CLASSES],
                         "data": [v for row in rows for v in row]}]}


def serve_fastapi(port: int) -> None:
    import numpy as np
    import torch
    import uvicorn
    from fastapi import FastAPI, Request

    model = _model()
    app = FastAPI()

    @app.get("/v2/models/mlp")
    async def metadata() -> dict[str, Any]:
        return METADATA

    @app.post("/v2/models/mlp/infer")
    async def infer(request: Request) -> dict[str, Any]:
        body = await request.json()
        tensor = body["inputs"][0]
        x = torch.from_numpy(np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"]))
        with torch.inference_mode():
            y = model(x)
        return _answer(y.tolist())

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


try:  # LitServe pickles its API object into worker processes, so the class must live at module level
    import litserve as ls
except ImportError:  # only the litserve peer needs it
    ls = None

if ls is not None:

    class MLPAPI(ls.LitAPI):
        """The reference MLP for LitServe: decode one sample, batch, predict, unbatch, encode."""

        def setup(self, device: str) -> None:
            self.model = _model()

        def decode_request(self, request):  # type: ignore[no-untyped-def]  # unannotated: LitServe passes the JSON
            import numpy as np

            return np.asarray(request["inputs"][0]["data"], dtype=np.float32).reshape(FEATURES)

        def batch(self, inputs: list[Any]) -> Any:
            import numpy as np
            import torch

            return torch.from_numpy(np.stack(inputs))

        def predict(self, x: Any) -> Any:
            import torch

            with torch.inference_mode():
                return self.model(x)

        def unbatch(self, output: Any) -> list[Any]:
            return list(output)

        def encode_response(self, output: Any) -> dict[str, Any]:
            return _answer([output.tolist()])


def serve_litserve(port: int, workers: int) -> None:
    if ls is None:
        raise SystemExit("the litserve peer needs: pip install -c constraints.txt litserve")
    api = MLPAPI(max_batch_size=32, batch_timeout=0.005, api_path="/v2/models/mlp/infer")
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=workers)
    server.app.add_api_route("/v2/models/mlp", lambda: METADATA, methods=["GET"])
    server.run(host="127.0.0.1", port=port, generate_client_file=False)


def serve_ray(port: int, replicas: int) -> None:
    import shutil
    import signal
    import tempfile
    import threading

    import numpy as np
    import ray
    from ray import serve

    @serve.deployment(num_replicas=replicas, max_ongoing_requests=64, ray_actor_options={"num_cpus": 1})
    class MLPDeployment:
        """The reference MLP for Ray Serve: metadata on GET, batched inference on POST .../infer."""

        def __init__(self) -> None:
            self.model = _model()

        @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
        async def predict(self, rows: list[Any]) -> list[list[float]]:
            import torch

            with torch.inference_mode():
                return self.model(torch.from_numpy(np.stack(rows))).tolist()  # type: ignore[no-any-return]

        async def __call__(self, request: Any) -> dict[str, Any]:
            if request.method == "GET":
                return METADATA
            body = await request.json()
            tensor = body["inputs"][0]
            row = np.asarray(tensor["data"], dtype=np.float32).reshape(FEATURES)
            return _answer([await self.predict(row)])

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    temp_dir = tempfile.mkdtemp(prefix="ray-peer-")  # short: Ray puts unix sockets under it
    ray.init(num_cpus=max(2, replicas), include_dashboard=False, log_to_driver=False, _temp_dir=temp_dir)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(MLPDeployment.bind(), name="mlp", route_prefix="/v2/models/mlp")  # type: ignore[attr-defined]
        while not stop.wait(0.5):
            pass
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
            shutil.rmtree(temp_dir, ignore_errors=True)  # Ray's logs and sockets of this run


if __name__ == "__main__":
    peer, port = sys.argv[1], int(sys.argv[2])
    if peer == "fastapi":
        serve_fastapi(port)
    elif peer == "litserve":
        serve_litserve(port, int(sys.argv[3]))
    elif peer == "ray":
        serve_ray(port, int(sys.argv[3]))
    else:
        raise SystemExit(f"unknown peer {peer!r}; known: fastapi, litserve, ray")
