"""The ``authsvc`` command line: its commands and their output (docs/cli.md); the
arguments are parsed by :mod:`authsvc.cli_args`, the work is TokenService's.

Expected failures (bad configuration, unknown id, policy refusals, an unreachable
store) print one sentence to stderr and exit non-zero; never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from authsvc.cli_args import DEFAULT_CONFIG, build_parser
from authsvc.config import Config, ConfigError
from authsvc.config.check import refusals
from authsvc.config.load import load_config
from authsvc.rules.policy import Refused
from authsvc.rules.tokens import TokenRecord, is_token_id
from authsvc.service.runtime import Runtime
from authsvc.service.secret_key import SecretKeyError
from authsvc.service.token_service import CLI_ACTOR
from authsvc.service.token_view import token_object
from authsvc.store import StoreError, TokenStore, open_store

EXIT_FAILURE = 1
EXIT_CONFIG = 2
LOG_LEVEL_ENV = "AUTHSVC_LOG_LEVEL"
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def config_path(option: Path | None) -> Path:
    """``--config`` beats ``$AUTHSVC_CONFIG`` beats ``config/authsvc.yaml``."""
    return option or Path(os.environ.get("AUTHSVC_CONFIG") or DEFAULT_CONFIG)


def fail(message: str, status: int = EXIT_FAILURE) -> int:
    """Print one sentence to stderr and return the exit status."""
    print(f"authsvc: {message}", file=sys.stderr)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit status: 0, 1 (it failed), 2 (bad usage or configuration)."""
    args = build_parser().parse_args(argv)
    _configure_logging(serving=args.command == "serve")
    try:
        config = load_config(config_path(args.config))
    except ConfigError as error:
        for line in error.errors:
            print(line, file=sys.stderr)
        return EXIT_CONFIG
    try:
        store = open_store(config.store)  # not opened yet: only checks the scheme
    except ValueError as error:
        # the configuration only admits schemes open_store knows; kept as a safety net
        return fail(f"{config.path}: store: {error}", EXIT_CONFIG)
    return _run_reporting_errors(args, config, store)


def _run_reporting_errors(args: argparse.Namespace, config: Config, store: TokenStore) -> int:
    """Expected failures become one sentence on stderr and exit status 1."""
    try:
        return _run(args, config, store)
    except Refused as error:
        return fail(_refusal_message(error, config))
    except SecretKeyError as error:
        return fail(str(error))
    except StoreError as error:
        return fail(
            f"the token store is unavailable ({error}); check the store setting in {config.path}"
        )
    except OSError as error:  # e.g. a listen address in use
        return fail(_os_error_message(error, config))
    except KeyboardInterrupt:
        return 130


def _configure_logging(*, serving: bool) -> None:
    default = "INFO" if serving else "WARNING"
    wanted = os.environ.get(LOG_LEVEL_ENV, "").strip().upper() or default
    if wanted not in _LOG_LEVELS:
        print(
            f"authsvc: {LOG_LEVEL_ENV}={wanted!r} is not a log level "
            f"({', '.join(_LOG_LEVELS)}); using {default}",
            file=sys.stderr,
        )
        wanted = default
    worker = os.environ.get("AUTHSVC_WORKER")  # set by serve --workers for its processes
    prefix = f"worker {worker} " if worker else ""
    logging.basicConfig(
        level=wanted,
        format=f"%(asctime)s %(levelname)s {prefix}%(name)s: %(message)s",
        stream=sys.stderr,
    )


def _refusal_message(error: Refused, config: Config) -> str:
    """The policy's sentence; for unknown names, also the names that do exist."""
    known = {
        "unknown_permission": ("permissions", list(config.permissions)),
        "unknown_ip_filter": ("IP filters", list(config.ip_filters)),
    }.get(error.code)
    if known is None:
        return error.message
    what, names = known
    return f"{error.message} Known {what}: {', '.join(names) or 'none'}."


