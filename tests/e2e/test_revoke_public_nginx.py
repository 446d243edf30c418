"""deploy/nginx/authsvc-revoke-public.conf in a public server (SPEC §11): the revocation of a
leaked secret is reachable from outside through nginx, and nothing else of the admin
listener is. The public server is the shipped example-site.conf with the snippet included
next to authsvc-auth.conf, as the README says; only ports and paths are substituted."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from authsvc.rules.tokens import new_secret
from tests.e2e.conftest import NGINX_DIR, NginxProxy, Response
from tests.e2e.upstream import EchoUpstream
from tests.processes import AuthsvcServer, free_port

pytestmark = pytest.mark.e2e

REVOKE = "/admin/v1/tokens/revoke"
SHIPPED_INCLUDE = r"(include /etc/nginx/snippets/authsvc-auth\.conf;)"


class PublicSite(NginxProxy):
    """example-site.conf with authsvc-revoke-public.conf included in its server block."""

    def __init__(self, binary: str, prefix: Path, *, ports: dict[str, int]) -> None:
        super().__init__(
            binary,
            prefix,
            listen_port=ports["listen"],
            auth_port=ports["auth"],
            upstream_port=ports["upstream"],
        )
        self._admin_port = ports["admin"]

    def write_config(self) -> Path:
        """The upstream file, the site with the revoke snippet included, and the snippet."""
        self.prefix.mkdir(parents=True, exist_ok=True)
        admin = f"proxy_pass http://127.0.0.1:{self._admin_port};"
        revoke = self._render(
            "authsvc-revoke-public.conf", [(r"proxy_pass http://127\.0\.0\.1:9091;", admin)]
        )
        upstream = self._render(
            "authsvc-upstream.conf",
            [(r"server 127\.0\.0\.1:9090;", f"server 127.0.0.1:{self._auth_port};")],
        )
        site = self._render(
            "example-site.conf",
            [
                (SHIPPED_INCLUDE, rf"\1\n    include {revoke};"),
                (r"listen 8080;", f"listen 127.0.0.1:{self.port};"),
                (r"server 127\.0\.0\.1:8000;", f"server 127.0.0.1:{self._upstream_port};"),
                (r"include /etc/nginx/snippets/", f"include {NGINX_DIR}/"),
            ],
        )
        return self._write_main(upstream, site)


@pytest.fixture(scope="module")
def public_site(
    nginx_binary: str,
    authsvc_server: AuthsvcServer,
    echo_upstream: EchoUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PublicSite]:
    ports = {
        "listen": free_port(),
        "auth": authsvc_server.auth_port,
        "admin": authsvc_server.admin_port,
        "upstream": echo_upstream.port,
    }
    site = PublicSite(nginx_binary, tmp_path_factory.mktemp("nginx-public"), ports=ports)
    site.start()
    yield site
    site.stop()


def post_revoke(site: PublicSite, secret: str, *headers: tuple[str, str]) -> Response:
    body = json.dumps({"token": secret}).encode()
    return site.request("POST", REVOKE, [("Content-Type", "application/json"), *headers], body=body)


def from_authsvc(response: Response) -> bool:
    """Whether the answer came from authsvc's admin API (its JSON error shape or data)."""
    return (response.header("Content-Type") or "").startswith("application/json")


class TestPublicRevoke:
    def test_a_leaked_secret_is_revoked_through_the_public_server(
        self, public_site: PublicSite, authsvc_server: AuthsvcServer
    ) -> None:
        """POST with the secret and no admin token: 200, the token is deleted; the audit
        record names the address nginx saw, not one the client claimed."""
        token = authsvc_server.create_token("Reader")
        response = post_revoke(
            public_site, token.secret, ("X-Real-IP", "10.9.9.9"), ("Authorization", "x")
        )
        assert (response.status, response.json()) == (200, {"id": token.id, "revoked": "token"})
        api = public_site.request("GET", "/api/v1/items/1", [("Authorization", token.bearer)])
        assert api.status == 401
        audit = (authsvc_server.workdir / "audit.log").read_text().splitlines()
        revoked = [json.loads(line) for line in audit if token.id in line][-1]
        assert (revoked["action"], revoked["actor"], revoked["client"]) == (
            "token.revoke_leaked",
            "secret-holder",
            "127.0.0.1",
        )

    def test_unknown_and_malformed_secrets(self, public_site: PublicSite) -> None:
        """authsvc's own answers come through: 404 not_found, 422 malformed_token."""
        unknown = post_revoke(public_site, new_secret())
        assert (unknown.status, unknown.json()["error"]["code"]) == (404, "not_found")
        junk = post_revoke(public_site, "junk")
        assert (junk.status, junk.json()["error"]["code"]) == (422, "malformed_token")

    @pytest.mark.parametrize(
        "path",
        [
            "/admin/v1/tokens",
            "/admin/v1/tokens/revoke/",
            "/admin/v1/tokens/revoke/x",
            "/admin/v1/tokens/tok_0123456789abcdef",
            "/admin/v1/openapi.json",
            "/admin/v1/policy",
            "/metrics",
            "/readyz",
            "/",
        ],
    )
    def test_nothing_else_of_the_admin_listener_is_public(
        self, public_site: PublicSite, path: str
    ) -> None:
        """Every other admin path, read or write, is answered by nginx, never by authsvc."""
        for method in ("GET", "POST"):
            response = public_site.request(method, path, [("Content-Type", "application/json")])
            assert not from_authsvc(response), (method, path, response.status)
            assert response.status == 404

    @pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
    def test_only_post(self, public_site: PublicSite, method: str) -> None:
        """Other methods on the one public path: refused by nginx (403)."""
        response = public_site.request(method, REVOKE)
        assert response.status == 403
        assert not from_authsvc(response)

    def test_large_bodies_are_refused_by_nginx(self, public_site: PublicSite) -> None:
        """Bodies far beyond a secret never reach authsvc (413)."""
        response = public_site.request("POST", REVOKE, [], body=b"x" * 8192)
        assert response.status == 413

    def test_the_snippet_is_one_exact_location(self) -> None:
        """The shipped file exposes exactly one path (an exact-match location)."""
        text = (NGINX_DIR / "authsvc-revoke-public.conf").read_text()
        code = "\n".join(line.split("#")[0] for line in text.splitlines())
        assert re.findall(r"\blocation\b[^{]*", code) == [f"location = {REVOKE} "]
