"""The ``authsvc`` command line (SPEC §5), run as a real program in a subprocess.

Also home of the helpers the other CLI-facing test modules import (``Cli``, ``write_config``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from authsvc.rules.tokens import TokenRecord, digest
from authsvc.service.secret_key import load_secret_key
from authsvc.store.sqlite.store import SQLiteStore
from tests.factories import TOKEN_FIELDS, config_data

SECRET_LINE = re.compile(r"^authsvc_[0-9A-Za-z]{49}$")
SECRET_ANYWHERE = re.compile(r"authsvc_[0-9A-Za-z]{49}")
RUN_TIMEOUT = 60  # a hang guard, not a timing assertion


def write_config(folder: Path, name: str = "authsvc.yaml", **overrides: Any) -> Path:
    """:func:`tests.factories.config_data` with the store, key and audit log named
    relative to the file (relative paths resolve against the file's folder, so every
    config written into one folder shares them), top-level keys replaced by ``overrides``
    (``security_policy`` entries as config_data merges them)."""
    relative = {
        "store": "sqlite:///authsvc.db",
        "secret_key_file": "authsvc.key",
        "audit_log": "audit.log",
    }
    data = config_data(folder, **{**relative, **overrides})
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def child_env(**extra: str) -> dict[str, str]:
    """The test's environment without any AUTHSVC_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSVC_")}
    env.update(extra)
    return env


@dataclass(frozen=True, slots=True)
class Result:
    status: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass(frozen=True, slots=True)
class Cli:
    """Runs ``python -m authsvc --config <config> ...`` with ``folder`` as the cwd."""

    folder: Path
    config: Path

    def run(
        self, *args: str, env: dict[str, str] | None = None, config: Path | None = None
    ) -> Result:
        """Run one command with ``--config`` (``config`` or the default one)."""
        return self.raw("--config", str(config or self.config), *args, env=env)

    def raw(self, *args: str, env: dict[str, str] | None = None) -> Result:
        """Run ``python -m authsvc`` with exactly ``args``."""
        done = subprocess.run(
            [sys.executable, "-m", "authsvc", *args],
            cwd=self.folder,
            env=env if env is not None else child_env(),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def ok(self, *args: str, config: Path | None = None) -> Result:
        """Run a command that must succeed without a traceback."""
        result = self.run(*args, config=config)
        assert result.status == 0, result.stderr
        assert "Traceback" not in result.stderr
        return result

    def create(self, name: str, *extra: str, config: Path | None = None) -> dict[str, Any]:
        """Create a token with ``--json``; the object including its secret."""
        if not any(arg in ("--permission", "--all-permissions") for arg in extra):
            extra = (*extra, "--permission", "Reader")
        token: dict[str, Any] = self.ok(
            "token", "create", "--name", name, *extra, "--json", config=config
        ).json()
        return token


def assert_failed(result: Result, status: int = 1) -> None:
    """Failed with ``status``, one sentence on stderr, nothing on stdout, no traceback."""
    assert result.status == status, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert len(lines[0]) > 20  # a sentence, not a bare code


def stored_ids(cli: Cli) -> list[str]:
    return [token["id"] for token in cli.ok("token", "list", "--json").json()]


def lookup(folder: Path, secret: str) -> TokenRecord | None:
    """The stored record the secret resolves to, using the key file in ``folder``."""
    key = load_secret_key(folder / "authsvc.key", {})

    async def find() -> TokenRecord | None:
        store = SQLiteStore(str(folder / "authsvc.db"))
        await store.open()
        try:
            return await store.get_by_digest(digest(key, secret))
        finally:
            await store.close()

    return asyncio.run(find())


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path, write_config(tmp_path))


