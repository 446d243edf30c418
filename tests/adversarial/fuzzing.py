"""Run the fuzz targets of fuzz_targets.py for a bounded time, each in its own process,
and count the inputs tried. Used by tests/adversarial/test_fuzz.py (a few seconds each)
and by ``scripts/fuzz`` for longer runs::

    scripts/fuzz --seconds 600                    # every target, 10 minutes each
    scripts/fuzz --seconds 60 request config      # some targets
    scripts/fuzz --postgres postgresql://postgres@127.0.0.1:5432/postgres

``--postgres`` also runs admin-bodies on PostgreSQL, in a database of its own that is
dropped afterwards. Crashing inputs and the grown corpus are kept in var/fuzz/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped, unused-ignore]  # asyncpg ships no type information
import yaml

from tests.factories import config_document

REPO = Path(__file__).resolve().parents[2]
TARGET_NAMES = ("request", "config", "admin-bodies")
_COUNT = re.compile(r"stat::number_of_executed_units: (\d+)|^#(\d+)\s", re.MULTILINE)

_SMALL_CONFIG = config_document(security_policy={"max_lifetime": "90d"})

SEEDS: dict[str, list[bytes]] = {
    "request": [
        b"/api/v1/items/42",
        b"/api/%761/items/%7e?x=%2F..",
        b"/a/%2e%2E/b",
        b"/%25%32%46",
        b"/caf%C3%A9/",
        b"/a;b/c#d\\e",
    ],
    # Small files: PyYAML is pure Python, and every byte costs libFuzzer time.
    "config": [
        yaml.safe_dump(_SMALL_CONFIG, sort_keys=False).encode(),
        yaml.safe_dump(_SMALL_CONFIG, default_flow_style=True).encode(),
        b"# a comment\npermissions: &p\n  A:\n    endpoints: ['* /{rest...}']\n"
        b"ip_filters: {o: 'allow ::/0  # why\n'}\ntrusted_proxies: []\nadmin_trusted_proxies: []\n"
        b"security_policy: {tokens_enabled: false, max_lifetime: null,\n"
        b"  enforce_ip_filter: o, allow_permission_updates: no, max_rate_limit: 5/s}\n"
        b"cache: {ttl: 1s}\n",
    ],
    "admin-bodies": [
        b"\x00" + json.dumps({"name": "n", "permissions": ["Reader"]}).encode(),
        b"\x00"
        + json.dumps(
            {
                "name": "m",
                "permissions": ["Reader", "Writer"],
                "expires_in": "30d",
                "ip_filter": "office",
            }
        ).encode(),
        b"\x00"
        + json.dumps(
            {"name": "x", "permissions": [], "expires_in": None, "ip_filter": None}
        ).encode(),
        b"\x01" + json.dumps({"permissions": ["Reader", "Writer"]}).encode(),
        b"\x01" + json.dumps({"permissions": ["ManageOrganizationTokens"]}).encode(),
    ],
}

_DICTIONARIES: dict[str, list[str]] = {
    "request": ["%", "%25", "%2e", "%2F", "%5C", "%00", "..", "/", "?", "#", ";", "\\", "~"],
    "config": [
        *("permissions:", "ip_filters:", "security_policy:", "trusted_proxies:", "cache:"),
        *("listen:", "store:", "endpoints:", "description:", "allow ", "deny ", "all", "null"),
        *("tokens_enabled:", "max_lifetime:", "enforce_ip_filter:", "allow_permission_updates:"),
        *("max_rate_limit:", "600/m", "5/s"),
        *("{id}", "{rest...}", "GET /", "* /", "- ", ": ", "&a ", "*a", "!!", "|", "[", "{", "~"),
    ],
    "admin-bodies": [
        *('"name"', '"permissions"', '"expires_in"', '"ip_filter"', "null", "true", "[]", "{}"),
        *('"Reader"', '"Writer"', '"ManageOrganizationTokens"', '"30d"', '"0m"', '"office"'),
        *('"\\u0000"', '"\\ud800"', "1e999", "-0", '"', ",", ":"),
    ],
}


@dataclass(frozen=True, slots=True)
class FuzzRun:
    """One target's run: how many inputs it tried, and libFuzzer's output."""

    target: str
    returncode: int
    inputs: int
    output: str

    @property
    def ok(self) -> bool:
        """True when the run ended by its time limit, with no crash."""
        return self.returncode == 0

    def tail(self, lines: int = 60) -> str:
        """The end of the output, where a crash's traceback and input are."""
        return "\n".join(self.output.splitlines()[-lines:])


