"""The generator's lean HTTP/1.1 connection pool against a real uvicorn server: keep-alive, limits,
broken answers, chunked bodies, ``Connection: close``, header checks."""

from __future__ import annotations

import asyncio

import pytest

from workbench.errors import ConfigError
from workbench.load.http_pool import ConnectionPool, encode_request

from .uvicorn_app import UvicornServer


def _get(uvicorn_server: UvicornServer, path: str) -> bytes:
    return encode_request("GET", path, host=uvicorn_server.url.split("//")[1], headers={})


async def _req(pool: ConnectionPool, payload: bytes, **kw):
    return await asyncio.wait_for(pool.request(payload, **kw), 10)


def _pool(uvicorn_server: UvicornServer, n: int) -> ConnectionPool:
    host, port = uvicorn_server.url.split("//")[1].split(":")
    return ConnectionPool(host, int(port), max_connections=n)


def test_requests_reuse_keep_alive_connections_up_to_the_limit(uvicorn_server):
    async def go():
        pool = _pool(uvicorn_server, 3)
        try:
            sequential = [await _req(pool, _get(uvicorn_server, "/v2/models/m"), keep_body=True) for _ in range(20)]
            opened_sequentially = pool.connections_opened
            concurrent = await asyncio.gather(*(_req(pool, _get(uvicorn_server, "/v2/models/m")) for _ in range(60)))
            return sequential, opened_sequentially, concurrent, pool.connections_opened, pool.open_connections
        finally:
            await pool.close()

    sequential, opened_sequentially, concurrent, opened, open_now = asyncio.run(go())
    assert all(r.status == 200 and r.body.startswith(b'{"name":"m"') for r in sequential)
    assert sequential[0].headers["content-type"] == "application/json"
    assert opened_sequentially == 1  # one request at a time: one connection, kept alive
    assert [r.status for r in concurrent] == [200] * 60
    assert opened <= 3 and open_now <= 3  # 60 at once wait for one of 3 connections


def test_a_chunked_answer_is_read_whole_and_the_connection_kept(uvicorn_server):
    async def go():
        pool = _pool(uvicorn_server, 1)
        try:
            chunked = await _req(pool, _get(uvicorn_server, "/chunked"), keep_body=True)
            after = await _req(pool, _get(uvicorn_server, "/v2/models/m"))
            return chunked, after, pool.connections_opened
        finally:
            await pool.close()

    chunked, after, opened = asyncio.run(go())
    assert chunked.headers.get("transfer-encoding") == "chunked"
    assert chunked.body == b"part0;part1;part2;part3;part4;"
    assert after.status == 200 and opened == 1


def test_a_connection_the_server_breaks_mid_answer_fails_that_request_and_the_next_reconnects(uvicorn_server):
    async def go():
        pool = _pool(uvicorn_server, 1)
        try:
            with pytest.raises(ConnectionError, match="closed the connection before the answer was complete"):
                await _req(pool, _get(uvicorn_server, "/broken"))
            after = await _req(pool, _get(uvicorn_server, "/v2/models/m"))
            return after, pool.connections_opened
        finally:
            await pool.close()

    after, opened = asyncio.run(go())
    assert after.status == 200 and opened == 2


def test_connection_close_from_the_server_is_honoured(uvicorn_server):
    async def go():
        pool = _pool(uvicorn_server, 1)
        try:
            answers = [await _req(pool, _get(uvicorn_server, "/close"), keep_body=True) for _ in range(3)]
            return answers, pool.connections_opened
        finally:
            await pool.close()

    answers, opened = asyncio.run(go())
    assert [(a.status, a.body) for a in answers] == [(200, b"bye")] * 3 and opened == 3


def test_headers_with_line_breaks_are_refused():
    for name, value in (("Authorization", "Bearer x\r\nEvil: 1"), ("X-Token", "café"), ("Bad Name", "1")):
        with pytest.raises(ConfigError, match="is not allowed: names and values are ASCII"):
            encode_request("GET", "/", host="h", headers={name: value})