class TestEntryPoints:
    def test_console_script_is_installed(self, tmp_path: Path) -> None:
        """The package installs an ``authsvc`` program next to the interpreter."""
        script = Path(sys.executable).parent / "authsvc"
        assert script.is_file()
        done = subprocess.run(
            [str(script), "--help"],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
            cwd=tmp_path,
            env=child_env(),
        )
        assert done.returncode == 0
        assert "usage: authsvc" in done.stdout

    def test_module_help_lists_the_commands(self, cli: Cli) -> None:
        """``python -m authsvc --help`` works and names every command."""
        result = cli.raw("--help")
        assert result.status == 0
        for command in ("serve", "token", "config", "--config"):
            assert command in result.stdout

    @pytest.mark.parametrize(
        "args",
        [
            pytest.param([], id="no-command"),
            pytest.param(["token"], id="no-action"),
            pytest.param(["token", "bogus"], id="unknown-action"),
            pytest.param(["token", "create", "--name", "x"], id="missing-permission"),
            pytest.param(["token", "create", "--permission", "Reader"], id="missing-name"),
            pytest.param(
                ["token", "create", "--name", "x", "--permission", "Reader", "--all-permissions"],
                id="permission-and-all-permissions",
            ),
            pytest.param(["token", "update", "--permission", "Reader"], id="update-no-id"),
            pytest.param(["token", "show"], id="missing-id"),
            pytest.param(["--bogus", "token", "list"], id="unknown-option"),
            pytest.param(["config"], id="config-without-action"),
        ],
    )
    def test_usage_errors_exit_2(self, cli: Cli, args: list[str]) -> None:
        """Bad usage prints argparse's usage line and exits 2, before touching anything."""
        result = cli.raw(*args)
        assert result.status == 2
        assert "usage:" in result.stderr
        assert "Traceback" not in result.stderr
        assert not (cli.folder / "authsvc.db").exists()


