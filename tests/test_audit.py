"""The audit trail: one JSON line per change, private file, never a secret (SPEC §4)."""

from __future__ import annotations

import json
import logging
import re
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from authsvc.rules.durations import rfc3339
from authsvc.service.audit import AuditLog
from tests.factories import FrozenClock
from tests.test_cli import SECRET_ANYWHERE, Cli, write_config

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def entries(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


class TestRfc3339:
    @pytest.mark.parametrize(
        ("epoch", "text"),
        [
            pytest.param(0, "1970-01-01T00:00:00Z", id="epoch"),
            pytest.param(1_000_000.9, "1970-01-12T13:46:40Z", id="fraction-truncated"),
            pytest.param(1_767_225_599, "2025-12-31T23:59:59Z", id="year-end"),
        ],
    )
    def test_format(self, epoch: float, text: str) -> None:
        """UTC, whole seconds, ``Z`` suffix."""
        assert rfc3339(epoch) == text


class TestAuditLog:
    def test_one_json_line_per_event(self, tmp_path: Path) -> None:
        """Each write appends one line with time, action, actor, target, client, details."""
        path = tmp_path / "var" / "audit.log"
        audit = AuditLog(path, FrozenClock(0))
        audit.write("token.create", actor="cli", target="tok_1", details={"name": "Zoë"})
        audit.write("token.delete", actor="tok_admin", target="tok_1", client="10.0.0.1")
        first, second = entries(path)
        assert first == {
            "time": "1970-01-01T00:00:00Z",
            "action": "token.create",
            "actor": "cli",
            "target": "tok_1",
            "client": None,
            "details": {"name": "Zoë"},
        }
        assert second["client"] == "10.0.0.1"
        assert "details" not in second
        assert "Zoë" in path.read_text(encoding="utf-8")  # UTF-8, not \\u escapes

    def test_file_is_private_and_appended(self, tmp_path: Path) -> None:
        """A new audit file gets mode 0600; an existing one keeps its lines."""
        path = tmp_path / "audit.log"
        path.write_text('{"action": "earlier"}\n')
        path.chmod(0o600)
        AuditLog(path, FrozenClock()).write("config.reload", actor="system")
        assert [e["action"] for e in entries(path)] == ["earlier", "config.reload"]
        fresh = tmp_path / "fresh.log"
        AuditLog(fresh, FrozenClock()).write("config.reload", actor="system")
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o600

    def test_unwritable_file_is_logged_not_raised(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The change is already durable: a failing audit write is an error log, not a crash."""
        (tmp_path / "var").write_text("a file, not a folder")
        path = tmp_path / "var" / "audit.log"
        with caplog.at_level(logging.ERROR, logger="authsvc.audit"):
            AuditLog(path, FrozenClock()).write("token.delete", actor="cli", target="tok_1")
        assert any(str(path) in r.getMessage() for r in caplog.records)

    def test_no_file_still_logs(self, caplog: pytest.LogCaptureFixture) -> None:
        """Without a file the record still reaches the ``authsvc.audit`` logger."""
        with caplog.at_level(logging.INFO, logger="authsvc.audit"):
            AuditLog(None, FrozenClock()).write("token.rotate", actor="cli", target="tok_9")
        assert any("tok_9" in r.getMessage() for r in caplog.records)

    def test_concurrent_writers_never_interleave(self, tmp_path: Path) -> None:
        """Writers sharing the file (service and CLI) produce whole lines only."""
        path = tmp_path / "audit.log"
        details = {"name": "n" * 2000}

        def writer(actor: str) -> None:
            audit = AuditLog(path, FrozenClock())
            for _ in range(50):
                audit.write("token.create", actor=actor, details=details)

        threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        written = entries(path)
        assert len(written) == 200
        assert {e["actor"] for e in written} == {"w0", "w1", "w2", "w3"}


class TestCliAudit:
    def test_every_change_is_audited_without_secrets(self, tmp_path: Path) -> None:
        """create, rotate and delete each append one line with actor ``cli``."""
        cli = Cli(tmp_path, write_config(tmp_path))
        token = cli.create("ci", "--permission", "Writer")
        rotated = cli.ok("token", "rotate", token["id"]).stdout.strip()
        cli.ok("token", "delete", token["id"])
        log = tmp_path / "audit.log"
        written = entries(log)
        assert [e["action"] for e in written] == ["token.create", "token.rotate", "token.delete"]
        assert all(e["actor"] == "cli" for e in written)
        assert all(e["target"] == token["id"] for e in written)
        assert all(TIME.match(e["time"]) for e in written)
        assert written[0]["details"]["name"] == "ci"
        text = log.read_text(encoding="utf-8")
        assert token["token"] not in text
        assert rotated not in text
        assert SECRET_ANYWHERE.search(text) is None
        assert stat.S_IMODE(log.stat().st_mode) == 0o600

    def test_reads_and_refusals_are_not_audited(self, tmp_path: Path) -> None:
        """Only successful changes are recorded: reads and refused commands add nothing."""
        cli = Cli(tmp_path, write_config(tmp_path))
        token = cli.create("ci")
        before = (tmp_path / "audit.log").read_text(encoding="utf-8")
        cli.ok("token", "list")
        cli.ok("token", "show", token["id"])
        cli.ok("config", "check")
        for args in (
            ("token", "create", "--name", "ci", "--permission", "Reader"),
            ("token", "delete", "tok_0000000000000000"),
            ("token", "rotate", "tok_0000000000000000"),
        ):
            assert cli.run(*args).status == 1
        assert (tmp_path / "audit.log").read_text(encoding="utf-8") == before