def _dictionary(entries: list[str]) -> str:
    return "".join(f"{json.dumps(entry)}\n" for entry in entries)


def run_target(
    target: str, seconds: int, workdir: Path, *, store_url: str | None = None
) -> FuzzRun:
    """Fuzz ``target`` for ``seconds`` (plus start-up) in ``workdir``, seeded; the count of
    inputs tried is libFuzzer's own."""
    corpus = workdir / f"corpus-{target}"
    corpus.mkdir(parents=True, exist_ok=True)
    for index, seed in enumerate(SEEDS[target]):
        (corpus / f"seed-{index}").write_bytes(seed)
    dictionary = workdir / f"{target}.dict"
    dictionary.write_text(_dictionary(_DICTIONARIES[target]))
    scratch = workdir / f"work-{target}"
    scratch.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("AUTHSVC_CONFIG", "AUTHSVC_SECRET_KEY")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["AUTHSVC_FUZZ_WORKDIR"] = str(scratch)
    if store_url is not None:
        env["AUTHSVC_FUZZ_STORE"] = store_url
    command = [
        *(sys.executable, "-m", "tests.adversarial.fuzz_main", target),
        f"-max_total_time={seconds}",
        f"-artifact_prefix={workdir}/crash-{target}-",
        f"-dict={dictionary}",
        "-print_final_stats=1",
        "-timeout=20",  # seconds per input: a hang is a finding too
        "-rss_limit_mb=1024",
        str(corpus),
    ]
    done = subprocess.run(
        command,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=seconds + 120,
        check=False,
    )
    output = done.stdout + done.stderr
    counts = [int(a or b) for a, b in _COUNT.findall(output)]
    return FuzzRun(target, done.returncode, max(counts, default=0), output)


async def _database(server: str, name: str, *, create: bool) -> None:
    conn = await asyncpg.connect(server, timeout=10)
    try:
        if create:
            await conn.execute(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'")
        else:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    """``scripts/fuzz``: run targets for ``--seconds`` each; 1 if any crashed."""
    parser = argparse.ArgumentParser(
        prog="scripts/fuzz",
        description="Fuzz the request describer, the configuration loader and the admin API's"
        " bodies (atheris); print the inputs tried per target; exit 1 on a crash.",
    )
    parser.add_argument("--seconds", type=int, default=300, help="per target (default 300)")
    parser.add_argument("--postgres", metavar="SERVER_URL", help="also fuzz admin-bodies on it")
    parser.add_argument("targets", nargs="*", help=f"some of {', '.join(TARGET_NAMES)}")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.targets) - set(TARGET_NAMES))
    if unknown or args.seconds < 1:
        parser.error(f"unknown targets {unknown}" if unknown else "--seconds must be at least 1")
    targets = args.targets or list(TARGET_NAMES)
    runs: list[tuple[str, str, str | None]] = [(t, t, None) for t in targets]
    database = f"authsvc_fuzz_{secrets.token_hex(4)}"
    on_postgres = bool(args.postgres) and "admin-bodies" in targets
    if on_postgres:
        asyncio.run(_database(args.postgres, database, create=True))
        url = urlunsplit(urlsplit(args.postgres)._replace(path=f"/{database}"))
        runs.append(("admin-bodies", "admin-bodies-postgresql", url))
    failed = False
    try:
        for target, label, store_url in runs:
            place = REPO / "var" / "fuzz" / label
            shutil.rmtree(place / f"work-{target}", ignore_errors=True)
            result = run_target(target, args.seconds, place, store_url=store_url)
            print(f"{label}: inputs tried: {result.inputs}", flush=True)
            if not result.ok:
                failed = True
                print(f"{label}: FAILED (exit {result.returncode}), input kept in {place}:")
                print(result.tail(), flush=True)
    finally:
        if on_postgres:
            asyncio.run(_database(args.postgres, database, create=False))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