class TestCreate:
    def test_prints_the_secret_alone(self, cli: Cli) -> None:
        """The secret is the only stdout line; the note about it goes to stderr."""
        result = cli.ok("token", "create", "--name", "ci", "--permission", "Reader")
        assert result.stdout.endswith("\n")
        lines = result.stdout.splitlines()
        assert len(lines) == 1
        assert SECRET_LINE.match(lines[0])
        assert lines[0] not in result.stderr
        record = lookup(cli.folder, lines[0])
        assert record is not None
        assert record.name == "ci"
        assert record.created_by == "cli"

    def test_json_has_the_secret_and_every_field(self, cli: Cli) -> None:
        """``--json`` prints one object: the token object plus ``token``."""
        result = cli.ok(
            "token",
            "create",
            "--name",
            "deploys",
            "--permission",
            "Reader",
            "--permission",
            "Writer",
            "--expires-in",
            "30d",
            "--ip-filter",
            "office",
            "--json",
        )
        token = result.json()
        assert set(token) == TOKEN_FIELDS | {"token"}
        assert SECRET_LINE.match(token["token"])
        assert token["name"] == "deploys"
        assert token["permissions"] == ["Reader", "Writer"]
        assert token["ip_filter"] == "office"
        assert token["status"] == "active"
        assert token["created_by"] == "cli"
        assert token["last_used_at"] is None
        assert epoch(token["expires_at"]) - epoch(token["created_at"]) == 30 * 86400
        assert token["effective_expires_at"] == token["expires_at"]  # no policy maximum

    def test_enforced_filter_is_applied(self, tmp_path: Path) -> None:
        """With ``enforce_ip_filter`` set, a token created without a filter gets it."""
        cli = Cli(tmp_path, write_config(tmp_path, security_policy={"enforce_ip_filter": "office"}))
        assert cli.create("ci")["ip_filter"] == "office"

    def test_expiry_within_max_lifetime_is_accepted(self, tmp_path: Path) -> None:
        """An expiry equal to the policy's maximum lifetime is allowed."""
        cli = Cli(tmp_path, write_config(tmp_path, security_policy={"max_lifetime": "30d"}))
        token = cli.create("ci", "--expires-in", "30d")
        assert epoch(token["expires_at"]) - epoch(token["created_at"]) == 30 * 86400

    @pytest.mark.parametrize(
        ("policy", "args", "words"),
        [
            pytest.param({"max_lifetime": "30d"}, [], "requires an expiry", id="expiry_required"),
            pytest.param(
                {"max_lifetime": "30d"}, ["--expires-in", "31d"], "exceeds", id="expiry_too_long"
            ),
            pytest.param(
                {"enforce_ip_filter": "office"},
                ["--ip-filter", "localhost"],
                "enforces",
                id="ip_filter_enforced",
            ),
            pytest.param({}, ["--ip-filter", "lab"], "Unknown IP filter", id="unknown_ip_filter"),
            pytest.param({}, ["--permission", "Nope"], "Unknown permission", id="unknown_perm"),
            pytest.param({}, ["--expires-in", "30s"], "30s", id="seconds-not-allowed"),
            pytest.param({}, ["--expires-in", "soon"], "soon", id="bad-duration"),
            pytest.param({"tokens_enabled": False}, [], "switched tokens off", id="disabled"),
        ],
    )
    def test_policy_refusals(
        self, tmp_path: Path, policy: dict[str, Any], args: list[str], words: str
    ) -> None:
        """The admin API's issuance rules hold for the CLI: one sentence, exit 1, no token."""
        cli = Cli(tmp_path, write_config(tmp_path, security_policy=policy))
        if "--permission" not in args:
            args = [*args, "--permission", "Reader"]
        result = cli.run("token", "create", "--name", "ci", *args)
        assert_failed(result)
        assert words in result.stderr
        assert stored_ids(cli) == []

    def test_unknown_permission_names_the_catalog(self, cli: Cli) -> None:
        """The refusal tells the operator which permissions exist."""
        result = cli.run("token", "create", "--name", "ci", "--permission", "Nope")
        assert_failed(result)
        assert "Reader" in result.stderr
        assert "Writer" in result.stderr

    @pytest.mark.parametrize(
        "name",
        [
            pytest.param("ci", id="same"),
            pytest.param("x" * 101, id="too-long"),
            pytest.param(" padded", id="white-space"),
        ],
    )
    def test_bad_or_taken_names(self, cli: Cli, name: str) -> None:
        """A taken or invalid name is refused and the existing token is untouched."""
        first = cli.create("ci")
        assert_failed(cli.run("token", "create", "--name", name, "--permission", "Reader"))
        assert stored_ids(cli) == [first["id"]]

    def test_secret_is_not_logged_or_stored(self, cli: Cli) -> None:
        """SECURITY 14: even at DEBUG, the secret is on stdout only; the store holds a hash."""
        result = cli.run(
            "token",
            "create",
            "--name",
            "ci",
            "--permission",
            "Reader",
            env=child_env(AUTHSVC_LOG_LEVEL="DEBUG"),
        )
        assert result.status == 0
        secret = result.stdout.strip()
        assert SECRET_LINE.match(secret)
        assert secret not in result.stderr
        for path in cli.folder.iterdir():
            assert secret.encode() not in path.read_bytes(), path.name
            assert secret[len("authsvc_") :].encode() not in path.read_bytes(), path.name


class TestListAndShow:
    def test_list_table_and_json(self, cli: Cli) -> None:
        """The table shows id, status, expiry and name; ``--json`` is the list of objects."""
        beta = cli.create("beta", "--expires-in", "1h")
        alpha = cli.create("alpha")
        table = cli.ok("token", "list").stdout.splitlines()
        assert table[0].split()[:4] == ["ID", "STATUS", "EXPIRES", "NAME"]
        assert [line.split()[0] for line in table[1:]] == [alpha["id"], beta["id"]]
        assert "never" in table[1]
        assert "active" in table[2]
        listed = cli.ok("token", "list", "--json").json()
        assert [token["name"] for token in listed] == ["alpha", "beta"]
        assert all(set(token) == TOKEN_FIELDS for token in listed)
        assert all("token" not in token for token in listed)

    def test_empty_list(self, cli: Cli) -> None:
        """No tokens: ``--json`` is an empty list, the table says how to make one."""
        assert cli.ok("token", "list", "--json").json() == []
        result = cli.ok("token", "list")
        assert "token create" in result.stderr

    def test_show(self, cli: Cli) -> None:
        """``show`` prints every field; ``--json`` the same object as the listing."""
        token = cli.create("ci", "--ip-filter", "office")
        text = cli.ok("token", "show", token["id"]).stdout
        for field in TOKEN_FIELDS:
            assert f"{field}:" in text
        # one column of keys: every ': ' stands at the same place
        assert len({line.index(": ") for line in text.splitlines()}) == 1
        assert token["id"] in text
        assert "office" in text
        assert token["token"] not in text
        shown = cli.ok("token", "show", token["id"], "--json").json()
        assert shown == {k: v for k, v in token.items() if k != "token"}

    @pytest.mark.parametrize("action", ["show", "rotate", "delete"])
    @pytest.mark.parametrize(
        ("token_id", "words"),
        [
            pytest.param("tok_0000000000000000", "No token", id="unknown"),
            pytest.param("17", "not a token id", id="malformed"),
            pytest.param("tok_' OR 1=1 --", "not a token id", id="injection"),
            pytest.param("x" * 5000, "not a token id", id="huge"),
        ],
    )
    def test_unknown_and_malformed_ids(
        self, cli: Cli, action: str, token_id: str, words: str
    ) -> None:
        """Exit 1 with a sentence, and the existing token is unchanged."""
        existing = cli.create("ci")
        result = cli.run("token", action, token_id)
        assert_failed(result)
        assert words in result.stderr
        assert len(result.stderr) < 300  # a huge argument is not echoed back
        assert lookup(cli.folder, existing["token"]) is not None


