"""The CLI and the delegation bounds (SPEC §10): ``token create --all-permissions`` makes
an admin token that holds what it will grant, ``token update`` changes permissions, and
the CLI, the host's operator, is not bounded by any admin token."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.factories import BASE, TOKEN_FIELDS
from tests.test_cli import Cli, assert_failed, lookup, write_config

MANAGE = "ManageOrganizationTokens"
VIEW = "ViewOrganizationTokens"
#: Every permission of the test catalog and both reserved ones.
EVERY = sorted([*BASE["permissions"], MANAGE, VIEW])


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path, write_config(tmp_path))


def audit(cli: Cli) -> list[dict[str, Any]]:
    """The audit records the CLI wrote."""
    path = cli.folder / "audit.log"
    return [json.loads(line) for line in path.read_text().splitlines()]


class TestAllPermissions:
    """``token create --all-permissions``."""

    def test_grants_the_whole_catalog_and_both_reserved(self, cli: Cli) -> None:
        """Every catalog permission plus View and Manage; the secret alone on stdout."""
        result = cli.ok("token", "create", "--name", "admin", "--all-permissions")
        record = lookup(cli.folder, result.stdout.strip())
        assert record is not None
        assert sorted(record.permissions) == EVERY
        assert record.created_by == "cli"

    def test_is_a_snapshot(self, cli: Cli, tmp_path: Path) -> None:
        """A permission added to the catalog later is not included."""
        token = cli.create("admin", "--all-permissions")
        assert token["permissions"] == EVERY
        grown = {**BASE["permissions"], "Auditor": {"description": "x", "endpoints": ["GET /a"]}}
        write_config(tmp_path, permissions=grown)
        shown = cli.ok("token", "show", token["id"], "--json").json()
        assert shown["permissions"] == EVERY

    @pytest.mark.parametrize(
        ("policy", "extra", "words"),
        [
            pytest.param({"max_lifetime": "30d"}, [], "requires an expiry", id="expiry"),
            pytest.param({"tokens_enabled": False}, [], "switched tokens off", id="disabled"),
            pytest.param({}, ["--expires-in", "30s"], "30s", id="bad-expiry"),
        ],
    )
    def test_obeys_the_policy(
        self, tmp_path: Path, policy: dict[str, Any], extra: list[str], words: str
    ) -> None:
        """The issuance policy holds as for any create: one sentence, exit 1, no token."""
        cli = Cli(tmp_path, write_config(tmp_path, security_policy=policy))
        result = cli.run("token", "create", "--name", "admin", "--all-permissions", *extra)
        assert_failed(result)
        assert words in result.stderr
        assert cli.ok("token", "list", "--json").json() == []


class TestUpdate:
    """``token update ID --permission P [--permission P ...] [--json]``."""

    def test_replaces_the_permissions_and_prints_the_token(self, cli: Cli) -> None:
        """The new set replaces the old; printed like ``token show``; audited as cli."""
        token = cli.create("ci")
        result = cli.ok("token", "update", token["id"], "--permission", "Writer")
        lines = dict(line.strip().split(": ", 1) for line in result.stdout.splitlines())
        assert set(lines) == TOKEN_FIELDS
        assert (lines["id"], lines["permissions"]) == (token["id"], "Writer")
        record = lookup(cli.folder, token["token"])
        assert record is not None
        assert record.permissions == {"Writer"}
        last = audit(cli)[-1]
        assert (last["action"], last["actor"], last["target"]) == (
            "token.update",
            "cli",
            token["id"],
        )
        assert last["details"] == {"permissions_before": ["Reader"], "permissions": ["Writer"]}

    def test_json(self, cli: Cli) -> None:
        """``--json`` prints the token object, never a secret."""
        token = cli.create("ci")
        args = ("--permission", "Writer", "--permission", "Reader", "--json")
        updated = cli.ok("token", "update", token["id"], *args).json()
        assert set(updated) == TOKEN_FIELDS
        assert updated["permissions"] == ["Reader", "Writer"]
        assert updated["created_at"] == token["created_at"]

    @pytest.mark.parametrize(
        ("policy", "token_id", "permissions", "words"),
        [
            pytest.param(
                {"allow_permission_updates": False},
                None,
                ["Writer"],
                "does not allow changing",
                id="updates-disabled",
            ),
            pytest.param({"tokens_enabled": False}, None, ["Writer"], "switched", id="off"),
            pytest.param({}, None, ["Nope"], "Known permissions: Reader", id="unknown-permission"),
            pytest.param({}, "tok_0000000000000000", ["Writer"], "No token", id="unknown-id"),
            pytest.param({}, "17", ["Writer"], "not a token id", id="malformed-id"),
        ],
    )
    def test_refusals_change_nothing(
        self,
        *,
        tmp_path: Path,
        policy: dict[str, Any],
        token_id: str | None,
        permissions: list[str],
        words: str,
    ) -> None:
        """Exit 1 with one sentence; the token keeps its permissions; no audit record."""
        cli = Cli(tmp_path, write_config(tmp_path))
        token = cli.create("ci")
        write_config(tmp_path, security_policy=policy)
        args = [arg for name in permissions for arg in ("--permission", name)]
        result = cli.run("token", "update", token_id or token["id"], *args)
        assert_failed(result)
        assert words in result.stderr
        record = lookup(cli.folder, token["token"])
        assert record is not None
        assert record.permissions == {"Reader"}
        assert [entry["action"] for entry in audit(cli)] == ["token.create"]


class TestNotBounded:
    """The CLI acts for the host's operator: no admin token bounds it."""

    def test_hands_out_more_than_any_admin_token_holds(self, cli: Cli) -> None:
        """With only a narrow, short-lived, filtered admin token around, the CLI still
        creates, widens and rotates tokens beyond it."""
        cli.create(
            "narrow admin",
            "--permission",
            MANAGE,
            "--expires-in",
            "1h",
            "--ip-filter",
            "localhost",
        )
        wide = cli.create("wide", "--permission", "Writer")
        assert (wide["expires_at"], wide["ip_filter"]) == (None, None)
        widened = cli.ok(
            "token", "update", wide["id"], "--permission", "Writer", "--permission", MANAGE
        )
        assert MANAGE in widened.stdout
        rotated = cli.ok("token", "rotate", wide["id"]).stdout.strip()
        assert lookup(cli.folder, rotated) is not None
