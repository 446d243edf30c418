"""Rotation with a grace through real nginx (SPEC §11, §6), on both stores: two authsvc
instances share the store, each behind its own nginx running the shipped configuration.
During a grace both secrets pass; the first use of the new secret through one instance
ends the previous secret on the other within the propagation bound (1 s), although that
instance's cache (TTL 30 s) still held it."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import NginxProxy
from tests.e2e.upstream import EchoUpstream
from tests.processes import AuthsvcServer, free_port, start_authsvc

pytestmark = pytest.mark.e2e

ITEM = "/api/v1/items/42"
BOUND = 1.0


@dataclass(frozen=True, slots=True)
class Site:
    """One authsvc instance and the nginx in front of it."""

    authsvc: AuthsvcServer
    nginx: NginxProxy

    def status(self, secret: str) -> int:
        """What a client of the protected API gets for GET ITEM with ``secret``."""
        return self.nginx.request("GET", ITEM, [("Authorization", f"Bearer {secret}")]).status


@pytest.fixture
def sites(
    store_url: str, tmp_path: Path, nginx_binary: str, echo_upstream: EchoUpstream
) -> Iterator[tuple[Site, Site]]:
    """Two instances on one store (TTL 30 s: only propagation can end a cached secret
    within the bound), each behind its own nginx."""
    shared: dict[str, Any] = {
        "store": store_url,
        "secret_key_file": str(tmp_path / "shared.key"),
        "cache": {"ttl": "30s", "max_entries": 1000},
    }
    started: list[Site] = []
    try:
        for name in ("one", "two"):
            server = start_authsvc(tmp_path / name, **shared)
            proxy = NginxProxy(
                nginx_binary,
                tmp_path / f"nginx-{name}",
                listen_port=free_port(),
                auth_port=server.auth_port,
                upstream_port=echo_upstream.port,
            )
            started.append(Site(server, proxy))
            proxy.start()
        yield started[0], started[1]
    finally:
        for site in started:
            site.nginx.stop()
            site.authsvc.stop()


def admin_call(server: AuthsvcServer, admin: str, path: str, body: Any) -> Any:
    """POST a JSON body to ``server``'s admin API; the parsed answer (must be 200)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.admin_port, timeout=5)
    try:
        connection.request(
            "POST",
            path,
            body=json.dumps(body),
            headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        data = response.read()
        assert response.status == 200, data
        return json.loads(data)
    finally:
        connection.close()


class TestGraceThroughNginx:
    def test_first_use_on_one_instance_ends_the_previous_secret_on_the_other(
        self, sites: tuple[Site, Site]
    ) -> None:
        """Both secrets pass during the grace; after the new one passes through instance
        two, instance one refuses the old one within a second (nginx answers 401)."""
        one, two = sites
        admin = one.authsvc.create_token("ManageOrganizationTokens", "Reader", "Writer")
        token = one.authsvc.create_token("Reader")
        rotated = admin_call(
            one.authsvc, admin.secret, f"/admin/v1/tokens/{token.id}/rotate", {"grace": "1h"}
        )
        assert rotated["previous_secret_expires_at"] is not None
        assert one.status(token.secret) == 200  # cached by instance one for 30 s
        assert two.status(token.secret) == 200
        assert two.status(rotated["token"]) == 200  # the first use: on instance two
        started = time.monotonic()
        while one.status(token.secret) != 401:
            assert time.monotonic() - started < BOUND, one.authsvc.log()
            time.sleep(0.01)
        assert two.status(token.secret) == 401
        assert one.status(rotated["token"]) == 200
        audit = (one.authsvc.workdir / "audit.log").read_text() + (
            two.authsvc.workdir / "audit.log"
        ).read_text()
        ended = [json.loads(line) for line in audit.splitlines() if "grace_ended" in line]
        assert [(e["action"], e["target"]) for e in ended] == [("token.grace_ended", token.id)]

    def test_a_revoked_leaked_secret_stops_on_the_other_instance(
        self, sites: tuple[Site, Site]
    ) -> None:
        """A secret revoked through instance two's public call (no admin token) stops
        passing through instance one within a second."""
        one, two = sites
        token = one.authsvc.create_token("Reader")
        assert one.status(token.secret) == 200  # cached by instance one
        connection = http.client.HTTPConnection("127.0.0.1", two.authsvc.admin_port, timeout=5)
        try:
            connection.request(
                "POST",
                "/admin/v1/tokens/revoke",
                body=json.dumps({"token": token.secret}),
                headers={"Content-Type": "application/json"},
            )
            response = connection.getresponse()
            assert (response.status, json.loads(response.read())) == (
                200,
                {"id": token.id, "revoked": "token"},
            )
        finally:
            connection.close()
        started = time.monotonic()
        while one.status(token.secret) != 401:
            assert time.monotonic() - started < BOUND, one.authsvc.log()
            time.sleep(0.01)
