"""SIGTERM (SECURITY 23): stop accepting, finish the requests in flight, close cleanly."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import time
from pathlib import Path

from tests.processes import start_authsvc
from tests.stores import hold_write_lock


class TestSigterm:
    def test_request_in_flight_is_finished_and_kept(self, tmp_path: Path) -> None:
        """A create still waiting on the store when SIGTERM arrives is answered 201 and
        kept; meanwhile new connections are refused; the process then exits 0."""
        server = start_authsvc(tmp_path)
        try:
            admin = server.create_token("ManageOrganizationTokens", "Reader")
            body = json.dumps({"name": "in flight", "permissions": ["Reader"]}).encode()
            request = (
                f"POST /admin/v1/tokens HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: {admin.bearer}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode() + body
            # Another writer holds the database: the create waits in the store (busy_timeout
            # 5 s), so its handler is in flight when the signal comes.
            blocker = hold_write_lock(tmp_path / "authsvc.db")
            with socket.create_connection(("127.0.0.1", server.admin_port), timeout=15) as sock:
                sock.sendall(request)
                time.sleep(0.3)
                server.send(signal.SIGTERM)
                time.sleep(0.5)
                refused = False
                try:
                    socket.create_connection(("127.0.0.1", server.admin_port), timeout=1).close()
                except OSError:
                    refused = True
                blocker.execute("ROLLBACK")
                blocker.close()
                reply = b""
                while chunk := sock.recv(65536):
                    reply += chunk
            assert reply.startswith(b"HTTP/1.1 201"), reply[:200]
            assert refused, "the listener still accepted connections after SIGTERM"
            assert server.stop() == 0
            assert "stopped" in server.log()
        finally:
            server.stop()
        with sqlite3.connect(tmp_path / "authsvc.db") as check:
            names = {row[0] for row in check.execute("SELECT name FROM tokens")}
        assert "in flight" in names
