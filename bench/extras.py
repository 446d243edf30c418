"""The measurements besides the paths: RSS with cached records, start-up with many tokens,
and the machine's description."""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import aiohttp

from bench.config import KEY, write_config
from bench.data import bulk_tokens
from bench.procs import Procs, rss_mb

CATALOG_PATH = "/api/v1/queries/running"  # MonitorQueries grants it


async def _fire(port: int, secrets: list[str], concurrency: int = 32) -> list[float]:
    """One /auth request per secret, straight to authsvc; latencies in ms."""
    latencies: list[float] = []
    queue = list(secrets)
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            while queue:
                secret = queue.pop()
                started = time.perf_counter()
                async with session.get(
                    f"http://127.0.0.1:{port}/auth",
                    headers={
                        "Authorization": f"Bearer {secret}",
                        "X-Original-Method": "GET",
                        "X-Original-URI": CATALOG_PATH,
                        "X-Real-IP": "127.0.0.1",
                    },
                ) as response:
                    await response.read()
                    assert response.status == 200, response.status
                latencies.append((time.perf_counter() - started) * 1e3)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def rss_with_cached(work: Path, procs: Procs, count: int) -> dict[str, float]:
    ports = procs.ports("auth-rss", "admin-rss")
    config = write_config(
        work,
        "rss.yaml",
        ports["auth-rss"],
        ports["admin-rss"],
        work / "authsvc.db",
        max_entries=count * 2,
    )
    pid = procs.authsvc(config, ports["admin-rss"], name="authsvc-rss")
    before = rss_mb(pid)
    secrets = (work / "tokens.txt").read_text().split()[:count]
    asyncio.run(_fire(ports["auth-rss"], secrets, concurrency=64))
    after = rss_mb(pid)
    procs.stop("authsvc-rss")
    return {"cached": float(len(secrets)), "rss_before_mb": before, "rss_after_mb": after}


def startup_big(work: Path, procs: Procs, count: int, ports: dict[str, int]) -> dict[str, float]:
    key = KEY.encode()  # AUTHSVC_SECRET_KEY is used as UTF-8 bytes
    db = work / "big.db"
    bulk_tokens(db, key, count, "MonitorQueries", work / "big.txt")
    config = write_config(
        work, "big.yaml", ports["auth-big"], ports["admin-big"], db, max_entries=10_000
    )
    started = time.perf_counter()
    procs.authsvc(config, ports["admin-big"], name="authsvc-big")
    startup = time.perf_counter() - started
    sample = (work / "big.txt").read_text().split()[:2000]
    big = asyncio.run(_fire(ports["auth-big"], sample, concurrency=1))
    small_sample = (work / "tokens.txt").read_text().split()[-2000:]
    small = asyncio.run(_fire(ports["auth"], small_sample, concurrency=1))
    procs.stop("authsvc-big")
    return {
        "tokens": float(count),
        "startup_s": startup,
        "miss_p50_ms_big": statistics.median(big),
        "miss_p50_ms_small": statistics.median(small),
        "miss_p99_ms_big": statistics.quantiles(big, n=100)[98],
        "miss_p99_ms_small": statistics.quantiles(small, n=100)[98],
    }


def machine() -> dict[str, str]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    version = subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=False)
    nginx = version.stderr.strip()
    return {
        "cores": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "nginx": nginx.removeprefix("nginx version: "),
        "kernel": platform.release(),
    }
