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
from authsvc.cli_backup import COMMANDS as BACKUP_COMMANDS
from authsvc.cli_backup import run_backup_command
from authsvc.cli_explain import run_explain
from authsvc.cli_usage import run_usage
from authsvc.config import Config, ConfigError
from authsvc.config.check import lowered_limit, refusals
from authsvc.config.load import load_config
from authsvc.rules.policy import Refused
from authsvc.rules.tokens import TokenRecord, is_token_id, redact_secrets
from authsvc.service.key_check import KeyRefused, bind_key, check_key, open_checked
from authsvc.service.runtime import Runtime
from authsvc.service.secret_key import SecretKeyError
from authsvc.service.token_service import CLI_ACTOR
from authsvc.service.token_view import token_object
from authsvc.store import (
    KEEP,
    ListQuery,
    RestoreUnfinished,
    StatusBasis,
    StoreError,
    TokenStore,
    open_store,
)

EXIT_FAILURE = 1
EXIT_CONFIG = 2
LOG_LEVEL_ENV = "AUTHSVC_LOG_LEVEL"
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_ALL = 2**62  # a LIMIT that stands for "no limit" in both stores' SQL
_MAX_STDIN = 4096  # a secret is 57 characters; more is not one secret
_EMPTY_HINTS = {
    False: "no tokens yet: make one with authsvc token create",
    True: "no token matches --status / --expiring",
}


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
    except (SecretKeyError, KeyRefused, RestoreUnfinished) as error:
        return _key_failure(error, serving=args.command == "serve")
    except StoreError as error:
        return fail(
            f"the token store is unavailable ({error}); check the store setting in {config.path}"
        )
    except OSError as error:  # e.g. a listen address in use
        return fail(_os_error_message(error, config))
    except KeyboardInterrupt:
        return 130


def _key_failure(error: SecretKeyError | KeyRefused | RestoreUnfinished, *, serving: bool) -> int:
    """An unreadable key: 1. A key that is not the store's (or missing for a store with
    tokens), or a store a restore has not finished: 2, which no restart can cure (the
    systemd unit's RestartPreventExitStatus=2), logged at ERROR by ``serve``."""
    if isinstance(error, SecretKeyError):
        return fail(str(error))
    if serving:
        logging.getLogger("authsvc.key_check").error("refusing to serve: %s", error)
        return EXIT_CONFIG
    return fail(str(error), EXIT_CONFIG)


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


def _run(args: argparse.Namespace, config: Config, store: TokenStore) -> int:  # noqa: PLR0911 - one return per command
    if args.command == "serve":
        return _serve(args, config)
    if args.command == "migrate":
        return asyncio.run(_migrate(config, store))
    if args.command in BACKUP_COMMANDS:
        return run_backup_command(args, config)
    if args.command == "config":
        print(f"{config.path}: configuration is valid")
        return asyncio.run(_config_check(config, store))
    token_id = getattr(args, "id", None)
    if token_id is not None and not is_token_id(token_id):
        return fail(
            # a secret pasted where the id belongs is not repeated
            f"{redact_secrets(token_id[:40])!r} is not a token id: ids look like tok_ and "
            "16 hex digits "
            "(see: authsvc token list)"
        )
    if args.command == "explain":
        return asyncio.run(run_explain(config, store, args))
    if args.action == "usage":
        work = run_usage(config, store, args)
    elif args.action == "revoke":
        work = _revoke(config, store, as_json=args.json)
    else:
        work = _token(config, store, args)
    return asyncio.run(work)


def _serve(args: argparse.Namespace, config: Config) -> int:
    if args.workers > 1:
        from authsvc.service.workers import Supervisor  # noqa: PLC0415

        # refused here once, rather than by each worker in turn (KeyRefused: exit 2)
        asyncio.run(_bind_key(config))

        return Supervisor(config, args.workers).run()
    # aiohttp is imported only where it is needed: token commands start faster.
    from authsvc.web.server import run_server  # noqa: PLC0415

    run_server(config)
    return 0


async def _bind_key(config: Config) -> None:
    """Check the key against the store (creating it for a store without tokens)."""
    store = open_store(config.store)
    await open_checked(store, config.secret_key_file)
    try:
        await bind_key(store, config.secret_key_file)
    finally:
        await store.close()


