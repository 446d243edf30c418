"""One soak run: a real ``authsvc serve`` on a given store, a fixed-rate stream of /auth
requests at 127.0.0.1 (bounded in count and time), token changes and reloads beside it,
optionally a store outage (PostgreSQL through a TCP proxy), and the server's memory
sampled after a warm-up and at the end.

Memory bound: 25 MB by default. The cache holds at most CACHE_ENTRIES records (well under
1 KiB each), the catalog and filters are a few KiB per configuration, and the soak's token
pool stays under 30, so a full cache and every live structure together are far below a
megabyte: growth past the bound means something keeps per-request or per-reload state.
The bound is loose so that allocator noise (arenas that are never given back, aiohttp's
buffers under bursts) does not fail a healthy run. What it catches grows with the run:
the test suite's 12 s slice (1350 requests after warm-up) only a gross leak, about 20 KB
per request; ``scripts/soak --seconds 300 --rate 300`` (81,000) one of about 300 bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from multidict import CIMultiDict

from authsvc.rules.tokens import TokenRecord, digest, new_secret, new_token_id
from authsvc.service.secret_key import load_secret_key
from authsvc.store import open_store
from tests.pg import TcpProxy, with_address
from tests.processes import AuthsvcServer, free_port
from tests.soak.admin import AdminApi
from tests.soak.changes import Changer
from tests.soak.oracle import Answer, Timeline, TokenState, judge
from tests.soak.reloads import Pace, Reloader
from tests.soak.report import SoakReport
from tests.soak.workload import Probe, generator, probe

REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=10)  # an answer later than this is "no answer"


@dataclass(frozen=True)
class SoakOptions:
    """How long, how fast, and what else happens during one soak."""

    seconds: float = 12.0
    rate: float = 150.0  # requests per second, sent on a fixed schedule
    warmup: float = 3.0  # seconds of load before the first memory sample
    rss_bound_mb: float = 25.0
    in_flight: int = 32  # requests outstanding at most; past it the schedule slips
    seed: int = 0
    # A store outage mid-run (PostgreSQL, through a TCP proxy): "cut" (a dead server:
    # connections drop, new ones are refused) or "freeze" (a silent network), or None.
    outage: str | None = None
    outage_seconds: float = 2.0
    recovery: float = 2.0  # after the store returns, 503 is accepted this long still
    pace: Pace = field(default_factory=Pace)


def vm_rss_kb(pid: int) -> int | None:
    """The process's resident set size (VmRSS) in kB; None once it has exited."""
    with contextlib.suppress(FileNotFoundError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


async def seed_tokens(store_url: str, key_file: Path) -> list[TokenState]:
    """Put tokens the API cannot make into the store before the service starts: created
    in the past, so that a short run still sees tokens expire (by ``expires_at``, and by a
    ``max_lifetime`` of one minute), and one holding a filter a reload takes away."""
    key = load_secret_key(key_file, environ={})
    now = math.floor(time.time())
    made = [
        ("soak-seeded-expiring", {"Reader", "Files"}, None, now - 50, now + 9),
        ("soak-seeded-old", {"Reader", "Writer", "Misc"}, None, now - 55, None),
        ("soak-seeded-lab", {"Reader", "Extra"}, "lab", now - 10, None),
    ]
    store = open_store(store_url)
    await store.open()
    states = []
    try:
        for name, permissions, ip_filter, created_at, expires_at in made:
            record = TokenRecord(
                new_token_id(),
                name,
                frozenset(permissions),
                ip_filter,
                created_at,
                expires_at,
                "cli",
            )
            secret = new_secret()
            await store.insert(record, digest(key, secret))
            states.append(TokenState(record, secret))
    finally:
        await store.close()
    return states


async def _send(
    session: aiohttp.ClientSession, url: str, sent: Probe, answers: list[Answer]
) -> None:
    headers: CIMultiDict[str] = CIMultiDict()
    for value in sent.authorization:
        headers.add("Authorization", value)
    for name, given in (
        ("X-Original-Method", sent.method),
        ("X-Original-URI", sent.uri),
        ("X-Real-IP", sent.real_ip),
    ):
        if given is not None:
            headers[name] = given
    start = time.time()
    method = "HEAD" if sent.head else "GET"
    try:
        async with session.request(method, url, headers=headers, timeout=REQUEST_TIMEOUT) as got:
            await got.read()
            status, reason = got.status, got.headers.get("X-Auth-Reason", "")
            token_id = got.headers.get("X-Auth-Token-Id", "")
    except (aiohttp.ClientError, TimeoutError) as error:
        status, reason, token_id = 0, repr(error), ""
    answers.append(Answer(sent, start, time.time(), status, reason, token_id))


async def load(
    session: aiohttp.ClientSession, port: int, changer: Changer, options: SoakOptions
) -> tuple[list[Answer], int]:
    """``seconds * rate`` requests on a fixed schedule (never more; stops at twice the
    duration whatever happens); (answers, requests sent over 100 ms late)."""
    rng = generator(options.seed + 1)
    answers: list[Answer] = []
    slots = asyncio.Semaphore(options.in_flight)
    tasks: set[asyncio.Task[None]] = set()
    url = f"http://127.0.0.1:{port}/auth"
    started, late = time.monotonic(), 0
    for index in range(int(options.seconds * options.rate)):
        delay = started + index / options.rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        late += delay < -0.1
        await slots.acquire()
        if time.monotonic() > started + 2 * options.seconds:
            slots.release()
            break
        live = list(changer.live.values())
        records, secrets = [s.record for s in live], [s.secret for s in live]
        sent = probe(rng, records, secrets, changer.retired)
        task = asyncio.create_task(_send(session, url, sent, answers))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        task.add_done_callback(lambda _: slots.release())
    await asyncio.gather(*tasks)
    return answers, late


async def _outage(
    proxy: TcpProxy, changer: Changer, timeline: Timeline, options: SoakOptions
) -> str:
    """Take the store away 40% into the run, bring it back, allow the recovery time."""
    await asyncio.sleep(options.seconds * 0.4)
    await changer.pause()
    cut = time.time()
    if options.outage == "freeze":
        proxy.freeze()
        await asyncio.sleep(options.outage_seconds)
        proxy.thaw()
    else:
        await proxy.cut()
        await asyncio.sleep(options.outage_seconds)
        await proxy.start()
    back = time.time()
    timeline.outage(cut, back + options.recovery)
    await asyncio.sleep(options.recovery)
    changer.resume()
    return f"{options.outage} for {back - cut:.1f} s, then {options.recovery:g} s to recover"


async def _memory(pid: int, options: SoakOptions, report: SoakReport) -> None:
    """VmRSS after the warm-up, then the peak, once a second (until cancelled)."""
    await asyncio.sleep(options.warmup)
    report.rss_warm_kb = report.rss_peak_kb = vm_rss_kb(pid) or 0
    while True:
        await asyncio.sleep(1.0)
        report.rss_peak_kb = max(report.rss_peak_kb, vm_rss_kb(pid) or 0)


#: Metrics shown in the report: what the service says it did with the lookups.
SHOWN_METRICS = (
    "authsvc_store_lookups_total",
    "authsvc_unknown_lookups_skipped_total",
    "authsvc_cache_drops_total",
)


async def _metrics(session: aiohttp.ClientSession, port: int) -> list[str]:
    """The SHOWN_METRICS lines of the service's /metrics (none if it cannot be read)."""
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        async with session.get(url, timeout=REQUEST_TIMEOUT) as response:
            text = await response.text()
    except (aiohttp.ClientError, TimeoutError):
        return []
    return [line for line in text.splitlines() if line.startswith(SHOWN_METRICS)]


@contextlib.asynccontextmanager
async def serving(
    workdir: Path, store_url: str, options: SoakOptions
) -> AsyncIterator[tuple[AuthsvcServer, str, TcpProxy | None]]:
    """The service on ``store_url`` (through a proxy when an outage is planned); yields
    (server, the store URL it uses, the proxy)."""
    proxy = None
    if options.outage is not None:
        proxy = TcpProxy.to(store_url)
        store_url = with_address(store_url, "127.0.0.1", await proxy.start())
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    config = workdir / "authsvc.yaml"
    server = AuthsvcServer(
        config, workdir, auth_port=free_port(), admin_port=free_port(), serve_args=()
    )
    try:
        yield server, store_url, proxy
    finally:
        await asyncio.to_thread(server.stop)
        if proxy is not None:
            await proxy.cut()


async def soak(workdir: Path, store_url: str, options: SoakOptions) -> SoakReport:
    """Run one soak and judge every answer; the report says what failed, if anything."""
    if not 0 < options.warmup < options.seconds:
        raise ValueError("the warm-up must end before the load does")
    report = SoakReport(store_url.partition(":")[0], options.seconds, options.rate, options.seed)
    report.rss_bound_mb = options.rss_bound_mb
    timeline = Timeline()
    background: list[asyncio.Task[object]] = []
    async with (
        serving(workdir, store_url, options) as (server, url, proxy),
        aiohttp.ClientSession() as session,
    ):
        api = AdminApi(session, server.admin_port)
        rng = generator(options.seed)
        reloader = Reloader(server, api, timeline, rng, url, options.pace.cli_settle)
        changer = Changer(server, api, timeline, rng, reloader, options.pace)
        reloader.written(reloader.write(), time.time())
        for state in await seed_tokens(url, workdir / "authsvc.key"):
            changer.seeded(state, time.time())
        await asyncio.to_thread(server.start)
        await changer.mint_admin()
        changer.resume()
        try:
            background.append(asyncio.create_task(_memory(server.pid, options, report)))
            changing = asyncio.create_task(changer.run(time.time() + options.seconds))
            background.append(changing)
            if proxy is not None:
                cutting = asyncio.create_task(_outage(proxy, changer, timeline, options))
                background.append(cutting)
            answers, report.late = await load(session, server.auth_port, changer, options)
            report.rss_end_kb = vm_rss_kb(server.pid) or 0
            await changing
            report.outage = await cutting if proxy is not None else "none"
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
        report.metrics = await _metrics(session, server.admin_port)
        log = server.log()
    report.sent = len(answers)
    for answer in answers:
        report.add(answer, judge(answer, timeline), timeline)
    report.changes, report.refused = changer.made, changer.refused
    report.refusal_samples, report.change_failures = changer.samples, changer.failures
    report.reloads, report.reloads_unconfirmed = reloader.reloads, reloader.unconfirmed
    report.reloads_logged = log.count("configuration reloaded (")
    report.log_problems = [line for line in log.splitlines() if "reload failed" in line][:5]
    if not report.rss_end_kb:
        report.log_problems.append(f"the service exited during the soak:\n{log[-3000:]}")
    return report
