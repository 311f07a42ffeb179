"""Token policy: loopback may run open; any wider address needs a bearer token, checked on every request."""

from __future__ import annotations

import pytest

from workbench.errors import ConfigError
from workbench.http.auth import TOKEN_ENV, BearerAuth, is_loopback, resolve_token
from workbench.http.errors import HTTPError


@pytest.mark.parametrize("host,loopback", [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("10.1.2.3", False), ("example.org", False),
])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_non_loopback_without_a_token_is_refused(monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(ConfigError, match="needs a bearer token"):
        resolve_token("0.0.0.0", None)
    assert resolve_token("127.0.0.1", None) is None
    assert resolve_token("0.0.0.0", "s3cret") == "s3cret"


def test_the_token_may_come_from_the_environment(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    assert resolve_token("0.0.0.0", None) == "from-env"
    assert resolve_token("127.0.0.1", None) == "from-env"
    assert resolve_token("0.0.0.0", "flag-wins") == "flag-wins"
    with pytest.raises(ConfigError, match="without spaces"):
        resolve_token("0.0.0.0", "two words")


def test_bearer_auth_checks_the_header():
    auth = BearerAuth("s3cret")
    auth.check([(b"host", b"x"), (b"authorization", b"Bearer s3cret")])
    for headers in ([], [(b"authorization", b"Bearer wrong")], [(b"authorization", b"Basic s3cret")]):
        with pytest.raises(HTTPError) as err:
            auth.check(headers)
        assert err.value.status == 401 and "WWW-Authenticate" in err.value.headers
