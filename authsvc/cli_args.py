"""The ``authsvc`` command line's arguments (docs/cli.md): the parser alone, so that the
commands in :mod:`authsvc.cli` read as what they do."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from authsvc.cli_backup import add_backup_parsers
from authsvc.cli_explain import add_explain_parser
from authsvc.cli_usage import add_usage_parser
from authsvc.rules.durations import parse_duration

DEFAULT_CONFIG = "config/authsvc.yaml"

#: ``--permission P`` of ``token create`` and ``token update``: repeat for several.
_PERMISSION: dict[str, Any] = {
    "action": "append",
    "dest": "permissions",
    "metavar": "PERMISSION",
    "help": "repeat for several permissions",
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of docs/cli.md; usage errors exit with status 2."""
    parser = argparse.ArgumentParser(
        prog="authsvc",
        description="Organization API tokens for APIs behind nginx auth_request.",
        epilog="Reference: docs/cli.md in the authsvc repository.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help=f"configuration file (default: $AUTHSVC_CONFIG or {DEFAULT_CONFIG})",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the auth and admin listeners")
    serve.add_argument(
        "--workers",
        type=_positive,
        default=1,
        metavar="N",
        help="processes sharing the listening sockets (default 1)",
    )
    commands.add_parser(
        "migrate", help="create or upgrade the store's schema (serve also does it at start-up)"
    )

    token = commands.add_parser("token", help="manage tokens directly in the store")
    actions = token.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="issue a token and print its secret once")
    create.add_argument("--name", required=True)
    granted = create.add_mutually_exclusive_group(required=True)
    granted.add_argument("--permission", **_PERMISSION)
    granted.add_argument(
        "--all-permissions",
        action="store_true",
        help="every permission of the catalog and both admin ones, as they are now "
        "(permissions added later are not included); for the first admin token",
    )
    create.add_argument("--expires-in", help="lifetime from now: 30m, 12h, 90d")
    create.add_argument("--ip-filter", help="name of an IP filter from the configuration")
    create.add_argument(
        "--rate-limit", metavar="LIMIT", help="allowed requests per s, m or h: 600/m, 5/s"
    )
    create.add_argument("--json", action="store_true", help="print a JSON object")
    listing = actions.add_parser("list", help="list tokens")
    listing.add_argument(
        "--status",
        choices=("active", "expired", "blocked"),
        help="only tokens with this status under the policy in the file",
    )
    listing.add_argument(
        "--expiring",
        type=_window,
        metavar="DURATION",
        help="only active tokens that stop working within this time from now: 12h, 7d",
    )
    listing.add_argument("--json", action="store_true")
    for name, text in (("show", "show one token"), ("rotate", "issue a new secret")):
        sub = actions.add_parser(name, help=text)
        sub.add_argument("id")
        sub.add_argument("--json", action="store_true")
        if name == "rotate":
            sub.add_argument(
                "--grace",
                metavar="DURATION",
                help="keep the old secret working this long (at most 7d), or until the new "
                "one is first used: 30m, 1h, 2d",
            )
    revoke = actions.add_parser(
        "revoke",
        help="revoke a leaked secret read from stdin: its token is deleted (a previous "
        "secret in its grace: only that grace ends)",
    )
    revoke.add_argument("--json", action="store_true", help='print {"id", "revoked"}')
    update = actions.add_parser(
        "update",
        help="replace a token's permissions (if the policy allows permission updates) "
        "and/or its rate limit",
    )
    update.add_argument("id")
    update.add_argument("--permission", **_PERMISSION)
    update.add_argument(
        "--rate-limit", metavar="LIMIT", help="a new limit such as 600/m, or 'none' for none"
    )
    update.add_argument("--json", action="store_true")
    actions.add_parser("delete", help="delete a token").add_argument("id")
    add_usage_parser(actions)

    add_explain_parser(commands)
    add_backup_parsers(commands)

    config = commands.add_parser("config", help="configuration tools")
    config_actions = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    config_actions.add_parser(
        "check", help="validate the file and list tokens its policy would refuse"
    )
    return parser


def _window(text: str) -> int:
    """``--expiring``: a duration in m, h or d, as seconds."""
    try:
        return parse_duration(text, units="mhd")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to 64")
    return int(text)
