"""``scripts/soak``: the soak for as long and as fast as asked, on one store; prints the
counts and exits 1 when anything failed (0 when all passed, 2 on bad arguments).

PostgreSQL: a database of its own on ``$AUTHSVC_TEST_PG`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``), dropped afterwards; ``--outage``
takes it away from the service for 2 s, 40% into the run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tests.pg import DEFAULT_SERVER, PG_ENV, connect, with_database
from tests.soak.harness import SoakOptions, soak


def _positive(text: str) -> float:
    value = float(text)
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/soak",
        description="A real authsvc under fixed-rate /auth load while tokens change and the"
        " configuration reloads; every settled answer is checked against the rules.",
    )
    parser.add_argument("--seconds", type=_positive, default=300.0, help="how long (300)")
    parser.add_argument("--rate", type=_positive, default=300.0, help="requests/s (300)")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--outage",
        choices=("cut", "freeze"),
        help="PostgreSQL: 40%% into the run, cut the store off (a dead server) or freeze it"
        " (a silent network) for 2 s",
    )
    parser.add_argument("--rss-bound-mb", type=_positive, default=25.0)
    parser.add_argument("--seed", type=int, default=None, help="reproduce a run's choices")
    args = parser.parse_args(argv)
    if args.outage is not None and args.store != "postgresql":
        parser.error("--outage needs --store postgresql")
    return args


async def _run(args: argparse.Namespace, workdir: Path) -> int:
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    options = SoakOptions(
        seconds=args.seconds,
        rate=args.rate,
        warmup=min(30.0, args.seconds / 4),
        rss_bound_mb=args.rss_bound_mb,
        in_flight=max(32, int(args.rate) // 5),
        seed=seed,
        outage=args.outage,
    )
    server = os.environ.get(PG_ENV, DEFAULT_SERVER)
    name = f"authsvc_soak_{secrets.token_hex(6)}"
    if args.store == "sqlite":
        report = await soak(workdir, f"sqlite:///{workdir / 'authsvc.db'}", options)
    else:
        admin = await connect(server)
        try:
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
            report = await soak(workdir, with_database(server, name), options)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
    print(report.text())
    failures = report.failures()
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, run the soak in a temporary folder, report."""
    args = parse(argv)
    with tempfile.TemporaryDirectory(prefix="authsvc-soak-") as folder:
        return asyncio.run(_run(args, Path(folder)))


if __name__ == "__main__":
    sys.exit(main())
