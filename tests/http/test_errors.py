"""Exceptions from the serving runtime map to the status a client should see, never a traceback."""

from __future__ import annotations

import logging

import orjson
import pytest

from workbench.errors import (
    BackendUnavailable,
    ConfigError,
    ModelNotFound,
    Overloaded,
    RequestTimeout,
    ServingError,
    WorkerCrashed,
)
from workbench.http.errors import HTTPError, from_exception, retry_after


@pytest.mark.parametrize("exc,status", [
    (ConfigError("input shape (1, 3) does not fit (batch, 4)"), 400),
    (ModelNotFound("no model 'x'; served: mlp"), 404),
    (RequestTimeout("deadline of 5 ms passed"), 504),
    (ServingError("worker pool closed"), 500),
])
def test_runtime_errors_keep_their_message_and_get_their_status(exc, status):
    err = from_exception(exc)
    assert err.status == status
    assert orjson.loads(err.body()) == {"error": err.message}
    assert str(exc) in err.message


@pytest.mark.parametrize("exc,seconds", [
    (Overloaded("queue full", retry_after_s=2.2), "3"),
    (Overloaded("queue full", retry_after_s=0.01), "1"),
    (BackendUnavailable("model 'mlp' is not ready"), "1"),
    (WorkerCrashed("worker died twice"), "1"),
])
def test_unavailable_answers_say_when_to_retry(exc, seconds):
    err = from_exception(exc)
    assert err.status == 503 and err.headers == {"Retry-After": seconds}
    assert (b"retry-after", seconds.encode()) in err.raw_headers()


def test_an_unexpected_exception_is_a_500_that_reveals_nothing_and_is_logged(caplog):
    with caplog.at_level(logging.ERROR, logger="workbench.http"):
        err = from_exception(KeyError("secret internal detail"))
    assert err.status == 500 and "secret" not in err.message
    assert "secret internal detail" in caplog.text


def test_retry_after_is_whole_seconds_at_least_one():
    assert retry_after(0) == {"Retry-After": "1"}
    assert retry_after(float("nan")) == {"Retry-After": "1"}
    assert retry_after(4.0) == {"Retry-After": "4"}
    assert from_exception(HTTPError(413, "too big")).status == 413
