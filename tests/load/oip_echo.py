"""A minimal Open Inference Protocol v2 server for tests: one model that echoes its input.

It runs aiohttp.web on its own thread and event loop, on a free 127.0.0.1 port. ``stall(s)`` blocks
its event loop for ``s`` seconds (a stop-the-world pause: nothing is accepted, read or answered);
``fail_every = (n, status)`` answers every n-th inference request with that status.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import numpy as np
from aiohttp import web

DTYPES = {"FP32": np.float32, "INT64": np.int64}


class EchoServer:
    def __init__(self, *, model: str = "echo", shape: tuple[int, ...] = (4,), datatype: str = "FP32"):
        self.model, self.shape, self.datatype = model, shape, datatype
        self.requests = 0
        self.binary_requests = 0
        self.fail_every: tuple[int, int] | None = None
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="oip-echo", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> EchoServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/v2/models/{name}", self._metadata)
        app.router.add_post("/v2/models/{name}/infer", self._infer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stall(self, seconds: float) -> None:
        """Block the server's event loop for ``seconds``; returns once the stall has begun."""
        begun = threading.Event()

        def block() -> None:
            begun.set()
            time.sleep(seconds)  # the simulated stop-the-world pause

        self._loop.call_soon_threadsafe(block)
        if not begun.wait(5):
            raise TimeoutError("the echo server did not start its stall")

    def close(self) -> None:
        """Stop serving (open connections are closed); safe to call twice."""
        if self._loop.is_closed():
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _metadata(self, request: web.Request) -> web.Response:
        if request.match_info["name"] != self.model:
            return web.json_response({"error": f"no model {request.match_info['name']}"}, status=404)
        return web.json_response({"name": self.model, "versions": ["1"], "platform": "echo",
                                  "inputs": [{"name": "input", "datatype": self.datatype, "shape": [-1, *self.shape]}],
                                  "outputs": [{"name": "output", "datatype": self.datatype, "shape": [-1, *self.shape]}],
                                  "parameters": {"variant": "echo-v1", "config": {"batching": {"max_batch_size": 4}}}})

    async def _infer(self, request: web.Request) -> web.Response:
        if request.match_info["name"] != self.model:
            return web.json_response({"error": "no such model"}, status=404)
        self.requests += 1
        if self.fail_every is not None and self.requests % self.fail_every[0] == 0:
            return web.json_response({"error": "refused on purpose"}, status=self.fail_every[1])
        body = await request.read()
        header_length = request.headers.get("Inference-Header-Content-Length")
        try:
            if header_length is not None:
                self.binary_requests += 1
                header = json.loads(body[: int(header_length)])
                spec = header["inputs"][0]
                raw = body[int(header_length):]
                if len(raw) != spec["parameters"]["binary_data_size"]:
                    raise ValueError("binary_data_size does not match the body")
                data = np.frombuffer(raw, dtype=np.dtype(DTYPES[spec["datatype"]]).newbyteorder("<"))
            else:
                spec = json.loads(body)["inputs"][0]
                data = np.asarray(spec["data"], dtype=DTYPES[spec["datatype"]])
            array = data.reshape(spec["shape"])
            if spec["name"] != "input" or list(array.shape[1:]) != list(self.shape):
                raise ValueError(f"bad input {spec['name']} {list(array.shape)}")
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"model_name": self.model, "outputs": [
            {"name": "output", "datatype": spec["datatype"], "shape": list(array.shape), "data": array.ravel().tolist()}]})
