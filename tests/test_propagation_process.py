"""Two real ``authsvc serve`` processes sharing one store (each kind): a change made
through one instance's admin API is honoured by the other within 1 s (SPEC §6)."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.processes import AuthsvcServer, start_authsvc
from tests.webapp import READ_ITEMS, bearer

BOUND = 1.0


def call(port: int, method: str, path: str, headers: dict[str, str], body: Any = None) -> Any:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        payload = None if body is None else json.dumps(body)
        connection.request(
            method, path, body=payload, headers={**headers, "Content-Type": "application/json"}
        )
        response = connection.getresponse()
        data = response.read()
        is_json = response.getheader("Content-Type", "").startswith("application/json")
        return response.status, (json.loads(data) if is_json else data)
    finally:
        connection.close()


def auth(server: AuthsvcServer, secret: str) -> int:
    """The status of ``server``'s /auth for a ``Reader`` request presenting ``secret``."""
    status, _ = call(server.auth_port, "GET", "/auth", {**bearer(secret), **READ_ITEMS})
    return int(status)


def until(server: AuthsvcServer, secret: str, status: int) -> float:
    """Seconds until ``server`` answers ``status`` for ``secret`` (fails past 1 s)."""
    started = time.monotonic()
    while time.monotonic() - started < BOUND:
        if auth(server, secret) == status:
            return time.monotonic() - started
        time.sleep(0.005)
    pytest.fail(f"not honoured within {BOUND}s:\n{server.log()}")


@pytest.fixture
def instances(store_url: str, tmp_path: Path) -> Iterator[tuple[AuthsvcServer, AuthsvcServer]]:
    shared: dict[str, Any] = {
        "store": store_url,
        "secret_key_file": str(tmp_path / "shared.key"),
        "cache": {"ttl": "30s", "max_entries": 1000},
    }
    one = start_authsvc(tmp_path / "one", **shared)
    two = start_authsvc(tmp_path / "two", **shared)
    yield one, two
    one.stop()
    two.stop()


class TestTwoInstances:
    def test_changes_on_one_reach_the_other_within_a_second(
        self, instances: tuple[AuthsvcServer, AuthsvcServer], store_url: str
    ) -> None:
        """Delete, rotate and permission change through instance one; instance two's
        cache (TTL 30 s) drops the old record within 1 s each time."""
        one, two = instances
        admin = {
            "Authorization": one.create_token("ManageOrganizationTokens", "Reader", "Writer").bearer
        }
        timings = {}

        def fresh(name: str) -> tuple[str, str]:
            status, body = call(
                one.admin_port,
                "POST",
                "/admin/v1/tokens",
                admin,
                {"name": name, "permissions": ["Reader"]},
            )
            assert status == 201
            assert auth(two, body["token"]) == 200  # cached by instance two now
            return body["id"], body["token"]

        token_id, secret = fresh("deleted")
        call(one.admin_port, "DELETE", f"/admin/v1/tokens/{token_id}", admin)
        timings["delete"] = until(two, secret, 401)

        token_id, secret = fresh("rotated")
        status, body = call(one.admin_port, "POST", f"/admin/v1/tokens/{token_id}/rotate", admin)
        assert status == 200
        timings["rotate"] = until(two, secret, 401)
        assert auth(two, body["token"]) == 200

        token_id, secret = fresh("narrowed")
        call(
            one.admin_port,
            "PATCH",
            f"/admin/v1/tokens/{token_id}",
            admin,
            {"permissions": ["Writer"]},
        )
        timings["permissions"] = until(two, secret, 403)

        kind = store_url.split(":", 1)[0]
        shown = ", ".join(f"{change} {s * 1000:.0f} ms" for change, s in timings.items())
        print(f"propagation ({kind}): {shown}")
