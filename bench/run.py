"""authsvc benchmark: every path side by side, interleaved over several rounds, medians.

Usage: scripts/bench [--rounds N] [--duration SECONDS] [--output docs/performance.md]

Everything runs on loopback: one nginx (worker_processes 1) with one server block per
path, authsvc with the shipped catalog, the `floor` handler, and wrk (1 thread). The
machine's 2 cores are shared by all of them, as they would be on a small real host.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import yaml

from authsvc.rules.tokens import digest
from bench import micro
from bench.data import bulk_tokens, fast_secret
from bench.procs import Procs, rss_mb, wait_http
from bench.report import write_report
from bench.wrk import Result, run_wrk

REPO = Path(__file__).resolve().parents[1]
KEY = "b" * 64
CATALOG_PATH = "/api/v1/queries/running"  # MonitorQueries grants it
DENIED_PATH = "/api/v1/users"  # ManageUsers does; the bench token lacks it
PATHS = (
    "plain",
    "nginxauth",
    "floor",
    "svc-hit",
    "svc-deny",
    "svc-junk",
    "svc-miss",
    "svc-microcache",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=100_000)
    parser.add_argument("--big", type=int, default=1_000_000, help="tokens for the start-up test")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "performance.md")
    args = parser.parse_args()
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            sys.exit(f"bench: {tool} is not installed (apt-get install nginx wrk)")
    work = Path(tempfile.mkdtemp(prefix="authsvc-bench-"))
    print(f"bench: working in {work}", flush=True)
    with Procs(work) as procs:
        results = run(args, work, procs)
    write_report(args, results)
    print(f"bench: wrote {args.output}")


def run(args: argparse.Namespace, work: Path, procs: Procs) -> dict[str, object]:
    key = KEY.encode()  # AUTHSVC_SECRET_KEY is used as UTF-8 bytes
    hot = fast_secret()
    print(f"bench: {args.tokens} tokens into SQLite", flush=True)
    bulk_tokens(work / "authsvc.db", key, args.tokens, "MonitorQueries", work / "tokens.txt")
    _insert_one(work / "authsvc.db", key, hot)
    (work / "hot.txt").write_text(hot + "\n")
    ports = procs.ports(*PATHS, "auth", "admin", "floor-app", "auth-big", "admin-big")
    config = _write_config(
        work,
        "authsvc.yaml",
        ports["auth"],
        ports["admin"],
        work / "authsvc.db",
        max_entries=max(args.tokens // 10, 1000),
    )
    procs.authsvc(config, ports["admin"], name="authsvc")
    procs.spawn(
        "floor",
        [
            sys.executable,
            str(REPO / "bench" / "floor.py"),
            str(ports["floor-app"]),
            str(work / "hot.txt"),
        ],
    )
    wait_http(ports["floor-app"], "/auth", ok=(401,))
    procs.nginx(ports, REPO / "deploy" / "nginx")

    headers = {
        "plain": {},
        "nginxauth": {},
        "floor": {"Authorization": f"Bearer {hot}"},
        "svc-hit": {"Authorization": f"Bearer {hot}"},
        "svc-deny": {"Authorization": f"Bearer {hot}"},
        "svc-junk": {"Authorization": "Bearer authsvc_" + "A" * 49},
        "svc-miss": {},
        # svc-hit's request through the optional nginx micro-cache (deploy/nginx/microcache/).
        "svc-microcache": {"Authorization": f"Bearer {hot}"},
    }
    rounds: dict[str, list[Result]] = {name: [] for name in PATHS}
    for round_ in range(args.rounds):
        order = PATHS[round_ % len(PATHS) :] + PATHS[: round_ % len(PATHS)]
        for name in order:
            path = DENIED_PATH if name == "svc-deny" else CATALOG_PATH
            script = REPO / "bench" / "random_token.lua" if name == "svc-miss" else None
            result = run_wrk(
                f"http://127.0.0.1:{ports[name]}{path}",
                duration=args.duration,
                connections=args.connections,
                headers=headers[name],
                script=script,
                env={"BENCH_TOKENS": str(work / "tokens.txt"), "BENCH_PATH": path},
            )
            rounds[name].append(result)
            print(
                f"  round {round_ + 1} {name:14} {result.rps:9.0f} req/s  p50 "
                f"{result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  "
                f"non-2xx {result.non_2xx}  socket errors {result.socket_errors}",
                flush=True,
            )
    medians = {name: _median(results) for name, results in rounds.items()}

    print("bench: pure decision", flush=True)
    micros = micro.measure()
    print("bench: RSS with cached records", flush=True)
    rss = _rss_with_cached(work, procs, args.tokens)
    print(f"bench: start-up with {args.big} tokens", flush=True)
    startup = _startup_big(work, procs, args.big, ports)
    return {
        "medians": medians,
        "rounds": rounds,
        "micro": micros,
        "rss": rss,
        "startup": startup,
        "machine": _machine(),
        "args": vars(args),
    }


def _median(results: list[Result]) -> dict[str, float]:
    return {
        "rps": statistics.median(r.rps for r in results),
        "p50_ms": statistics.median(r.p50_ms for r in results),
        "p99_ms": statistics.median(r.p99_ms for r in results),
        "non_2xx": sum(r.non_2xx for r in results),
        "requests": sum(r.requests for r in results),
        "socket_errors": sum(r.socket_errors for r in results),
    }


def _write_config(
    work: Path, name: str, auth: int, admin: int, db: Path, *, max_entries: int
) -> Path:
    data = yaml.safe_load((REPO / "config" / "authsvc.yaml").read_text())
    data.update(
        {
            "listen": {"auth": f"127.0.0.1:{auth}", "admin": f"127.0.0.1:{admin}"},
            "store": f"sqlite:///{db}",
            "secret_key_file": str(work / "authsvc.key"),
            "audit_log": str(work / "audit.log"),
            # The shipped unknown-token budget: the junk path's tokens fail their checksum
            # and never reach the store, so it does not shape any measured path.
            "cache": {"ttl": "5s", "max_entries": max_entries, "unknown_lookups_per_second": 50},
        }
    )
    path = work / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _insert_one(db: Path, key: bytes, secret: str) -> None:
    import sqlite3  # noqa: PLC0415 - bench-only shortcut

    with sqlite3.connect(db) as connection:
        connection.execute(
            "INSERT INTO tokens (id, name, digest, permissions, created_at, created_by)"
            " VALUES ('tok_ffffffffffffffff', 'bench-hot', ?, '[\"MonitorQueries\"]', ?, 'bench')",
            (digest(key, secret), time.time()),
        )


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


def _rss_with_cached(work: Path, procs: Procs, count: int) -> dict[str, float]:
    ports = procs.ports("auth-rss", "admin-rss")
    config = _write_config(
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


def _startup_big(work: Path, procs: Procs, count: int, ports: dict[str, int]) -> dict[str, float]:
    key = KEY.encode()  # AUTHSVC_SECRET_KEY is used as UTF-8 bytes
    db = work / "big.db"
    bulk_tokens(db, key, count, "MonitorQueries", work / "big.txt")
    config = _write_config(
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


def _machine() -> dict[str, str]:
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


if __name__ == "__main__":
    main()