class TestRotateAndDelete:
    def test_rotate(self, cli: Cli) -> None:
        """A new secret alone on stdout, same id; the old secret no longer resolves."""
        token = cli.create("ci")
        result = cli.ok("token", "rotate", token["id"])
        new_secret = result.stdout.strip()
        assert result.stdout.splitlines() == [new_secret]
        assert SECRET_LINE.match(new_secret)
        assert new_secret != token["token"]
        assert lookup(cli.folder, token["token"]) is None
        record = lookup(cli.folder, new_secret)
        assert record is not None
        assert record.id == token["id"]

    def test_rotate_json(self, cli: Cli) -> None:
        """``rotate --json`` prints the token object with the new secret."""
        token = cli.create("ci")
        rotated = cli.ok("token", "rotate", token["id"], "--json").json()
        assert set(rotated) == TOKEN_FIELDS | {"token"}
        assert rotated["id"] == token["id"]
        assert rotated["created_at"] == token["created_at"]
        assert rotated["token"] != token["token"]

    def test_delete(self, cli: Cli) -> None:
        """After delete the secret resolves to nothing; show and delete again fail."""
        token = cli.create("ci")
        keep = cli.create("other")
        result = cli.ok("token", "delete", token["id"])
        assert SECRET_ANYWHERE.search(result.stdout + result.stderr) is None
        assert lookup(cli.folder, token["token"]) is None
        assert stored_ids(cli) == [keep["id"]]
        assert_failed(cli.run("token", "show", token["id"]))
        assert_failed(cli.run("token", "delete", token["id"]))


class TestConfigSelection:
    @pytest.fixture
    def folder(self, tmp_path: Path) -> Path:
        for name in ("config/authsvc.yaml", "from-env.yaml", "from-option.yaml"):
            write_config(tmp_path, name)
        return tmp_path

    @pytest.mark.parametrize(
        ("option", "env", "used"),
        [
            pytest.param(None, None, "config/authsvc.yaml", id="default"),
            pytest.param(None, "from-env.yaml", "from-env.yaml", id="env-beats-default"),
            pytest.param("from-option.yaml", None, "from-option.yaml", id="option-beats-default"),
            pytest.param("from-option.yaml", "from-env.yaml", "from-option.yaml", id="option"),
            pytest.param("from-option.yaml", "missing.yaml", "from-option.yaml", id="env-unused"),
        ],
    )
    def test_precedence(self, folder: Path, option: str | None, env: str | None, used: str) -> None:
        """``--config`` beats ``AUTHSVC_CONFIG`` beats ``config/authsvc.yaml``."""
        args = ["config", "check"] if option is None else ["--config", option, "config", "check"]
        extra = {} if env is None else {"AUTHSVC_CONFIG": env}
        result = Cli(folder, folder / "unused").raw(*args, env=child_env(**extra))
        assert result.status == 0, result.stderr
        assert result.stdout.startswith(f"{folder / used}: configuration is valid")

    def test_missing_default(self, tmp_path: Path) -> None:
        """Without any config file the error names the default path; exit 2."""
        result = Cli(tmp_path, tmp_path / "unused").raw("token", "list")
        assert_failed(result, 2)
        assert "config/authsvc.yaml" in result.stderr


