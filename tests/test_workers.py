"""``serve --workers N``: processes sharing the sockets, one propagation bound, clean stop."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import AuthsvcServer, start_authsvc
from tests.test_propagation_process import auth, call

BOUND = 1.0


def children(pid: int) -> set[int]:
    """Process ids whose parent is ``pid``."""
    found = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line
            )
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid):
            found.add(int(status.parent.name))
    return found


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AuthsvcServer]:
    server = start_authsvc(tmp_path, serve_args=("--workers", "3"), cache={"ttl": "30s"})
    yield server
    server.stop()


class TestWorkers:
    def test_workers_share_the_listeners(self, server: AuthsvcServer) -> None:
        """Three worker processes answer on the same ports."""
        workers = children(server.pid)
        assert len(workers) == 3
        reader = server.create_token("Reader")
        assert {auth(server, reader.secret) for _ in range(30)} == {200}

    def test_a_delete_reaches_every_worker_within_a_second(self, server: AuthsvcServer) -> None:
        """Every worker's cache (TTL 30 s) drops a token deleted through any one of them."""
        admin = {"Authorization": server.create_token("ManageOrganizationTokens", "Reader").bearer}
        status, body = call(
            server.admin_port,
            "POST",
            "/admin/v1/tokens",
            admin,
            {"name": "spread", "permissions": ["Reader"]},
        )
        assert status == 201
        for _ in range(60):  # new connections: the kernel spreads them over the workers
            assert auth(server, body["token"]) == 200
        call(server.admin_port, "DELETE", f"/admin/v1/tokens/{body['id']}", admin)
        time.sleep(BOUND)
        assert {auth(server, body["token"]) for _ in range(60)} == {401}

    def test_a_worker_that_dies_is_replaced(self, server: AuthsvcServer) -> None:
        """A crashed worker is restarted; the service keeps answering meanwhile."""
        reader = server.create_token("Reader")
        victim = min(children(server.pid))
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            workers = children(server.pid)
            if len(workers) == 3 and victim not in workers:
                break
            assert auth(server, reader.secret) == 200
            time.sleep(0.1)
        assert len(children(server.pid)) == 3

    def test_sigterm_stops_every_worker(self, server: AuthsvcServer) -> None:
        """SIGTERM to the parent stops the workers and exits 0."""
        workers = children(server.pid)
        assert server.stop() == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
