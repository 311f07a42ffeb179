"""The OIP v2 REST app: a raw ASGI fast path for inference, Starlette for everything else.

``POST /v2/models/{name}[/versions/{v}]/infer`` is the hot route: it is parsed by hand, its body read,
decoded by :mod:`workbench.http.codec`, and awaited on the serving runtime's own event loop (the app
runs in that loop, so a request reaches the batcher with no thread hop). No per-request logging; the
metrics come from the runtime's request records in batches. Every other route is a Starlette route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from workbench.errors import WorkbenchError
from workbench.http import DEFAULT_MAX_BODY_BYTES
from workbench.http.auth import BearerAuth
from workbench.http.codec import decode_request, decompress, encode_response
from workbench.http.errors import HTTPError, from_exception
from workbench.http.metrics import Metrics
from workbench.http.models import ModelTable
from workbench.http.openapi import openapi_document

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

SERVER_NAME = "workbench"


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status_code=status, headers=headers, media_type="application/json")


def _error_response(err: HTTPError) -> Response:
    return Response(err.body(), status_code=err.status, headers=err.headers, media_type="application/json")


async def _send_error(send: Send, err: HTTPError) -> None:
    await send({"type": "http.response.start", "status": err.status, "headers": err.raw_headers()})
    await send({"type": "http.response.body", "body": err.body()})


class InferenceApp:
    """The ASGI app of one HTTP API in front of one serving ``Server``."""

    def __init__(self, server: Any, *, token: str | None = None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 metrics: Metrics | None = None):
        self.server = server
        self.models = ModelTable(server)
        self.max_body_bytes = int(max_body_bytes)
        self.auth = BearerAuth(token) if token else None
        self.metrics = metrics if metrics is not None else Metrics(stats=self.models.stats)
        self.routes = Starlette(routes=self._routes(), exception_handlers={
            HTTPException: self._starlette_error, HTTPError: self._http_error, WorkbenchError: self._http_error,
            Exception: self._unexpected})
        # no 307 to the path without its trailing slash: such a path is a 404 like any other unknown path,
        # and no Location is ever built from the client's Host header
        self.routes.router.redirect_slashes = False

    def close(self) -> None:
        self.models.close()

    # ------------------------------------------------------------------ ASGI
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self.routes(scope, receive, send)
            return
        if self.auth is not None:
            try:
                self.auth.check(scope["headers"])
            except HTTPError as err:
                await _send_error(send, err)
                return
        path: str = scope["path"]
        if scope["method"] == "POST" and path.endswith("/infer") and path.startswith("/v2/models/"):
            await self.infer(scope, receive, send)
        else:
            await self.routes(scope, receive, send)

    async def infer(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The hot route: decode, submit to the batcher, encode. Errors become ``{"error": ...}``."""
        model = ""
        try:
            parts = scope["path"].split("/")  # "", "v2", "models", name, ["versions", v,] "infer"
            if len(parts) == 5:
                entry = self.models.get(parts[3])
            elif len(parts) == 7 and parts[4] == "versions":
                entry = self.models.get(parts[3], parts[5])
            else:
                raise HTTPError(404, f"no route {scope['path']!r}; inference is POST /v2/models/{{name}}/infer")
            model = entry.name
            header_length = encoding = None
            for key, value in scope["headers"]:
                if key == b"inference-header-content-length":
                    header_length = value
                elif key == b"content-encoding":
                    encoding = value.decode("latin-1")
                elif key == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                    raise HTTPError(413, f"the body of {int(value)} bytes is larger than the limit of "
                                         f"{self.max_body_bytes} bytes", headers={"Connection": "close"})
            body = await self._read_body(receive)
            if body is None:
                return  # the client went away
            if encoding is not None:
                body = decompress(body, encoding, self.max_body_bytes)
            request = decode_request(body, entry.input, entry.output, header_length=header_length)
            result = await self.server.submit(entry.name, request.array, timeout_ms=request.timeout_ms)
            payload, headers = encode_response(entry.name, entry.version, entry.output, result,
                                               binary=request.binary_output, request_id=request.request_id)
        except Exception as exc:  # every failure answers with a JSON error; never a traceback
            err = from_exception(exc)
            self.metrics.count_response(model, err.status)
            await _send_error(send, err)
            return
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
        self.metrics.count_response(model, 200)

    async def _read_body(self, receive: Receive) -> bytes | None:
        message = await receive()
        if message["type"] != "http.request":
            return None
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            if len(body) > self.max_body_bytes:
                raise self._too_large()
            return body
        chunks, size = [body], len(body)
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _too_large(self) -> HTTPError:
        return HTTPError(413, f"the body is larger than the limit of {self.max_body_bytes} bytes",
                         headers={"Connection": "close"})

    # ---------------------------------------------------------------- routes
    def _routes(self) -> list[Route]:
        model = "/v2/models/{name}"
        version = "/v2/models/{name}/versions/{version}"
        return [
            Route("/v2", self.server_metadata, methods=["GET"]),
            Route("/v2/health/live", self.live, methods=["GET"]),
            Route("/v2/health/ready", self.ready, methods=["GET"]),
            Route(model, self.model_metadata, methods=["GET"]),
            Route(version, self.model_metadata, methods=["GET"]),
            Route(f"{model}/ready", self.model_ready, methods=["GET"]),
            Route(f"{version}/ready", self.model_ready, methods=["GET"]),
            Route(f"{model}/infer", self._infer_route, methods=["POST"]),
            Route(f"{version}/infer", self._infer_route, methods=["POST"]),
            Route("/metrics", self.metrics_text, methods=["GET"]),
            Route("/openapi.json", self.openapi, methods=["GET"]),
        ]

    async def server_metadata(self, request: Request) -> Response:
        from workbench import __version__

        return _json({"name": SERVER_NAME, "version": __version__, "extensions": ["binary_tensor_data"],
                      "models": self.models.names()})

    async def live(self, request: Request) -> Response:
        return _json({"live": True})

    async def ready(self, request: Request) -> Response:
        waiting = [name for name in self.models.names() if not self.models.ready(name)]
        if waiting:
            raise HTTPError(503, f"not ready: model(s) {waiting} still starting", headers={"Retry-After": "1"})
        return _json({"ready": True})

    async def model_metadata(self, request: Request) -> Response:
        entry = self.models.get(request.path_params["name"], request.path_params.get("version"))
        return _json(entry.metadata(self.models.info(entry.name)))

    async def model_ready(self, request: Request) -> Response:
        entry = self.models.get(request.path_params["name"], request.path_params.get("version"))
        if not self.models.ready(entry.name):
            raise HTTPError(503, f"model {entry.name!r} is not ready yet", headers={"Retry-After": "1"})
        return _json({"name": entry.name, "version": entry.version, "ready": True})

    async def _infer_route(self, request: Request) -> Response:  # reached only when __call__ did not take it
        raise HTTPError(404, f"no route {request.url.path!r}")

    async def metrics_text(self, request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(self.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def openapi(self, request: Request) -> Response:
        return _json(openapi_document())

    # ---------------------------------------------------------------- errors
    async def _http_error(self, request: Request, exc: Exception) -> Response:
        return _error_response(exc if isinstance(exc, HTTPError) else from_exception(exc))

    async def _starlette_error(self, request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        message = {404: f"no route {request.url.path!r}; see /openapi.json",
                   405: f"method {request.method} is not allowed on {request.url.path!r}"}.get(
            status, str(getattr(exc, "detail", "")) or "error")
        return _error_response(HTTPError(status, message, headers=dict(getattr(exc, "headers", None) or {})))

    async def _unexpected(self, request: Request, exc: Exception) -> Response:
        return _error_response(from_exception(exc))


__all__ = ["InferenceApp"]
