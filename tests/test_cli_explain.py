"""``authsvc explain ID METHOD URI [--ip ADDR] [--json]`` (docs/cli.md), run as a real
program on each store kind: the table, the JSON object (the admin API's answer), exit
statuses, and that explaining counts nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from authsvc.rules.explain import CHECK_NAMES
from authsvc.rules.tokens import new_secret
from tests.test_cli import Cli, assert_failed, write_config

ITEM = "/api/v1/items/42"


@pytest.fixture
def cli(tmp_path: Path, store_url: str) -> Cli:
    return Cli(tmp_path, write_config(tmp_path, store=store_url))


@pytest.fixture
def fenced(cli: Cli) -> dict[str, Any]:
    """A Reader token behind the ``office`` filter."""
    return cli.create("fenced", "--ip-filter", "office")


class TestOutput:
    def test_table(self, cli: Cli, fenced: dict[str, Any]) -> None:
        """The answer first, one line per check with pass or FAIL, then what matched."""
        result = cli.ok("explain", fenced["id"], "GET", ITEM, "--ip", "192.0.2.7")
        lines = result.stdout.splitlines()
        assert lines[0] == "/auth would answer 403 ip_not_allowed"
        rows = {line.split()[0]: line.split()[1] for line in lines[3 : 3 + len(CHECK_NAMES)]}
        assert rows == {
            "token": "pass",
            "request": "pass",
            "tokens_enabled": "pass",
            "expiry": "pass",
            "ip_filter": "FAIL",
            "permission": "pass",
            "rate_limit": "pass",
        }
        assert "office: deny all" in result.stdout
        assert "matched endpoint: Reader: GET /api/v1/items/{id}" in lines
        assert "deciding IP rule: deny all" in lines

    def test_json(self, cli: Cli, fenced: dict[str, Any]) -> None:
        """--json prints the admin API's object."""
        answer = cli.ok("explain", fenced["id"], "GET", ITEM, "--ip", "10.1.2.3", "--json").json()
        assert set(answer) == {"status", "reason", "checks", "matched_endpoint", "ip_rule"}
        assert (answer["status"], answer["reason"]) == (200, "ok")
        assert answer["ip_rule"] == "allow 10.0.0.0/8"
        assert [check["check"] for check in answer["checks"]] == list(CHECK_NAMES)

    @pytest.mark.parametrize(
        ("args", "expected"),
        [
            pytest.param(["GET", ITEM], (403, "ip_not_allowed"), id="no-address"),
            pytest.param(["POST", ITEM, "--ip", "10.0.0.1"], (403, "permission_denied"), id="perm"),
            pytest.param(
                ["GET", "/api/v1/./items", "--ip", "10.0.0.1"], (403, "bad_path"), id="path"
            ),
            pytest.param(["get", ITEM, "--ip", "10.0.0.1"], (403, "bad_request"), id="method"),
        ],
    )
    def test_refusals_exit_0(
        self, cli: Cli, fenced: dict[str, Any], args: list[str], expected: tuple[int, str]
    ) -> None:
        """A refusal is an explanation like any other: printed, exit status 0."""
        answer = cli.ok("explain", fenced["id"], *args, "--json").json()
        assert (answer["status"], answer["reason"]) == expected

    def test_tokens_disabled(self, cli: Cli, tmp_path: Path, store_url: str) -> None:
        """With tokens switched off the CLI still explains (the admin API cannot)."""
        token = cli.create("any")
        write_config(tmp_path, store=store_url, security_policy={"tokens_enabled": False})
        answer = cli.ok("explain", token["id"], "GET", ITEM, "--json").json()
        assert (answer["status"], answer["reason"]) == (401, "tokens_disabled")

    def test_counts_nothing(self, cli: Cli, fenced: dict[str, Any]) -> None:
        """Explaining an allowed request is not a use of the token."""
        cli.ok("explain", fenced["id"], "GET", ITEM, "--ip", "10.0.0.1")
        assert cli.ok("token", "show", fenced["id"], "--json").json()["last_used_at"] is None


class TestFailures:
    def test_unknown_id(self, cli: Cli) -> None:
        """An id that names no token: one sentence, exit status 1."""
        assert_failed(cli.run("explain", "tok_0123456789abcdef", "GET", ITEM))

    def test_secret_as_id_is_not_echoed(self, cli: Cli) -> None:
        """A secret pasted where the id belongs is refused without repeating it."""
        secret = new_secret()
        result = cli.run("explain", secret, "GET", ITEM)
        assert_failed(result)
        assert secret[:20] not in result.stderr

    @pytest.mark.parametrize(
        "args",
        [
            pytest.param(["tok_0123456789abcdef", "GET", ITEM, "--ip", "10.0.0.256"], id="bad-ip"),
            pytest.param(["tok_0123456789abcdef", "GET"], id="no-uri"),
            pytest.param([], id="nothing"),
        ],
    )
    def test_usage_errors_exit_2(self, cli: Cli, args: list[str]) -> None:
        """Bad or missing arguments are usage errors: exit status 2, nothing on stdout."""
        result = cli.run("explain", *args)
        assert (result.status, result.stdout) == (2, "")
        assert "usage: authsvc explain" in result.stderr
