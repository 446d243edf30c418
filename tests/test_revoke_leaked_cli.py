"""The CLI's side of the token lifecycle (SPEC §5, §11), as a real program on both stores:
``token rotate ID --grace 1h`` and ``token revoke`` reading a secret from stdin."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from authsvc.rules.tokens import new_secret
from tests.test_cli import RUN_TIMEOUT, SECRET_LINE, Cli, Result, assert_failed, child_env
from tests.test_cli import write_config as write_cli_config


def revoke(cli: Cli, stdin: str, *extra: str) -> Result:
    """``authsvc token revoke`` with ``stdin`` as its standard input."""
    done = subprocess.run(
        [sys.executable, "-m", "authsvc", "--config", str(cli.config), "token", "revoke", *extra],
        cwd=cli.folder,
        env=child_env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def make_cli(tmp_path: Path, store_url: str) -> Cli:
    return Cli(tmp_path, write_cli_config(tmp_path, store=store_url))


def audit(cli: Cli) -> list[dict[str, object]]:
    return [json.loads(line) for line in (cli.folder / "audit.log").read_text().splitlines()]


class TestRotateWithGrace:
    def test_grace_keeps_the_old_secret_for_a_while(self, tmp_path: Path, store_url: str) -> None:
        """The new secret alone on stdout as ever; show says until when the old one works;
        the audit record carries the grace."""
        cli = make_cli(tmp_path, store_url)
        token = cli.create("rotated")
        rotated = cli.ok("token", "rotate", token["id"], "--grace", "90m")
        assert SECRET_LINE.match(rotated.stdout.strip())
        shown = cli.ok("token", "show", token["id"], "--json").json()
        assert shown["previous_secret_expires_at"] is not None
        assert audit(cli)[-1]["details"] == {"grace": "90m"}

    def test_too_long_a_grace_is_refused(self, tmp_path: Path, store_url: str) -> None:
        """More than 7d: one sentence, exit 1, nothing rotated."""
        cli = make_cli(tmp_path, store_url)
        token = cli.create("kept")
        result = cli.run("token", "rotate", token["id"], "--grace", "8d")
        assert_failed(result, 1)
        assert "7d" in result.stderr
        assert [e["action"] for e in audit(cli)] == ["token.create"]


class TestRevoke:
    def test_a_current_secret_deletes_the_token(self, tmp_path: Path, store_url: str) -> None:
        """The secret on stdin (with its newline): the token is deleted; --json says so."""
        cli = make_cli(tmp_path, store_url)
        token = cli.create("leaked")
        result = revoke(cli, token["token"] + "\n", "--json")
        assert result.status == 0, result.stderr
        assert result.json() == {"id": token["id"], "revoked": "token"}
        assert cli.ok("token", "list", "--json").json() == []
        last = audit(cli)[-1]
        assert (last["action"], last["actor"], last["target"]) == (
            "token.revoke_leaked",
            "cli",
            token["id"],
        )

    def test_a_previous_secret_ends_the_grace(self, tmp_path: Path, store_url: str) -> None:
        """A previous secret in its grace: only the grace ends (said on stderr)."""
        cli = make_cli(tmp_path, store_url)
        token = cli.create("rotated")
        cli.ok("token", "rotate", token["id"], "--grace", "1h")
        result = revoke(cli, token["token"])
        assert result.status == 0, result.stderr
        assert result.stdout == ""
        assert "previous secret" in result.stderr
        shown = cli.ok("token", "show", token["id"], "--json").json()
        assert shown["previous_secret_expires_at"] is None

    def test_nothing_to_revoke(self, tmp_path: Path, store_url: str) -> None:
        """Unknown, malformed or no secret: one sentence, exit 1, the secret not echoed."""
        cli = make_cli(tmp_path, store_url)
        cli.create("kept")
        unknown = new_secret()
        for stdin in (unknown, "junk", "", "\n"):
            result = revoke(cli, stdin)
            assert_failed(result, 1)
            assert unknown not in result.stderr
        assert len(cli.ok("token", "list", "--json").json()) == 1
