"""The upstream learns when the token stops working (SPEC §11, "Seeing expiry coming").

authsvc's allow carries ``X-Auth-Token-Expires`` (RFC 3339 UTC) when the token has an
effective expiry; the shipped protect snippet hands it to the upstream with
``auth_request_set`` + ``proxy_set_header``, always set, so a client can never plant one:
through real nginx, on each store kind.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.e2e.conftest import NginxProxy
    from tests.e2e.upstream import EchoUpstream
    from tests.processes import AuthsvcServer, IssuedToken

pytestmark = pytest.mark.e2e

ITEM = "/api/v1/items/42"
HEADER = "X-Auth-Token-Expires"
FORGED = "2999-01-01T00:00:00Z"


@pytest.fixture(scope="module")
def expiring(authsvc_server: AuthsvcServer) -> IssuedToken:
    """A Reader token that expires in 3 days."""
    return authsvc_server.create_token("Reader", expires_in="3d")


@pytest.fixture(scope="module")
def lasting(authsvc_server: AuthsvcServer) -> IssuedToken:
    """A Reader token without an expiry (the e2e policy has no max_lifetime)."""
    return authsvc_server.create_token("Reader")


def effective_expiry(server: AuthsvcServer, token: IssuedToken) -> str | None:
    """The token object's ``effective_expires_at``, as the CLI shows it."""
    shown = json.loads(server.cli("token", "show", token.id, "--json"))
    value: str | None = shown["effective_expires_at"]
    return value


class TestExpiresHeader:
    def test_upstream_gets_the_expiry(
        self,
        nginx_proxy: NginxProxy,
        upstream: EchoUpstream,
        authsvc_server: AuthsvcServer,
        expiring: IssuedToken,
    ) -> None:
        """An allowed request arrives with one X-Auth-Token-Expires: the token's effective
        expiry."""
        expected = effective_expiry(authsvc_server, expiring)
        assert expected is not None
        response = nginx_proxy.request("GET", ITEM, [("Authorization", expiring.bearer)])
        assert response.status == 200
        [received] = upstream.requests
        assert received.header_values(HEADER) == [expected]
        assert received.header_values("X-Auth-Token-Id") == [expiring.id]

    def test_no_expiry_no_header(
        self, nginx_proxy: NginxProxy, upstream: EchoUpstream, lasting: IssuedToken
    ) -> None:
        """A token that never expires: the upstream gets no X-Auth-Token-Expires."""
        response = nginx_proxy.request("GET", ITEM, [("Authorization", lasting.bearer)])
        assert response.status == 200
        [received] = upstream.requests
        assert received.header_values(HEADER) == []

    @pytest.mark.parametrize(
        ("which", "names"),
        [
            pytest.param(which, names, id=f"{which}-{label}")
            for which in ("expiring", "lasting")
            for label, names in (
                ("as-named", (HEADER,)),
                ("lower-case", (HEADER.lower(),)),
                ("twice", (HEADER, HEADER.upper())),
            )
        ],
    )
    def test_client_copy_never_arrives(
        self,
        nginx_proxy: NginxProxy,
        upstream: EchoUpstream,
        request: pytest.FixtureRequest,
        which: str,
        names: tuple[str, ...],
    ) -> None:
        """Whatever the client sends as X-Auth-Token-Expires is dropped: the upstream sees
        authsvc's value alone, or no header at all for a token without an expiry."""
        token: IssuedToken = request.getfixturevalue(which)
        authsvc_server: AuthsvcServer = request.getfixturevalue("authsvc_server")
        headers = [("Authorization", token.bearer), *((name, FORGED) for name in names)]
        response = nginx_proxy.request("GET", ITEM, headers)
        assert response.status == 200
        [received] = upstream.requests
        expected = effective_expiry(authsvc_server, token)
        assert received.header_values(HEADER) == ([] if expected is None else [expected])
        assert FORGED not in json.dumps(received.headers)