class TestExpectedErrors:
    @pytest.mark.parametrize(
        ("text", "words"),
        [
            pytest.param(None, "cannot read", id="missing"),
            pytest.param("", "", id="empty"),
            pytest.param("permissions: [\n", "line 2", id="bad-yaml"),
            pytest.param("permissions: !!python/object:os.system {}\n", "line 1", id="tag"),
            pytest.param(
                "permissions:\n  R:\n    endpoints: [GET /a]\nfoo: 1\n",
                "foo (line 4)",
                id="unknown-key",
            ),
        ],
    )
    def test_bad_config_exits_2(self, tmp_path: Path, text: str | None, words: str) -> None:
        """A bad configuration: exit 2, the message names the file; no files created."""
        path = tmp_path / "bad.yaml"
        if text is not None:
            path.write_text(text, encoding="utf-8")
        for args in (["token", "list"], ["config", "check"], ["serve"]):
            result = Cli(tmp_path, path).run(*args)
            assert result.status == 2
            assert "Traceback" not in result.stderr
            assert "bad.yaml" in result.stderr
            assert words in result.stderr
            assert "configuration is valid" not in result.stdout
        expected = [] if text is None else ["bad.yaml"]
        assert sorted(p.name for p in tmp_path.iterdir()) == expected

    def test_store_is_a_folder(self, tmp_path: Path) -> None:
        """An unreachable store: exit 1 and a sentence pointing at the setting."""
        (tmp_path / "store-dir").mkdir()
        cli = Cli(tmp_path, write_config(tmp_path, store="sqlite:///store-dir"))
        for args in (
            ["token", "list"],
            ["token", "create", "--name", "x", "--permission", "Reader"],
        ):
            result = cli.run(*args)
            assert_failed(result)
            assert "store" in result.stderr
            assert str(cli.config) in result.stderr

    def test_store_unreachable_in_config_check(self, tmp_path: Path) -> None:
        """``config check`` says the file is valid, then fails on the store with exit 1."""
        (tmp_path / "store-dir").mkdir()
        result = Cli(tmp_path, write_config(tmp_path, store="sqlite:///store-dir")).run(
            "config", "check"
        )
        assert result.status == 1
        assert "Traceback" not in result.stderr
        assert "store" in result.stderr

    def test_unreachable_postgresql_store(self, tmp_path: Path) -> None:
        """A PostgreSQL store nobody answers for: exit 1, a sentence, never the password."""
        store = "postgresql://u:s3cretpw@127.0.0.1:1/db"
        cli = Cli(tmp_path, write_config(tmp_path, store=store))
        result = cli.run("token", "list")
        assert_failed(result, 1)
        assert "store" in result.stderr
        assert "s3cretpw" not in result.stderr

    def test_unsupported_store_scheme(self, tmp_path: Path) -> None:
        """A store URL of another kind is a configuration error (exit 2)."""
        cli = Cli(tmp_path, write_config(tmp_path, store="mysql://u:s3cretpw@localhost/db"))
        result = cli.run("token", "list")
        assert_failed(result, 2)
        assert "store" in result.stderr
        assert "s3cretpw" not in result.stderr

    @pytest.mark.parametrize(
        ("content", "words"),
        [
            pytest.param(b"not hex\n", "does not hold a hex key", id="garbage"),
            pytest.param(b"", "shorter than", id="empty"),
            pytest.param(b"abcd\n", "shorter than", id="short"),
            pytest.param(b"\xff\xfe" * 40, "does not hold a hex key", id="binary"),
            pytest.param(None, "folder", id="directory"),
        ],
    )
    def test_bad_key_file(self, cli: Cli, content: bytes | None, words: str) -> None:
        """An unreadable or garbage key file: exit 1, a sentence, and the file is kept."""
        key = cli.folder / "authsvc.key"
        if content is None:
            key.mkdir()
        else:
            key.write_bytes(content)
            key.chmod(0o600)
        result = cli.run("token", "create", "--name", "ci", "--permission", "Reader")
        assert_failed(result)
        assert words in result.stderr
        assert content is None or key.read_bytes() == content

    def test_short_env_key(self, cli: Cli) -> None:
        """``AUTHSVC_SECRET_KEY`` shorter than 32 characters: exit 1, the key not echoed."""
        result = cli.run("token", "list", env=child_env(AUTHSVC_SECRET_KEY="tooshort-key-1234"))
        assert_failed(result)
        assert "AUTHSVC_SECRET_KEY" in result.stderr
        assert "tooshort-key-1234" not in result.stderr

    def test_bad_log_level_warns_and_continues(self, cli: Cli) -> None:
        """An unknown ``AUTHSVC_LOG_LEVEL`` is reported, not a crash."""
        result = cli.run("token", "list", "--json", env=child_env(AUTHSVC_LOG_LEVEL="chatty"))
        assert result.status == 0
        assert "Traceback" not in result.stderr
        assert "AUTHSVC_LOG_LEVEL" in result.stderr
        assert result.json() == []