def _os_error_message(error: OSError, config: Config) -> str:
    if error.errno == errno.EADDRINUSE:
        return (
            f"{error.strerror}; another process (another authsvc?) holds that address: "
            f"stop it or change listen in {config.path}"
        )
    return str(error)


def _run(args: argparse.Namespace, config: Config, store: TokenStore) -> int:
    if args.command == "serve":
        return _serve(args, config)
    if args.command == "migrate":
        return asyncio.run(_migrate(store))
    if args.command == "config":
        print(f"{config.path}: configuration is valid")
        return asyncio.run(_config_check(config, store))
    token_id = getattr(args, "id", None)
    if token_id is not None and not is_token_id(token_id):
        return fail(
            f"{token_id[:40]!r} is not a token id: ids look like tok_ and 16 hex digits "
            "(see: authsvc token list)"
        )
    return asyncio.run(_token(config, store, args))


def _serve(args: argparse.Namespace, config: Config) -> int:
    if args.workers > 1:
        from authsvc.service.workers import Supervisor  # noqa: PLC0415

        return Supervisor(config, args.workers).run()
    # aiohttp is imported only where it is needed: token commands start faster.
    from authsvc.web.server import run_server  # noqa: PLC0415

    run_server(config)
    return 0


async def _migrate(store: TokenStore) -> int:
    """Opening a store applies its pending migrations (under a lock on PostgreSQL)."""
    await store.open()
    await store.close()
    print(f"token store schema is at version {store.schema_version}: up to date")
    return 0


async def _token(config: Config, store: TokenStore, args: argparse.Namespace) -> int:
    runtime = await Runtime.open(config, store=store)
    try:
        service = runtime.service
        policy = config.policy
        now = runtime.clock()
        if args.action == "create":
            record, secret = await service.create(
                actor=CLI_ACTOR,
                client=None,
                name=args.name,
                # a snapshot of the catalog in force, reserved permissions included
                permissions=list(config.permissions) if args.all_permissions else args.permissions,
                expires_in=args.expires_in,
                ip_filter=args.ip_filter,
            )
            _print_secret(token_object(record, policy, now), secret, as_json=args.json)
        elif args.action == "update":
            record = await service.update_permissions(
                actor=CLI_ACTOR, client=None, token_id=args.id, permissions=args.permissions
            )
            _print_tokens([record], config, now, as_json=args.json, single=True)
        elif args.action == "rotate":
            record, secret = await service.rotate(actor=CLI_ACTOR, client=None, token_id=args.id)
            _print_secret(token_object(record, policy, now), secret, as_json=args.json)
        elif args.action == "show":
            record = await service.get(args.id)
            _print_tokens([record], config, now, as_json=args.json, single=True)
        elif args.action == "list":
            records = await runtime.store.all_tokens()
            if not records and not args.json:
                print("no tokens yet: make one with authsvc token create", file=sys.stderr)
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
        width = max(map(len, objects[0]))
        for key, value in objects[0].items():
            shown = (
                ", ".join(value) if isinstance(value, list) else ("-" if value is None else value)
            )
            print(f"{key:>{width}}: {shown}")
        return
    print(f"{'ID':<20} {'STATUS':<8} {'EXPIRES':<20} {'NAME':<30} PERMISSIONS")
    for token in objects:
        print(
            f"{token['id']:<20} {token['status']:<8} {token['expires_at'] or 'never':<20} "
            f"{token['name']:<30} {','.join(token['permissions'])}"
        )


async def _config_check(config: Config, store: TokenStore) -> int:
    if not await store.exists():
        # checking a file must not create the store as a side effect
        print(f"no token store at {store.name} yet: no tokens to check")
        return 0
    await store.open()
    try:
        records = await store.all_tokens()
    finally:
        await store.close()
    now = time.time()
    problems = [(record, why) for record in records if (why := refusals(record, config, now))]
    if not problems:
        print(f"all {len(records)} existing token(s) are accepted by this policy")
    for record, reasons in problems:
        print(f"refused: {record.id} ({record.name}): {'; '.join(reasons)}")
    return 0
