"""``authsvc token usage ID [--days 7] [--json]`` (docs/cli.md): a token's requests per
hour over the last days, read from the store like the other ``token`` commands. Running
instances write their counts every 5 seconds: the last seconds may be missing."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from authsvc.config import Config
from authsvc.service.runtime import Runtime
from authsvc.service.usage import KEEP_SECONDS
from authsvc.store import USAGE_DENIALS, TokenStore

DEFAULT_DAYS = 7
MAX_DAYS = KEEP_SECONDS // 86400


def add_usage_parser(actions: Any) -> None:
    """The ``usage`` action on ``actions``, the ``token`` command's sub-parsers."""
    parser = actions.add_parser(
        "usage", help="show a token's requests per hour: allowed, denied by reason"
    )
    parser.add_argument("id", metavar="ID", help="the token's id (tok_...)")
    parser.add_argument(
        "--days",
        type=_days,
        default=DEFAULT_DAYS,
        metavar="N",
        help=f"how many days back from now, 1 to {MAX_DAYS} (default {DEFAULT_DAYS})",
    )
    parser.add_argument("--json", action="store_true", help='print {"hours": [...]}')


def _days(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_DAYS:
        raise argparse.ArgumentTypeError(
            f"{text[:20]!r} is not a whole number from 1 to {MAX_DAYS}"
        )
    return int(text)


async def run_usage(config: Config, store: TokenStore, args: argparse.Namespace) -> int:
    """Print the table (or JSON); 0 once printed. An unknown id raises Refused (not_found)."""
    runtime = await Runtime.open(config, store=store)
    try:
        now = runtime.clock()
        hours = await runtime.service.usage(args.id, now - args.days * 86400, now)
    finally:
        await runtime.close()
    if args.json:
        print(json.dumps({"hours": hours}, indent=2))
    elif not hours:
        print(f"no requests of {args.id} in the last {args.days} day(s)", file=sys.stderr)
    else:
        print(render(hours))
    return 0


def render(hours: list[dict[str, Any]]) -> str:
    """HOUR, ALLOWED, DENIED (their total), a column per denial reason that occurred, and a
    TOTAL line; numbers aligned right."""
    reasons = [
        reason for reason in USAGE_DENIALS if any(reason in hour["denied"] for hour in hours)
    ]
    rows = [
        [
            hour["hour"],
            hour["allowed"],
            sum(hour["denied"].values()),
            *(hour["denied"].get(reason, 0) for reason in reasons),
        ]
        for hour in hours
    ]
    totals = ["TOTAL", *(sum(row[column] for row in rows) for column in range(1, len(rows[0])))]
    header = ["HOUR", "ALLOWED", "DENIED", *(reason.upper() for reason in reasons)]
    table = [header, *rows, totals]
    widths = [max(len(str(row[column])) for row in table) for column in range(len(header))]
    lines = []
    for row in table:
        cells = [f"{row[0]!s:<{widths[0]}}"]
        cells += [f"{row[column]!s:>{widths[column]}}" for column in range(1, len(row))]
        lines.append("  ".join(cells))
    return "\n".join(lines)
