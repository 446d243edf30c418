"""Backup and restore through real nginx (SPEC §13), on both stores: a backup taken while
tokens are being created through the admin API is restored, on a fresh host (a new folder;
for PostgreSQL an emptied schema), with the key file copied apart; every token made before
the backup works through nginx, and with ``--replay-audit`` a token deleted after the
backup answers 401."""

from __future__ import annotations

import asyncio
import http.client
import json
import shutil
import threading
from pathlib import Path

import pytest

from tests.e2e.conftest import NginxProxy
from tests.e2e.upstream import EchoUpstream
from tests.pg import connect
from tests.processes import (
    AuthsvcServer,
    IssuedToken,
    free_port,
    start_authsvc,
    write_authsvc_config,
)

pytestmark = pytest.mark.e2e

ITEM = "/api/v1/items/42"


class AdminWriter(threading.Thread):
    """Creates tokens through the admin API without pause until stopped."""

    def __init__(self, server: AuthsvcServer, admin: IssuedToken) -> None:
        super().__init__(daemon=True)
        self._server = server
        self._admin = admin
        self.made: list[IssuedToken] = []
        self._stopping = threading.Event()
        self._grew = threading.Condition()

    def run(self) -> None:
        number = 0
        while not self._stopping.is_set():
            number += 1
            name = f"written-{number}"
            connection = http.client.HTTPConnection(
                "127.0.0.1", self._server.admin_port, timeout=10
            )
            try:
                connection.request(
                    "POST",
                    "/admin/v1/tokens",
                    body=json.dumps({"name": name, "permissions": ["Reader"]}),
                    headers={
                        "Authorization": self._admin.bearer,
                        "Content-Type": "application/json",
                    },
                )
                response = connection.getresponse()
                body = json.loads(response.read())
            finally:
                connection.close()
            assert response.status == 201, body
            with self._grew:
                self.made.append(IssuedToken(body["id"], name, body["token"]))
                self._grew.notify_all()

    def made_at_least(self, count: int) -> list[IssuedToken]:
        """Wait until ``count`` tokens exist; those made so far."""
        with self._grew:
            if not self._grew.wait_for(lambda: len(self.made) >= count, timeout=60):
                raise AssertionError(f"the writer made only {len(self.made)} tokens")
            return list(self.made)

    def finish(self) -> None:
        self._stopping.set()
        self.join(timeout=30)


async def _empty_schema(url: str) -> None:
    """What a new PostgreSQL host has: the store's schema, empty."""
    conn = await connect(url)
    try:
        name = await conn.fetchval("SELECT current_schema()")
        await conn.execute(f'DROP SCHEMA "{name}" CASCADE; CREATE SCHEMA "{name}"')
    finally:
        await conn.close()


def test_tokens_of_a_backup_taken_during_writes_work_after_a_restore(
    store_url: str, tmp_path: Path, nginx_binary: str, echo_upstream: EchoUpstream
) -> None:
    one = start_authsvc(tmp_path / "one", store=store_url)
    try:
        admin = one.create_token("ManageOrganizationTokens", "Reader")
        deleted_later, *kept = (one.create_token("Reader") for _ in range(3))
        writer = AdminWriter(one, admin)
        writer.start()
        written_before = writer.made_at_least(3)
        one.cli("backup", str(tmp_path / "backup"))
        writer.made_at_least(len(writer.made) + 3)  # still writing after the backup
        writer.finish()
        one.delete_token(deleted_later.id)
    finally:
        one.stop()

    # the new host: another folder, the key file carried over apart from the backup
    if not store_url.startswith("sqlite:"):
        asyncio.run(_empty_schema(store_url))
    (tmp_path / "two").mkdir()
    shutil.copy(tmp_path / "one" / "authsvc.key", tmp_path / "two" / "authsvc.key")
    auth_port, admin_port = free_port(), free_port()
    overrides = {} if store_url.startswith("sqlite:") else {"store": store_url}
    config = write_authsvc_config(
        tmp_path / "two", auth_port=auth_port, admin_port=admin_port, **overrides
    )
    two = AuthsvcServer(config, tmp_path / "two", auth_port=auth_port, admin_port=admin_port)
    audit_log = str(tmp_path / "one" / "audit.log")
    printed = two.cli("restore", str(tmp_path / "backup"), "--replay-audit", audit_log)
    assert deleted_later.id in printed

    two.start()
    nginx = NginxProxy(
        nginx_binary,
        tmp_path / "nginx",
        listen_port=free_port(),
        auth_port=two.auth_port,
        upstream_port=echo_upstream.port,
    )
    try:
        nginx.start()

        def status(token: IssuedToken) -> int:
            return nginx.request("GET", ITEM, [("Authorization", token.bearer)]).status

        made_before = [admin, *kept, *written_before]
        assert [status(token) for token in made_before] == [200] * len(made_before)
        assert status(deleted_later) == 401
    finally:
        nginx.stop()
        two.stop()