async def _migrate(config: Config, store: TokenStore) -> int:
    """Opening a store applies its pending migrations (under a lock on PostgreSQL)."""
    await open_checked(store, config.secret_key_file)
    try:
        await check_key(store, config.secret_key_file)  # records the key check (schema 3)
    finally:
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
                rate_limit=args.rate_limit,
            )
            _print_secret(token_object(record, policy, now), secret, as_json=args.json)
        elif args.action == "update":
            if args.permissions is None and args.rate_limit is None:
                return fail("give --permission, --rate-limit or both", EXIT_CONFIG)
            record = await service.update(
                actor=CLI_ACTOR,
                client=None,
                token_id=args.id,
                permissions=args.permissions,
                rate_limit=_rate_limit_option(args.rate_limit),
            )
            _print_tokens([record], config, now, as_json=args.json, single=True)
        elif args.action == "rotate":
            record, secret = await service.rotate(
                actor=CLI_ACTOR, client=None, token_id=args.id, grace=args.grace
            )
            _print_secret(token_object(record, policy, now), secret, as_json=args.json)
        elif args.action == "show":
            record = await service.get(args.id)
            _print_tokens([record], config, now, as_json=args.json, single=True)
        elif args.action == "list":
            records = await _listed(runtime.store, args, StatusBasis.of(policy, now))
            if not records and not args.json:
                filtered = args.status is not None or args.expiring is not None
                print(_EMPTY_HINTS[filtered], file=sys.stderr)
            _print_tokens(records, config, now, as_json=args.json, single=False)
        else:
            await service.delete(actor=CLI_ACTOR, client=None, token_id=args.id)
            print(f"deleted {args.id}", file=sys.stderr)
        return 0
    finally:
        await runtime.close()


def _rate_limit_option(text: str | None) -> object:
    """``--rate-limit`` of ``token update``: absent keeps the limit, ``none`` removes it."""
    if text is None:
        return KEEP
    return None if text.strip().lower() == "none" else text


async def _listed(
    store: TokenStore, args: argparse.Namespace, basis: StatusBasis
) -> list[TokenRecord]:
    """Every token by name; with ``--status`` / ``--expiring`` only those matching, as the
    store filters them (the admin API's ``status`` and ``expires_within``)."""
    if args.status is None and args.expiring is None:
        return await store.all_tokens()
    # one query, so the listing is one snapshot: every match exactly once
    query = ListQuery(status=args.status, expires_within=args.expiring, basis=basis, limit=_ALL)
    return (await store.list_tokens(query))[1]


async def _revoke(config: Config, store: TokenStore, *, as_json: bool) -> int:
    """``token revoke``: the secret comes on stdin, never on the command line (where other
    users of the host could read it, and the shell history would keep it)."""
    secret = sys.stdin.read(_MAX_STDIN).strip()
    if not secret:
        return fail('no secret on stdin: echo "$SECRET" | authsvc token revoke')
    runtime = await Runtime.open(config, store=store)
    try:
        token_id, revoked = await runtime.service.revoke_leaked(
            actor=CLI_ACTOR, client=None, secret=secret
        )
    finally:
        await runtime.close()
    if as_json:
        print(json.dumps({"id": token_id, "revoked": revoked}))
    elif revoked == "token":
        print(f"revoked {token_id}: the token is deleted", file=sys.stderr)
    else:
        print(
            f"revoked the previous secret of {token_id}: its grace has ended, the current "
            "secret keeps working",
            file=sys.stderr,
        )
    return 0


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
            f"{token['id']:<20} {token['status']:<8} "
            f"{token['effective_expires_at'] or 'never':<20} "
            f"{token['name']:<30} {','.join(token['permissions'])}"
        )


async def _config_check(config: Config, store: TokenStore) -> int:
    if not await store.exists():
        # checking a file must not create the store as a side effect
        print(f"no token store at {store.name} yet: no tokens to check")
        return 0
    await open_checked(store, config.secret_key_file)
    try:
        await check_key(store, config.secret_key_file)
        records = await store.all_tokens()
    finally:
        await store.close()
    now = time.time()
    problems = [(record, why) for record in records if (why := refusals(record, config, now))]
    if not problems:
        print(f"all {len(records)} existing token(s) are accepted by this policy")
    for record, reasons in problems:
        print(f"refused: {record.id} ({record.name}): {'; '.join(reasons)}")
    for record in records:
        if (lowered := lowered_limit(record, config)) is not None:
            print(f"limited: {record.id} ({record.name}): {lowered}")
    return 0
