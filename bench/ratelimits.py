"""The rate-limit paths: svc-hit's request with a token that carries a limit.

``svc-ratelimited-instance`` asks the same authsvc as svc-hit (``scope: instance``, the
default), ``svc-ratelimited-cluster`` a second instance on the same store with ``scope:
cluster`` counting through Redis. The token's limit is so high that no request is ever
refused: what the paths show is the cost of counting (and of the allow's X-RateLimit-*
headers, built per request since they change), not of refusals.
"""

from __future__ import annotations

import sqlite3
import time
import urllib.request
from pathlib import Path
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from authsvc.rules.tokens import digest
from bench.config import write_config
from bench.procs import Procs

PATHS = ("svc-ratelimited-instance", "svc-ratelimited-cluster")
#: The admin ports (bench/run.py's names) of the instances answering them: svc-hit's, and
#: the cluster scope's own.
ADMIN_PORTS = ("admin", "admin-rl")
#: Whose CPU time is counted per request (bench/run.py): a far steadier measure of the
#: cost of counting than req/s on a shared machine. svc-hit's for comparison.
CPU_OF = {
    "svc-hit": {"authsvc": "authsvc"},
    "svc-ratelimited-instance": {"authsvc": "authsvc"},
    "svc-ratelimited-cluster": {"authsvc": "authsvc-rl"},
}
#: Never reached by one wrk (tens of thousands of requests a second at most).
LIMIT = "1000000/s"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


def wanted(paths: list[str]) -> bool:
    return any(path in PATHS for path in paths)


def require_redis(url: str) -> None:
    """Stop before measuring when Redis does not answer: the cluster instance would fall
    back to counting alone, and its path would measure the instance scope instead."""
    client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except (RedisError, OSError) as error:
        raise SystemExit(
            f"bench: svc-ratelimited-cluster needs Redis at {url} ({error}): start "
            "redis-server, pass --redis URL, or leave the path out with --paths"
        ) from None
    finally:
        client.close()


def start_cluster_instance(
    work: Path, procs: Procs, ports: dict[str, int], db: Path, *, cache_size: int, redis_url: str
) -> None:
    """svc-hit's instance once more (same store, same cache size), counting rate limits
    through Redis: it answers svc-ratelimited-cluster."""
    config = write_config(
        work,
        "authsvc-rl.yaml",
        ports["auth-rl"],
        ports["admin-rl"],
        db,
        max_entries=cache_size,
        rate_limits={"scope": "cluster", "redis": redis_url},
    )
    procs.authsvc(config, ports["admin-rl"], name="authsvc-rl")


def insert_limited(db: Path, key: bytes, secret: str) -> None:
    """The limited token (svc-hit's permission, the LIMIT) into the bench store."""
    with sqlite3.connect(db) as connection:
        connection.execute(
            "INSERT INTO tokens (id, name, digest, permissions, created_at, created_by,"
            " rate_limit) VALUES ('tok_fffffffffffffffe', 'bench-limited', ?,"
            " '[\"MonitorQueries\"]', ?, 'bench', ?)",
            (digest(key, secret), time.time(), LIMIT),
        )


def _metrics(admin_port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def check_counted(ports: dict[str, int], paths: list[str]) -> dict[str, Any]:
    """After the rounds: how many requests each path's instance refused as rate-limited
    (must be none), and whether the cluster instance fell back to counting alone."""
    found: dict[str, Any] = {}
    for path, admin in zip(PATHS, ADMIN_PORTS, strict=True):
        if path not in paths:
            continue
        metrics = _metrics(ports[admin])
        found[path] = {
            "rate_limited": metrics.get('authsvc_decisions_total{reason="rate_limited"}', 0.0),
            "fallback": metrics.get("authsvc_ratelimit_fallback", 0.0),
        }
    return found


def section(results: dict[str, Any]) -> str:
    """The report's section comparing the rate-limit paths with svc-hit."""
    medians = results["medians"]
    measured = [path for path in PATHS if path in medians]
    if not measured or "svc-hit" not in medians:
        return ""
    hit = medians["svc-hit"]
    cpu = results.get("cpu") or {}

    def cpu_us(path: str) -> str:
        return f"{cpu[path]['authsvc']:.0f}" if path in cpu else "–"

    rows = [
        f"| `{path}` | {medians[path]['rps'] / hit['rps']:.2f} × | "
        f"{medians[path]['p99_ms']:.2f} ms vs {hit['p99_ms']:.2f} ms | "
        f"{cpu_us(path)} vs {cpu_us('svc-hit')} |"
        for path in measured
    ]
    checks = results.get("ratelimits") or {}
    notes = [
        f"`{path}`: {found['rate_limited']:,.0f} requests refused as rate-limited"
        + (", **fell back to counting alone**" if found["fallback"] else "")
        for path, found in checks.items()
    ]
    return f"""## Rate limits

svc-hit's request with a token limited to {LIMIT} (never refused): counted by svc-hit's
own instance (`scope: instance`), and by a second instance on the same store with
`scope: cluster` through the local Redis. Compared with svc-hit in the same rounds (CPU:
authsvc's user + system time per request, from /proc; Redis' own time not included):

| path | req/s vs svc-hit | p99 vs svc-hit | authsvc CPU µs per request vs svc-hit |
| --- | ---: | ---: | ---: |
{chr(10).join(rows)}

{"; ".join(notes)}.

"""
