"""The ``authsvc`` command line: argument parsing and output only (SPEC §5).

Expected failures (bad configuration, unknown id, policy refusals, an unreachable
store) print one sentence to stderr and exit non-zero; never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from authsvc.config import Config, ConfigError, load_config
from authsvc.config_check import refusals
from authsvc.policy import Refused
from authsvc.runtime import Runtime
from authsvc.secret_key import SecretKeyError
from authsvc.service import CLI_ACTOR
from authsvc.store import StoreError, open_store
from authsvc.token_view import token_object
from authsvc.tokens import TokenRecord

DEFAULT_CONFIG = "config/authsvc.yaml"
EXIT_FAILURE = 1
EXIT_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="authsvc", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config",
        type=Path,
        help=f"configuration file (default: $AUTHSVC_CONFIG or {DEFAULT_CONFIG})",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("serve", help="run the auth and admin listeners")

    token = commands.add_parser("token", help="manage tokens directly in the store")
    actions = token.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="issue a token and print its secret once")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--permission",
        action="append",
        required=True,
        dest="permissions",
        metavar="PERMISSION",
        help="repeat for several permissions",
    )
    create.add_argument("--expires-in", help="lifetime from now: 30m, 12h, 90d")
    create.add_argument("--ip-filter", help="name of an IP filter from the configuration")
    create.add_argument("--json", action="store_true", help="print a JSON object")
    listing = actions.add_parser("list", help="list tokens")
    listing.add_argument("--json", action="store_true")
    for name, text in (("show", "show one token"), ("rotate", "issue a new secret")):
        sub = actions.add_parser(name, help=text)
        sub.add_argument("id")
        sub.add_argument("--json", action="store_true")
    actions.add_parser("delete", help="delete a token").add_argument("id")

    config = commands.add_parser("config", help="configuration tools")
    config_actions = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    config_actions.add_parser(
        "check", help="validate the file and list tokens its policy would refuse"
    )
    return parser


def config_path(option: Path | None) -> Path:
    return option or Path(os.environ.get("AUTHSVC_CONFIG") or DEFAULT_CONFIG)


def fail(message: str, status: int = EXIT_FAILURE) -> int:
    print(f"authsvc: {message}", file=sys.stderr)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    serving = args.command == "serve"
    logging.basicConfig(
        level=os.environ.get("AUTHSVC_LOG_LEVEL", "INFO" if serving else "WARNING").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        config = load_config(config_path(args.config))
    except ConfigError as error:
        for line in error.errors:
            print(line, file=sys.stderr)
        return EXIT_CONFIG
    try:
        return _run(args, config)
    except Refused as error:
        return fail(error.message)
    except (SecretKeyError, OSError) as error:  # OSError: e.g. a listen address in use
        return fail(str(error))
    except StoreError as error:
        return fail(f"the token store is unavailable: {error}")
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace, config: Config) -> int:
    if args.command == "serve":
        # aiohttp is imported only where it is needed: token commands start faster.
        from authsvc.web.server import serve  # noqa: PLC0415

        asyncio.run(serve(config))
        return 0
    if args.command == "config":
        return asyncio.run(_config_check(config))
    return asyncio.run(_token(config, args))


async def _token(config: Config, args: argparse.Namespace) -> int:
    runtime = await Runtime.open(config)
    try:
        service = runtime.service
        policy = config.policy
        now = runtime.clock()
        if args.action == "create":
            record, secret = await service.create(
                actor=CLI_ACTOR,
                client=None,
                name=args.name,
                permissions=args.permissions,
                expires_in=args.expires_in,
                ip_filter=args.ip_filter,
            )
            _print_secret(token_object(record, policy, now), secret, as_json=args.json)
        elif args.action == "rotate":
            record, secret = await service.rotate(actor=CLI_ACTOR, client=None, token_id=args.id)
            _print_secret(token_object(record, policy, now), secret, as_json=args.json)
        elif args.action == "show":
            record = await service.get(args.id)
            _print_tokens([record], config, now, as_json=args.json, single=True)
        elif args.action == "list":
            records = await runtime.store.all_tokens()
            _print_tokens(records, config, now, as_json=args.json, single=False)
        else:
            await service.delete(actor=CLI_ACTOR, client=None, token_id=args.id)
            print(f"deleted {args.id}", file=sys.stderr)
        return 0
    finally:
        await runtime.close()


def _print_secret(token: dict[str, Any], secret: str, *, as_json: bool) -> None:
    """The secret alone on one stdout line (scripts capture it); details go to stderr."""
    if as_json:
        print(json.dumps({**token, "token": secret}, ensure_ascii=False))
        return
    print(secret)
    print(
        f"token {token['id']} ({token['name']}): store the secret now, it is not shown again",
        file=sys.stderr,
    )


def _print_tokens(
    records: list[TokenRecord], config: Config, now: float, *, as_json: bool, single: bool
) -> None:
    objects = [token_object(record, config.policy, now) for record in records]
    if as_json:
        print(json.dumps(objects[0] if single else objects, ensure_ascii=False, indent=2))
        return
    if single:
        for key, value in objects[0].items():
            shown = (
                ", ".join(value) if isinstance(value, list) else ("-" if value is None else value)
            )
            print(f"{key:>13}: {shown}")
        return
    print(f"{'ID':<20} {'STATUS':<8} {'EXPIRES':<20} {'NAME':<30} PERMISSIONS")
    for token in objects:
        print(
            f"{token['id']:<20} {token['status']:<8} {token['expires_at'] or 'never':<20} "
            f"{token['name']:<30} {','.join(token['permissions'])}"
        )


async def _config_check(config: Config) -> int:
    print(f"{config.path}: configuration is valid")
    store = open_store(config.store)
    await store.open()
    try:
        records = await store.all_tokens()
    finally:
        await store.close()
    problems = [
        (record, why) for record in records if (why := refusals(record, config, time.time()))
    ]
    if not problems:
        print(f"all {len(records)} existing token(s) are accepted by this policy")
    for record, reasons in problems:
        print(f"refused: {record.id} ({record.name}): {'; '.join(reasons)}")
    return 0
