"""``--rate-limit`` on the command line (SPEC §12, docs/cli.md): set at create, changed or
removed by ``token update``, refused beyond the policy's maximum, and ``config check``
naming the tokens a new maximum holds back."""

from __future__ import annotations

from pathlib import Path

from tests.test_cli import Cli, assert_failed, write_config


def cli_in(folder: Path, **policy: object) -> Cli:
    return Cli(folder, write_config(folder, security_policy=policy))


def test_create_update_and_remove(tmp_path: Path) -> None:
    cli = cli_in(tmp_path)
    token = cli.create("limited", "--rate-limit", "600/m")
    assert token["rate_limit"] == "600/m"
    updated = cli.ok("token", "update", token["id"], "--rate-limit", "5/s", "--json").json()
    assert (updated["rate_limit"], updated["permissions"]) == ("5/s", ["Reader"])
    cleared = cli.ok("token", "update", token["id"], "--rate-limit", "none", "--json").json()
    assert cleared["rate_limit"] is None
    shown = cli.ok("token", "show", token["id"]).stdout
    assert "rate_limit: -" in shown


def test_update_needs_something_to_change(tmp_path: Path) -> None:
    cli = cli_in(tmp_path)
    token = cli.create("limited")
    result = cli.run("token", "update", token["id"])
    assert_failed(result, status=2)
    assert "--rate-limit" in result.stderr


def test_refusals_name_the_rule(tmp_path: Path) -> None:
    cli = cli_in(tmp_path, max_rate_limit="10/s")
    result = cli.run("token", "create", "--name", "x", "--permission", "Reader")
    assert_failed(result)
    assert "requires a rate limit of at most 10/s" in result.stderr
    result = cli.run(
        "token", "create", "--name", "x", "--permission", "Reader", "--rate-limit", "11/s"
    )
    assert_failed(result)
    assert "higher than the security policy's maximum of 10/s" in result.stderr
    result = cli.run(
        "token", "create", "--name", "x", "--permission", "Reader", "--rate-limit", "0/s"
    )
    assert_failed(result)
    assert "'0/s' is not a limit such as 600/m" in result.stderr
    assert cli.ok("token", "list", "--json").json() == []


def test_config_check_lists_tokens_a_new_maximum_holds_back(tmp_path: Path) -> None:
    cli = cli_in(tmp_path)
    fast = cli.create("fast", "--rate-limit", "100/s")
    free = cli.create("free")
    slow = cli.create("slow", "--rate-limit", "1/s")
    strict = write_config(tmp_path, "strict.yaml", security_policy={"max_rate_limit": "10/s"})
    out = cli.ok("config", "check", config=strict).stdout
    assert f"limited: {fast['id']} (fast): rate limit 100/s is above max_rate_limit 10/s" in out
    assert f"limited: {free['id']} (free): has no rate limit" in out
    assert slow["id"] not in out
    assert "all 3 existing token(s) are accepted by this policy" in out
