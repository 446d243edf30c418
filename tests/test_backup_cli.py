"""``authsvc backup DIR`` and ``authsvc restore DIR`` as the real program (docs/cli.md):
exit status 0, 2 for a refusal (nothing changed), 1 when a tool is missing; what they print.
And the PostgreSQL tools get their credentials from the environment, never from a command
line that every user of the host can read."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from authsvc.backup.commands import take_backup
from authsvc.store import open_store
from authsvc.store.postgres.snapshot import tool_environment
from tests.factories import make_config
from tests.pg import PgSchema, with_address
from tests.test_cli import Cli, assert_failed, child_env, write_config


@pytest.fixture
def cli(tmp_path: Path, store_url: str) -> Cli:
    return Cli(tmp_path, write_config(tmp_path / "one", store=store_url))


def test_backup_then_restore_elsewhere(tmp_path: Path) -> None:
    """A backup prints where the key is (not in it); a restore into another folder with
    that key prints the count, and a second restore there is refused (exit 2) until
    --force."""
    one = Cli(tmp_path / "one", write_config(tmp_path / "one"))
    token = one.create("kept")
    backup = one.ok("backup", str(tmp_path / "backup")).stdout
    assert "backed up 1 token(s)" in backup
    assert str(tmp_path / "one" / "authsvc.key") in backup
    assert "separately" in backup
    two = Cli(tmp_path / "two", write_config(tmp_path / "two"))
    shutil.copy(tmp_path / "one" / "authsvc.key", tmp_path / "two" / "authsvc.key")
    restored = two.ok("restore", str(tmp_path / "backup")).stdout
    assert "restored 1 token(s)" in restored
    assert "no audit log replayed" in restored
    assert [t["id"] for t in two.ok("token", "list", "--json").json()] == [token["id"]]
    assert_failed(two.run("restore", str(tmp_path / "backup")), status=2)
    assert "restored 1 token(s)" in two.ok("restore", str(tmp_path / "backup"), "--force").stdout


def test_refusals_exit_2_and_change_nothing(cli: Cli, tmp_path: Path) -> None:
    """A folder that is not empty, a restore without the backup's key: exit 2, one
    sentence, nothing written."""
    cli.create("kept")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "x").write_text("")
    assert_failed(cli.run("backup", str(taken)), status=2)
    cli.ok("backup", str(tmp_path / "backup"))
    key_file = cli.folder / "one" / "authsvc.key"
    key_file.write_text("cd" * 32 + "\n")
    result = cli.run("restore", str(tmp_path / "backup"), "--force")
    assert result.status == 2, result.stderr
    assert "another key" in result.stderr
    assert key_file.read_text() == "cd" * 32 + "\n"


def test_pg_dump_missing_is_a_clear_error(tmp_path: Path, pg_schema: PgSchema) -> None:
    """Without the PostgreSQL client tools on PATH: exit 1 naming pg_dump and where it
    comes from; no backup folder is left behind."""
    cli = Cli(tmp_path, write_config(tmp_path, store=pg_schema.url))
    cli.create("kept")
    result = cli.run("backup", str(tmp_path / "backup"), env=child_env(PATH="/nonexistent"))
    assert_failed(result, status=1)
    assert "pg_dump is not installed" in result.stderr
    assert "postgresql-client" in result.stderr
    assert not (tmp_path / "backup").exists()


def test_tool_environment_carries_the_connection() -> None:
    """User, password, hosts, ports, database and TLS settings become PG* variables;
    server settings such as search_path do not (names are schema-qualified)."""
    url = "postgresql://svc:p%40ss%3Aw@db1:5433,[::1]:5434/tokens?sslmode=verify-full&search_path=x"
    env = tool_environment(url, base={})
    assert env == {
        "PGUSER": "svc",
        "PGPASSWORD": "p@ss:w",
        "PGHOST": "db1,::1",
        "PGPORT": "5433,5434",
        "PGDATABASE": "tokens",
        "PGSSLMODE": "verify-full",
        "PGCONNECT_TIMEOUT": "10",
    }


async def test_the_password_never_reaches_a_command_line(
    tmp_path: Path, pg_schema: PgSchema, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pg_dump, run against a store URL with a password, gets it in PGPASSWORD only."""
    parts = urlsplit(pg_schema.url)
    password = "pw-that-must-stay-hidden"
    url = with_address(pg_schema.url, parts.hostname or "127.0.0.1", parts.port or 5432, password)
    config = make_config(tmp_path, store=url, audit_log=str(tmp_path / "audit.log"))
    seen: list[tuple[tuple[str, ...], dict[str, Any]]] = []
    real = asyncio.create_subprocess_exec

    async def spy(*argv: str, **options: Any) -> asyncio.subprocess.Process:
        seen.append((argv, options))
        return await real(*argv, **options)

    store = open_store(url)  # a store to back up (its tables)
    await store.open()
    await store.close()
    monkeypatch.setattr(asyncio, "create_subprocess_exec", spy)
    manifest = await take_backup(config, tmp_path / "backup", {"AUTHSVC_SECRET_KEY": "k" * 40})
    assert [Path(argv[0]).name for argv, _ in seen] == ["pg_dump"]
    argv, options = seen[0]
    assert not any(password in arg for arg in argv)
    assert options["env"]["PGPASSWORD"] == password
    text = (tmp_path / "backup" / "manifest.json").read_text()
    assert password not in text
    assert json.loads(text)["store"] == manifest.store
    assert os.environ.get("PGPASSWORD") != password  # the caller's environment is untouched
