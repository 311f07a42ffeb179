"""Fixtures for the load tests: real servers on free ports (an aiohttp OIP v2 echo server, a uvicorn app for
the HTTP client), and a private runs folder."""

from __future__ import annotations

import pytest

from .oip_echo import EchoServer
from .uvicorn_app import UvicornServer


@pytest.fixture
def echo_server():
    server = EchoServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def uvicorn_server():
    server = UvicornServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(autouse=True)
def _runs_folder(tmp_path, monkeypatch):
    """Run records of these tests go to a temporary folder, never to the user's."""
    monkeypatch.setenv("WORKBENCH_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"
