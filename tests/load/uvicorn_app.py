"""A real uvicorn (httptools) server for the HTTP client tests: a small Starlette app on its own thread.

Routes: ``GET /v2/models/m`` (OIP metadata), ``POST /v2/models/m/infer`` (echo; answers ``status``, 503
with ``Retry-After``), ``POST /hang`` (answers only when the server closes: a stuck server),
``GET /chunked`` (a chunked answer), ``GET /broken`` (fails half way through a chunked answer: uvicorn
closes the connection), ``GET /close`` (answers with ``Connection: close``). It records each inference
request's client port (one port = one connection) and ``Authorization`` header.
"""

from __future__ import annotations

import asyncio
import socket
import threading

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

METADATA = {"name": "m", "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]}


class UvicornServer:
    """A Starlette app on uvicorn (httptools) on its own thread; records each request's client port."""

    def __init__(self) -> None:
        self.client_ports: list[int] = []
        self.authorization: list[str | None] = []
        self.status = 200
        self.loop: asyncio.AbstractEventLoop | None = None
        self.release: asyncio.Event | None = None
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        app = Starlette(routes=[
            Route("/v2/models/m", self._metadata),
            Route("/v2/models/m/infer", self._infer, methods=["POST"]),
            Route("/hang", self._hang, methods=["POST"]),
            Route("/chunked", self._chunked),
            Route("/broken", self._broken),
            Route("/close", self._close),
        ])
        config = uvicorn.Config(app, log_level="critical", lifespan="off", http="httptools", loop="asyncio",
                                timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="uvicorn-test", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            self.release = asyncio.Event()
            await self._server.serve(sockets=[self._sock])

        asyncio.run(main())

    def start(self) -> UvicornServer:
        self._thread.start()
        deadline = 100
        while not self._server.started and deadline:
            self._thread.join(0.05)
            deadline -= 1
        if not self._server.started:
            raise TimeoutError("uvicorn did not start within 5 s")
        return self

    def close(self) -> None:
        if self.loop is not None and self.release is not None:
            self.loop.call_soon_threadsafe(self.release.set)
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()

    def _seen(self, request: Request) -> None:
        self.client_ports.append(request.client.port if request.client else -1)
        self.authorization.append(request.headers.get("authorization"))

    async def _metadata(self, request: Request) -> Response:
        return JSONResponse(METADATA)

    async def _infer(self, request: Request) -> Response:
        self._seen(request)
        body = await request.json()
        if self.status == 503:
            return JSONResponse({"error": "busy"}, status_code=503, headers={"Retry-After": "1"})
        if self.status != 200:
            return JSONResponse({"error": "no"}, status_code=self.status)
        return JSONResponse({"outputs": [{"name": "output", "data": body["inputs"][0]["data"]}]})

    async def _hang(self, request: Request) -> Response:
        self._seen(request)
        assert self.release is not None
        await asyncio.wait_for(self.release.wait(), 30)  # answers only when the test ends (a stuck server)
        return Response(b"late")

    async def _chunked(self, request: Request) -> Response:
        async def parts():  # type: ignore[no-untyped-def]
            for i in range(5):
                yield f"part{i};".encode()

        return StreamingResponse(parts())

    async def _broken(self, request: Request) -> Response:
        async def parts():  # type: ignore[no-untyped-def]
            yield b"the first part of the answer"
            raise RuntimeError("the server fails half way through its answer")

        return StreamingResponse(parts())

    async def _close(self, request: Request) -> Response:
        return Response(b"bye", headers={"Connection": "close"})
