"""``authsvc explain ID METHOD URI [--ip ADDR] [--json]`` (docs/cli.md): what ``/auth``
would answer now for a token, a request and a client address, and why, read directly from
the store and the configuration file like the ``token`` commands. Explaining counts
nothing (no usage, no lookup budget, no metrics)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from authsvc.config import Config
from authsvc.rules.explain import Explanation, TokenFound, explain
from authsvc.rules.ipfilter import IPAddress, parse_client_ip
from authsvc.service.runtime import Runtime
from authsvc.store import TokenStore


def add_explain_parser(commands: Any) -> None:
    """The ``explain`` command on ``commands``, the parser's sub-parsers."""
    parser = commands.add_parser(
        "explain", help="show what /auth would answer for a token and a request, and why"
    )
    parser.add_argument("id", metavar="ID", help="the token's id (tok_...)")
    parser.add_argument("method", metavar="METHOD", help="the request's method, e.g. GET")
    parser.add_argument(
        "uri", metavar="URI", help="the raw request target, query included, e.g. /api/v1/x?a=1"
    )
    parser.add_argument(
        "--ip",
        type=_address,
        metavar="ADDR",
        help="the client address (default: none, which fails any IP filter)",
    )
    parser.add_argument("--json", action="store_true", help="print the JSON object")


def _address(text: str) -> IPAddress:
    try:
        return parse_client_ip(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:60]!r} is not an IPv4 or IPv6 address") from None


async def run_explain(config: Config, store: TokenStore, args: argparse.Namespace) -> int:
    """Print the explanation; 0 once printed. An unknown id raises Refused (not_found)."""
    runtime = await Runtime.open(config, store=store)
    try:
        record = await runtime.service.get(args.id)
        explanation = explain(
            TokenFound(record, "found by its id"),
            method=args.method,
            uri=args.uri,
            client_ip=args.ip,
            config=runtime.live.current,
            now=runtime.clock(),
        )
    finally:
        await runtime.close()
    if args.json:
        print(json.dumps(explanation.as_json(), ensure_ascii=False, indent=2))
    else:
        print(render(explanation))
    return 0


def render(explanation: Explanation) -> str:
    """The readable table: the answer, one line per check, what matched."""
    width = max(len(check.check) for check in explanation.checks)
    lines = [f"/auth would answer {explanation.status} {explanation.reason.value}", ""]
    lines.append(f"{'CHECK':<{width}}  RESULT  DETAIL")
    for check in explanation.checks:
        result = "pass" if check.passed else "FAIL"
        lines.append(f"{check.check:<{width}}  {result:<6}  {check.detail}")
    lines.append("")
    lines.append(f"matched endpoint: {explanation.matched_endpoint or '-'}")
    lines.append(f"deciding IP rule: {explanation.ip_rule or '-'}")
    return "\n".join(lines)
