"""authsvc benchmark: every path side by side, interleaved over several rounds, medians.

Usage: scripts/bench [--rounds N] [--duration SECONDS] [--paths a,b,c] [--skip-extras]
                     [--output docs/performance.md] [--redis redis://127.0.0.1:6379/0]

Everything runs on loopback: one nginx (worker_processes 1) with one server block per
path, authsvc with the shipped catalog, the `floor` handler, and wrk (1 thread). The
machine's 2 cores are shared by all of them, as they would be on a small real host.
The mix paths replay a generated request file (bench/mix.py) through bench/mix.lua.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path

from authsvc.rules.tokens import digest
from bench import extras, micro, mix, nginx_conf, ratelimits
from bench.config import KEY, REPO, SHIPPED, shipped_max_entries, write_config
from bench.data import bulk_tokens, fast_secret
from bench.procs import Procs, cpu_seconds, wait_http
from bench.report import write_report
from bench.wrk import Result, run_wrk

CATALOG_PATH = extras.CATALOG_PATH
DENIED_PATH = "/api/v1/users"  # ManageUsers grants it; the bench token lacks it
PATHS = (
    "plain",
    "nginxauth",
    "floor",
    "svc-hit",
    "svc-get",
    "svc-deny",
    "svc-junk",
    "svc-miss",
    "svc-microcache",
    *ratelimits.PATHS,
    "floor-mix",
    "svc-mix",
    "svc-mix-w2",
    "svc-microcache-mix",
)
#: The mix paths, and whose answers they get: authsvc's or the floor's.
MIX_PATHS = {
    "floor-mix": "floor",
    "svc-mix": "svc",
    "svc-mix-w2": "svc",
    "svc-microcache-mix": "svc",
}
#: authsvc processes answering each mix path (for req/s per process).
#: Whose CPU time is counted per request on a path: the process names of bench/procs.py.
CPU_OF = {
    "floor-mix": {"nginx": "nginx", "floor": "floor"},
    "svc-mix": {"nginx": "nginx", "authsvc": "authsvc-mix"},
    "svc-mix-w2": {"nginx": "nginx", "authsvc": "authsvc-w2"},
    **ratelimits.CPU_OF,
}
PROCESSES = {"svc-mix": 1, "svc-mix-w2": 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=100_000)
    parser.add_argument("--big", type=int, default=1_000_000, help="tokens for the start-up test")
    parser.add_argument("--paths", help=f"comma-separated, of: {','.join(PATHS)} (default all)")
    parser.add_argument(
        "--skip-extras", action="store_true", help="skip the RSS, start-up and micro measurements"
    )
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "performance.md")
    parser.add_argument(
        "--redis", default=ratelimits.DEFAULT_REDIS, help="for svc-ratelimited-cluster"
    )
    parser.add_argument(
        "--keep-work", action="store_true", help="keep the work folder (logs, stores) afterwards"
    )
    args = parser.parse_args()
    wanted = PATHS if args.paths is None else tuple(p.strip() for p in args.paths.split(","))
    unknown = [p for p in wanted if p not in PATHS]
    if unknown or not wanted:
        parser.error(f"unknown paths {unknown}; choose from {', '.join(PATHS)}")
    args.paths = [p for p in PATHS if p in wanted]
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            sys.exit(f"bench: {tool} is not installed (apt-get install nginx wrk)")
    work = Path(tempfile.mkdtemp(prefix="authsvc-bench-"))
    print(f"bench: working in {work}", flush=True)
    try:
        with Procs(work) as procs:
            results = run(args, work, procs)
    except BaseException:
        print(f"bench: failed; its logs are kept in {work}", file=sys.stderr)
        raise
    finally:
        shutil.rmtree(nginx_conf.microcache_dir(work / "nginx"), ignore_errors=True)
    if not args.keep_work:  # stores of up to 1,000,000 tokens: hundreds of MB
        shutil.rmtree(work, ignore_errors=True)
    write_report(args, results)
    print(f"bench: wrote {args.output}")


def run(args: argparse.Namespace, work: Path, procs: Procs) -> dict[str, object]:
    key = KEY.encode()  # AUTHSVC_SECRET_KEY is used as UTF-8 bytes
    if "svc-ratelimited-cluster" in args.paths:
        ratelimits.require_redis(args.redis)
    hot, limited = fast_secret(), fast_secret()
    db = work / "authsvc.db"
    print(f"bench: {args.tokens} tokens into SQLite", flush=True)
    bulk_tokens(db, key, args.tokens, "MonitorQueries", work / "tokens.txt")
    _insert_one(db, key, hot)
    ratelimits.insert_limited(db, key, limited)
    # The floor's tokens: the hot one, allowed from loopback only (one CIDR check, as
    # before), and the mix's when a mix path runs.
    floor_tokens = [f"{hot} 127.0.0.0/8"]
    the_mix = None
    if any(p in MIX_PATHS for p in args.paths):
        print(f"bench: generating the mix ({mix.REQUESTS} requests, {mix.TOKENS} tokens)")
        the_mix = mix.generate(SHIPPED)
        mix.insert(db, key, the_mix)
        mix_file, floor_file = mix.write(the_mix, work, floor_tokens)
    else:
        mix_file, floor_file = work / "mix.tsv", work / "floor-tokens.txt"
        floor_file.write_text("\n".join(floor_tokens) + "\n")
    ports = procs.ports(
        *PATHS,
        *("auth", "admin", "floor-app", "auth-big", "admin-big", "ok"),
        *("auth-mix", "admin-mix", "auth-w2", "admin-w2", "auth-rl", "admin-rl"),
    )
    # The single-request paths' instance: a cache of a tenth of the tokens, so that
    # svc-miss (random tokens over all of them) misses.
    cache_size = max(args.tokens // 10, 1000)
    config = write_config(
        work, "authsvc.yaml", ports["auth"], ports["admin"], db, max_entries=cache_size
    )
    procs.authsvc(config, ports["admin"], name="authsvc")
    if "svc-ratelimited-cluster" in args.paths:
        ratelimits.start_cluster_instance(
            work, procs, ports, db, cache_size=cache_size, redis_url=args.redis
        )
    # The mix's instances have the shipped cache (svc-miss would otherwise empty it
    # between rounds): one process, and `--workers 2`, on the same store.
    instances = {"mix": (1, {"svc-mix", "svc-microcache-mix"}), "w2": (2, {"svc-mix-w2"})}
    for name, (workers, served) in instances.items():
        if not served & set(args.paths):
            continue
        mix_config = write_config(
            work,
            f"authsvc-{name}.yaml",
            ports[f"auth-{name}"],
            ports[f"admin-{name}"],
            db,
            max_entries=shipped_max_entries(),
        )
        procs.authsvc(mix_config, ports[f"admin-{name}"], name=f"authsvc-{name}", workers=workers)
        if workers > 1:
            time.sleep(1)  # /readyz answered from the first worker up; let the rest finish
    if {"floor", "floor-mix"} & set(args.paths):
        floor_argv = [str(ports["floor-app"]), str(floor_file)]
        procs.spawn("floor", [sys.executable, str(REPO / "bench" / "floor.py"), *floor_argv])
        wait_http(ports["floor-app"], "/auth", ok=(401,))
    prefix = work / "nginx"
    procs.nginx(nginx_conf.write(prefix, ports, REPO / "deploy" / "nginx"), ports["plain"])

    rounds, composition, cache, records, cpu = _measure(
        args,
        procs,
        ports=ports,
        hot=hot,
        mix_file=mix_file,
        the_mix=the_mix,
        prefix=prefix,
        limited=limited,
    )
    results: dict[str, object] = {
        "paths": args.paths,
        "some_paths": len(args.paths) < len(PATHS),
        "medians": {name: _median(results) for name, results in rounds.items()},
        "rounds": rounds,
        "mix": None if the_mix is None else {"summary": mix.summary(the_mix), "runs": composition},
        "microcache": cache if "svc-microcache-mix" in args.paths else None,
        "record_cache": dict(records) if "svc-mix" in args.paths else None,
        "cpu": cpu,
        "processes": PROCESSES,
        "machine": extras.machine(),
        "args": vars(args),
        "ratelimits": ratelimits.check_counted(ports, args.paths),
    }
    if not args.skip_extras:
        print("bench: pure decision", flush=True)
        results["micro"] = micro.measure()
        print("bench: RSS with cached records", flush=True)
        results["rss"] = extras.rss_with_cached(work, procs, args.tokens)
        print(f"bench: start-up with {args.big} tokens", flush=True)
        results["startup"] = extras.startup_big(work, procs, args.big, ports)
    return results


def _measure(
    args: argparse.Namespace,
    procs: Procs,
    *,
    ports: dict[str, int],
    hot: str,
    limited: str,
    mix_file: Path,
    the_mix: mix.Mix | None,
    prefix: Path,
) -> tuple[
    dict[str, list[Result]],
    dict[str, dict[str, Counter[int]]],
    Counter[str],
    Counter[str],
    dict[str, dict[str, float]],
]:
    """The interleaved rounds: results per path, the mix paths' observed and expected
    statuses, the micro-cache statuses logged by svc-microcache-mix, authsvc's record
    cache hits, misses and store lookups during svc-mix, and the CPU time per request of
    nginx and the service on the mix paths (µs, over all their rounds)."""
    headers = {
        "floor": {"Authorization": f"Bearer {hot}"},
        "svc-hit": {"Authorization": f"Bearer {hot}"},
        # svc-hit's request with nginx's default GET subrequest instead of HEAD.
        "svc-get": {"Authorization": f"Bearer {hot}"},
        "svc-deny": {"Authorization": f"Bearer {hot}"},
        "svc-junk": {"Authorization": "Bearer authsvc_" + "A" * 49},
        # svc-hit's request through the optional nginx micro-cache (deploy/nginx/microcache/).
        "svc-microcache": {"Authorization": f"Bearer {hot}"},
        # svc-hit's request with a token that carries a (never reached) rate limit.
        **{name: {"Authorization": f"Bearer {limited}"} for name in ratelimits.PATHS},
    }
    paths = args.paths
    rounds: dict[str, list[Result]] = {name: [] for name in paths}
    composition = {
        name: {"observed": Counter[int](), "expected": Counter[int]()}
        for name in paths
        if name in MIX_PATHS
    }
    cache_log = prefix / nginx_conf.MICROCACHE_LOG
    cache: Counter[str] = Counter()
    records: Counter[str] = Counter()  # svc-mix: authsvc's own record cache, from /metrics
    # CPU seconds and requests per mix path, for nginx and the authsvc instance it asks
    cpu_used = {name: defaultdict[str, float](float) for name in CPU_OF if name in paths}
    for round_ in range(args.rounds):
        order = paths[round_ % len(paths) :] + paths[: round_ % len(paths)]
        # Every mix path of a round walks the request file from the same place.
        start = random.Random(round_).randrange(mix.REQUESTS)  # noqa: S311 - not a secret
        for name in order:
            path = DENIED_PATH if name == "svc-deny" else CATALOG_PATH
            script = None
            if name == "svc-miss":
                script = REPO / "bench" / "random_token.lua"
            elif name in MIX_PATHS:
                script = REPO / "bench" / "mix.lua"
            logged = cache_log.stat().st_size if cache_log.exists() else 0
            if name == "svc-mix":
                records.subtract(_record_cache(ports["admin-mix"]))
            watched = {part: procs.pid(proc) for part, proc in CPU_OF.get(name, {}).items()}
            for part, pid in watched.items():
                cpu_used[name][part] -= cpu_seconds(pid)
            result = run_wrk(
                f"http://127.0.0.1:{ports[name]}{path}",
                duration=args.duration,
                connections=args.connections,
                headers=headers.get(name, {}),
                script=script,
                env={
                    "BENCH_TOKENS": str(prefix.parent / "tokens.txt"),
                    "BENCH_PATH": path,
                    "BENCH_MIX": str(mix_file),
                    "BENCH_MIX_START": str(start),
                },
            )
            rounds[name].append(result)
            for part, pid in watched.items():
                cpu_used[name][part] += cpu_seconds(pid)
            if watched:
                cpu_used[name]["requests"] += result.requests
            if name == "svc-mix":
                records.update(_record_cache(ports["admin-mix"]))
            print(
                f"  round {round_ + 1} {name:18} {result.rps:9.0f} req/s  p50 "
                f"{result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  "
                f"non-2xx {result.non_2xx}  socket errors {result.socket_errors}",
                flush=True,
            )
            if name in MIX_PATHS and the_mix is not None:
                expected: Counter[int] = Counter()
                for walk_start, sent in result.walks:
                    expected += the_mix.expected(MIX_PATHS[name], walk_start, sent)
                composition[name]["observed"].update(result.statuses)
                composition[name]["expected"].update(expected)
                print(f"    statuses {_shares(result.statuses)}  expected {_shares(expected)}")
            if name == "svc-microcache-mix":
                time.sleep(nginx_conf.FLUSH_WAIT)
                with cache_log.open() as log:
                    log.seek(logged)
                    statuses = Counter(line.split()[-1] for line in log if line.strip())
                cache.update(statuses)
                print(f"    micro-cache {dict(statuses)}")
    cpu = {
        name: {part: used[part] / used["requests"] * 1e6 for part in CPU_OF[name]}
        for name, used in cpu_used.items()
        if used["requests"]
    }
    return rounds, composition, cache, records, cpu


def _record_cache(admin_port: int) -> Counter[str]:
    """The record cache's hits and misses and the store lookups of an instance so far."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    wanted = {
        "authsvc_cache_hits_total": "hits",
        "authsvc_cache_misses_total": "misses",
        'authsvc_store_lookups_total{result="found"}': "lookups",
    }
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name in wanted:
            counts[wanted[name]] = int(float(value))
    return counts


def _shares(counts: dict[int, int]) -> str:
    total = sum(counts.values()) or 1
    return " ".join(f"{s}: {n} ({n / total:.1%})" for s, n in sorted(counts.items()))


def _median(results: list[Result]) -> dict[str, float]:
    return {
        "rps": statistics.median(r.rps for r in results),
        "p50_ms": statistics.median(r.p50_ms for r in results),
        "p99_ms": statistics.median(r.p99_ms for r in results),
        "non_2xx": sum(r.non_2xx for r in results),
        "requests": sum(r.requests for r in results),
        "socket_errors": sum(r.socket_errors for r in results),
    }


def _insert_one(db: Path, key: bytes, secret: str) -> None:
    import sqlite3  # noqa: PLC0415 - bench-only shortcut

    with sqlite3.connect(db) as connection:
        connection.execute(
            "INSERT INTO tokens (id, name, digest, permissions, created_at, created_by)"
            " VALUES ('tok_ffffffffffffffff', 'bench-hot', ?, '[\"MonitorQueries\"]', ?, 'bench')",
            (digest(key, secret), time.time()),
        )


if __name__ == "__main__":
    main()
