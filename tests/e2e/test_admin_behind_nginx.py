"""The admin listener behind the shipped deploy/nginx/authsvc-admin.conf (SECURITY 31).

nginx sets ``X-Real-IP`` to the address it saw, replacing whatever the client sent, and
authsvc believes it because nginx's address is in ``admin_trusted_proxies``: an admin
token's IP filter judges the real client, and a forged header changes nothing.
"""

from __future__ import annotations

import http.client
import json
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.e2e.conftest import AdminNginx, Response
    from tests.processes import AuthsvcServer, IssuedToken

pytestmark = pytest.mark.e2e

MANAGE = "ManageOrganizationTokens"
TOKENS = "/admin/v1/tokens"
FORGED = "10.1.2.3"  # inside the "elsewhere" filter's 10.0.0.0/8, never a real client here
MAX_BODY = 64 * 1024  # the admin API's body limit, which the nginx file repeats

#: A token ``local_admin`` may create (no wider than itself).
NEW_TOKEN = {"permissions": ["Reader"], "ip_filter": "localhost"}

#: Ways a client may try to hand authsvc another address through nginx.
FORGERIES = [
    pytest.param([("X-Real-IP", FORGED)], id="X-Real-IP"),
    pytest.param([("x-real-ip", FORGED)], id="lower-case"),
    pytest.param([("X-Real-IP", FORGED), ("X-Real-IP", FORGED)], id="twice"),
    pytest.param([("X_Real_IP", FORGED)], id="underscores"),
    pytest.param([("X-Forwarded-For", FORGED)], id="X-Forwarded-For"),
]


@pytest.fixture(scope="module")
def local_admin(authsvc_server: AuthsvcServer) -> IssuedToken:
    """A Manage token (holding Reader, to hand it on) whose IP filter allows loopback only
    (where the tests run)."""
    return authsvc_server.create_token(MANAGE, "Reader", ip_filter="localhost")


@pytest.fixture(scope="module")
def remote_admin(authsvc_server: AuthsvcServer) -> IssuedToken:
    """A Manage token whose IP filter allows 10.0.0.0/8 only (where no test runs)."""
    return authsvc_server.create_token(MANAGE, ip_filter="elsewhere")


def _direct(server: AuthsvcServer, token: IssuedToken, headers: list[tuple[str, str]]) -> int:
    """The status of GET /admin/v1/tokens sent straight to the admin listener."""
    connection = http.client.HTTPConnection("127.0.0.1", server.admin_port, timeout=10)
    try:
        connection.putrequest("GET", TOKENS)
        for name, value in [("Authorization", token.bearer), *headers]:
            connection.putheader(name, value)
        connection.endheaders()
        return connection.getresponse().status
    finally:
        connection.close()


def _error_code(response: Response) -> str:
    return str(response.json()["error"]["code"])


class TestClientAddress:
    def test_admin_token_with_ip_filter_works_through_nginx(
        self, admin_nginx: AdminNginx, local_admin: IssuedToken
    ) -> None:
        """A token that allows 127.0.0.1 lists tokens through nginx: the address is nginx's
        client's, believed from nginx."""
        response = admin_nginx.request("GET", TOKENS, [("Authorization", local_admin.bearer)])
        assert response.status == 200, response.body
        assert local_admin.id in {token["id"] for token in response.json()["tokens"]}

    @pytest.mark.parametrize("forged", FORGERIES)
    def test_forged_address_is_replaced(
        self,
        admin_nginx: AdminNginx,
        authsvc_server: AuthsvcServer,
        local_admin: IssuedToken,
        remote_admin: IssuedToken,
        forged: list[tuple[str, str]],
    ) -> None:
        """A client claiming 10.1.2.3 is still 127.0.0.1 to authsvc: the loopback token
        works and the 10.0.0.0/8 token is refused, though straight to the admin listener
        from a trusted peer the same claim would be believed."""
        local = admin_nginx.request("GET", TOKENS, [("Authorization", local_admin.bearer)])
        assert local.status == 200, local.body
        headers = [("Authorization", remote_admin.bearer), *forged]
        remote = admin_nginx.request("GET", TOKENS, headers)
        assert (remote.status, _error_code(remote)) == (403, "forbidden")
        if forged[0][0].lower() == "x-real-ip" and len(forged) == 1:
            # The control: the claim itself would work, were nginx to pass it on.
            assert _direct(authsvc_server, remote_admin, forged) == 200

    def test_audit_log_names_the_real_client(
        self, admin_nginx: AdminNginx, authsvc_server: AuthsvcServer, local_admin: IssuedToken
    ) -> None:
        """A token created through nginx by a client claiming 10.1.2.3 is audited as
        created from 127.0.0.1."""
        body = json.dumps(NEW_TOKEN | {"name": "via nginx"}).encode()
        headers = [
            ("Authorization", local_admin.bearer),
            ("Content-Type", "application/json"),
            ("X-Real-IP", FORGED),
        ]
        response = admin_nginx.request("POST", TOKENS, headers, body)
        assert response.status == 201, response.body
        assert response.header("Cache-Control") == "no-store"
        created = response.json()["id"]
        lines = (authsvc_server.workdir / "audit.log").read_text().splitlines()
        [record] = [r for r in map(json.loads, lines) if r.get("target") == created]
        assert (record["action"], record["client"]) == ("token.create", "127.0.0.1")
        admin_nginx.request(
            "DELETE", f"{TOKENS}/{created}", [("Authorization", local_admin.bearer)]
        )


class TestBodyLimit:
    @pytest.mark.parametrize(
        ("size", "refused_by_nginx"),
        [
            pytest.param(MAX_BODY, False, id="64KiB"),
            pytest.param(MAX_BODY + 1, True, id="64KiB+1"),
        ],
    )
    def test_body_limit_matches_the_admin_api(
        self, admin_nginx: AdminNginx, local_admin: IssuedToken, size: int, refused_by_nginx: bool
    ) -> None:
        """nginx refuses what the admin API would refuse (413) and passes what it takes."""
        name = f"body of {size} bytes"
        body = json.dumps(NEW_TOKEN | {"name": name}).encode()
        body = body[:-1] + b" " * (size - len(body)) + b"}"
        headers = [("Authorization", local_admin.bearer), ("Content-Type", "application/json")]
        response = admin_nginx.request("POST", TOKENS, headers, body)
        if refused_by_nginx:
            assert response.status == 413
            assert b"body_too_large" not in response.body  # nginx's page: authsvc saw nothing
        else:
            assert response.status == 201, response.body
            created = response.json()["id"]
            admin_nginx.request(
                "DELETE", f"{TOKENS}/{created}", [("Authorization", local_admin.bearer)]
            )
