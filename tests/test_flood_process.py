"""A real flood of unknown well-formed tokens against a real ``authsvc serve`` on each
store (SECURITY 27): no 503 for anyone, real tokens (cached and not) keep working, and
the store sees at most the configured number of unknown lookups per second."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from authsvc.rules.tokens import new_secret
from tests.processes import AuthsvcServer, start_authsvc
from tests.waiting import within
from tests.webapp import READ_ITEMS

PER_SECOND = 10
NOT_FOUND = 'authsvc_store_lookups_total{result="not_found"}'
FLOOD_SECONDS = 3.0
CONCURRENCY = 48


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
    return 0.0 if match is None else float(match.group(1))


async def ask(session: aiohttp.ClientSession, port: int, secret: str) -> int:
    return (await answer(session, port, secret))[0]


async def answer(session: aiohttp.ClientSession, port: int, secret: str) -> tuple[int, str]:
    """The status and X-Auth-Reason of ``secret``'s answer."""
    headers = {"Authorization": f"Bearer {secret}", **READ_ITEMS}
    async with session.get(f"http://127.0.0.1:{port}/auth", headers=headers) as response:
        return response.status, response.headers.get("X-Auth-Reason", "")


async def flood(
    server: AuthsvcServer, real: list[str]
) -> tuple[Counter[int], Counter[tuple[int, str]]]:
    """Unknown tokens from CONCURRENCY workers for FLOOD_SECONDS, each worker also asking
    for a real token every tenth request; (unknown statuses, real (status, reason, which))."""
    unknown: Counter[int] = Counter()
    known: Counter[tuple[int, str]] = Counter()
    deadline = time.monotonic() + FLOOD_SECONDS
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(index: int) -> None:
            sent = 0
            while time.monotonic() < deadline:
                sent += 1
                if sent % 10 == 0:
                    which = index % len(real)
                    status, reason = await answer(session, server.auth_port, real[which])
                    known[status, f"{reason} (real token {which})" if status != 200 else ""] += 1
                else:
                    unknown[await ask(session, server.auth_port, new_secret())] += 1

        await asyncio.gather(*(worker(i) for i in range(CONCURRENCY)))
    return unknown, known


async def scrape(server: AuthsvcServer) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{server.admin_port}/metrics") as response,
    ):
        return await response.text()


@pytest.fixture
def server(store_url: str, tmp_path: Path) -> Iterator[AuthsvcServer]:
    started = start_authsvc(
        tmp_path / "flooded",
        store=store_url,
        cache={"ttl": "30s", "max_entries": 1000, "unknown_lookups_per_second": PER_SECOND},
    )
    yield started
    started.stop()


class TestRealFlood:
    async def test_flood_is_bounded_and_real_tokens_work(self, server: AuthsvcServer) -> None:
        """Thousands of unknown tokens in a few seconds: every unknown one 401, never 503;
        the store's unknown lookups within the budget; real tokens, cached or not, 200."""
        cached = [server.create_token("Reader").secret for _ in range(3)]
        uncached = [server.create_token("Reader").secret for _ in range(3)]
        async with aiohttp.ClientSession() as session:
            assert [await ask(session, server.auth_port, s) for s in cached] == [200] * 3

        async def all_known() -> bool:
            return metric(await scrape(server), "authsvc_known_tokens") >= 6

        await within(2.0, all_known, "the change feed to report the new tokens")
        before = metric(await scrape(server), NOT_FOUND)
        started = time.monotonic()
        unknown, known = await flood(server, cached + uncached)
        elapsed = time.monotonic() - started
        text = await scrape(server)
        assert set(unknown) == {401}, unknown
        counts = [line for line in text.splitlines() if "lookup" in line or "known" in line]
        assert {status for status, _ in known} == {200}, (known, counts, server.log()[-2000:])
        # a full bucket (one second's worth) plus the refill while the flood lasted
        allowed = PER_SECOND * (1 + elapsed)
        assert sum(unknown.values()) > 4 * allowed  # a flood indeed: far more than allowed
        assert metric(text, NOT_FOUND) - before <= allowed
        assert metric(text, "authsvc_unknown_lookups_skipped_total") > 0
        assert metric(text, 'authsvc_decisions_total{reason="store_unavailable"}') == 0