class TestServe:
    @staticmethod
    def serving_config(folder: Path, auth: int, admin: int) -> Path:
        listen = {"auth": f"127.0.0.1:{auth}", "admin": f"127.0.0.1:{admin}"}
        return write_config(folder, listen=listen)

    def test_invalid_config(self, tmp_path: Path) -> None:
        """``serve`` with an invalid file exits 2 with the error."""
        path = write_config(tmp_path, cache={"ttl": "5"})
        result = Cli(tmp_path, path).run("serve")
        assert result.status == 2
        assert "cache.ttl" in result.stderr
        assert "Traceback" not in result.stderr

    def test_port_in_use(self, tmp_path: Path) -> None:
        """A taken listen address: exit 1 with a sentence naming the config file."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            cli = Cli(tmp_path, self.serving_config(tmp_path, port, free_port()))
            result = cli.run("serve")
        assert result.status == 1
        assert "Traceback" not in result.stderr
        assert "address already in use" in result.stderr
        assert str(cli.config) in result.stderr

    def test_sigterm_stops_cleanly(self, tmp_path: Path) -> None:
        """SIGTERM on a running ``serve``: exit 0 and ``stopped`` logged."""
        admin = free_port()
        config = self.serving_config(tmp_path, free_port(), admin)
        process = subprocess.Popen(
            [sys.executable, "-m", "authsvc", "--config", str(config), "serve"],
            cwd=tmp_path,
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            self.wait_listening(process, admin)
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=RUN_TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert process.returncode == 0, stderr
        assert "Traceback" not in stderr
        assert "stopped" in stderr

    @staticmethod
    def wait_listening(process: subprocess.Popen[str], port: int) -> None:
        deadline = time.monotonic() + RUN_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"serve exited early: {process.communicate()[1]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                time.sleep(0.05)
            else:
                return
        pytest.fail("serve did not start listening")


class TestMigrate:
    def test_migrate_creates_and_reports_the_schema(self, store_url: str, tmp_path: Path) -> None:
        """``migrate`` applies the schema on either store and says which version it is at."""
        cli = Cli(tmp_path, write_config(tmp_path, store=store_url))
        first = cli.run("migrate")
        assert first.status == 0, first.stderr
        assert "schema is at version 3" in first.stdout
        again = cli.run("migrate")  # idempotent
        assert again.status == 0
        assert cli.run("token", "list", "--json").status == 0

    def test_newer_schema_refuses(self, tmp_path: Path) -> None:
        """A database migrated by a newer authsvc is refused with a sentence (exit 1)."""
        cli = Cli(tmp_path, write_config(tmp_path))
        assert cli.run("migrate").status == 0
        with sqlite3.connect(tmp_path / "authsvc.db") as connection:
            connection.execute("PRAGMA user_version = 99")
        result = cli.run("migrate")
        assert_failed(result, 1)
        assert "newer than this authsvc supports" in result.stderr
