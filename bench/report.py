"""The benchmark's table, printed and written to docs/performance.md.

With --paths or --skip-extras, only the rows measured and the targets they allow appear.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from bench.ratelimits import section as rate_limit_section

TARGETS = """\
| target | measured | met |
| --- | --- | --- |
"""
#: Throughput targets: (label, path, times, of path).
RATIOS = (
    ("svc-hit ≥ 1.0 × floor", "svc-hit", 1.0, "floor"),
    ("svc-junk ≥ svc-hit", "svc-junk", 1.0, "svc-hit"),
    ("svc-deny ≥ 0.95 × svc-hit", "svc-deny", 0.95, "svc-hit"),
    ("svc-miss ≥ 0.6 × svc-hit", "svc-miss", 0.6, "svc-hit"),
    ("svc-get ≥ 0.95 × svc-hit", "svc-get", 0.95, "svc-hit"),
    ("svc-mix ≥ 1.0 × floor-mix", "svc-mix", 1.0, "floor-mix"),
)
#: Ratios shown for information: (path, of path).
INFO = (
    ("svc-hit", "nginxauth"),
    ("svc-hit", "plain"),
    ("svc-microcache", "nginxauth"),
    ("svc-microcache", "svc-hit"),
    ("svc-microcache-mix", "svc-mix"),
    ("svc-mix-w2", "svc-mix"),
)
#: Largest difference, in points, between the observed and expected share of a status.
COMPOSITION_TOLERANCE = 1.0


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _table(medians: dict[str, dict[str, float]]) -> str:
    lines = [
        "| path | req/s | p50 ms | p99 ms | requests | non-2xx | socket errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, m in medians.items():
        lines.append(
            f"| `{name}` | {m['rps']:,.0f} | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} | "
            f"{m['requests']:,.0f} | {m['non_2xx']:,.0f} | {m['socket_errors']:,.0f} |"
        )
    return "\n".join(lines)


def _extra_targets(results: dict[str, Any]) -> list[str]:
    """The targets of the measurements besides the paths (absent with --skip-extras)."""
    out = []
    if "micro" in results:
        worst = max(results["micro"].values())
        out.append(f"| pure decision ≤ 10 µs | {worst:.2f} µs (worst case) | {_yes(worst <= 10)} |")
    if "rss" in results:
        rss = results["rss"]
        mb = rss["rss_after_mb"]
        out.append(
            f"| RSS with {rss['cached']:,.0f} cached records ≤ 150 MB | {mb:.0f} MB "
            f"(idle {rss['rss_before_mb']:.0f} MB) | {_yes(mb <= 150)} |"
        )
    if "startup" in results:
        s = results["startup"]
        out.append(
            f"| start-up with {s['tokens']:,.0f} tokens ≤ 2 s | {s['startup_s']:.2f} s"
            f" | {_yes(s['startup_s'] <= 2)} |"
        )
        out.append(
            f"| miss latency unchanged from 100,000 | p50 {s['miss_p50_ms_big']:.2f} ms vs "
            f"{s['miss_p50_ms_small']:.2f} ms, p99 {s['miss_p99_ms_big']:.2f} vs "
            f"{s['miss_p99_ms_small']:.2f} ms | see numbers |"
        )
    return out


def _targets(results: dict[str, Any]) -> str:
    m = results["medians"]
    rps = {name: values["rps"] for name, values in m.items()}
    out = [TARGETS.rstrip("\n")]
    for label, path, goal, base in RATIOS:
        if path in rps and base in rps:
            ratio = rps[path] / rps[base]
            out.append(f"| {label} | {ratio:.2f} × | {_yes(ratio >= goal)} |")
    if "svc-hit" in m and "floor" in m:
        p99 = (m["svc-hit"]["p99_ms"], m["floor"]["p99_ms"])
        out.append(
            f"| p99 svc-hit ≤ p99 floor | {p99[0]:.2f} ms vs {p99[1]:.2f} ms | "
            f"{_yes(p99[0] <= p99[1])} |"
        )
    out += _extra_targets(results)
    cache = results.get("microcache")
    if cache:
        hits = cache.get("HIT", 0)
        out.append(
            f"| micro-cache hit rate on the mix | {hits / sum(cache.values()):.1%} of "
            f"{sum(cache.values()):,} requests | see numbers |"
        )
    records = results.get("record_cache")
    if records:
        hits, looked_up = records.get("hits", 0), records.get("hits", 0) + records.get("misses", 0)
        out.append(
            f"| authsvc's record cache on the mix (svc-mix) | {hits / max(looked_up, 1):.1%}"
            f" hits of {looked_up:,} lookups; {records.get('lookups', 0):,} store reads |"
            " see numbers |"
        )
    processes = results["processes"]
    if all(name in rps for name in processes):
        per = ", ".join(
            f"{name} {rps[name] / n:,.0f} req/s per process ({n})" for name, n in processes.items()
        )
        w1, w2 = (rps[name] for name in processes)
        out.append(f"| svc-mix-w2 vs svc-mix | {w2 / w1:.2f} × total; {per} | see numbers |")
    info = [f"{a} / {b} = {rps[a] / rps[b]:.2f}" for a, b in INFO if a in rps and b in rps]
    if info:
        out.append("\n" + "; ".join(info))
    return "\n".join(out)


def _composition(results: dict[str, Any]) -> str:
    """The mix's intended composition and, per mix path, observed against expected."""
    mix = results.get("mix")
    if not mix:
        return ""
    s = mix["summary"]
    kinds = ", ".join(f"{kind} {share:.1%}" for kind, share in s["kinds"].items())
    lines = [
        "## Mix composition\n",
        f"The request file: {s['requests']:,} requests over {s['tokens']:,} tokens (Zipf, "
        f"s = 1.1), {s['targets']:,} distinct targets from the shipped catalog's templates, "
        f"{s['clients']:,} client addresses in six /24s. Intended kinds: {kinds}. "
        "The floor checks no permission, so it must allow what authsvc denies for one.\n",
        "Expected: the statuses the requests walked in the run must get (computed when the "
        "file is generated); whole file: the shares over the entire file. Met: observed "
        f"within {COMPOSITION_TOLERANCE:g} point of expected.\n",
        "| path | status | whole file | expected | observed | met |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for path, run in mix["runs"].items():
        observed, expected = run["observed"], run["expected"]
        whole = s["floor" if path == "floor-mix" else "svc"]
        n_obs, n_exp = sum(observed.values()) or 1, sum(expected.values()) or 1
        for status in sorted(set(observed) | set(expected) | set(whole)):
            o, e = observed.get(status, 0) / n_obs, expected.get(status, 0) / n_exp
            ok = abs(o - e) * 100 <= COMPOSITION_TOLERANCE
            lines.append(
                f"| `{path}` | {status} | {whole.get(status, 0):.1%} | {e:.1%} | "
                f"{o:.1%} ({observed.get(status, 0):,}) | {_yes(ok)} |"
            )
    cache = results.get("microcache")
    if cache:
        total = sum(cache.values())
        parts = ", ".join(f"{k} {n:,} ({n / total:.1%})" for k, n in cache.most_common())
        lines.append(
            f"\nMicro-cache on the mix (`svc-microcache-mix`, each request's "
            f"`$upstream_cache_status` of its auth subrequest): {parts}."
        )
    return "\n".join(lines) + "\n\n"


def _notes(paths: list[str]) -> str:
    notes = {
        (
            "svc-deny",
            "svc-junk",
        ): "`svc-deny` answers 403 and `svc-junk` 401 by design: their non-2xx "
        "count is every request.",
        ("svc-get",): "`svc-get` is `svc-hit` with nginx's default GET subrequest: "
        "deploy/nginx/authsvc-auth.conf without its `proxy_method HEAD;` line.",
        ("svc-microcache",): "`svc-microcache` is `svc-hit`'s request through the optional nginx "
        "micro-cache of `deploy/nginx/microcache/`: the same token, method, target and "
        "client every time, its best case, in which authsvc decides about once per second "
        "or two and nginx answers the rest.",
        (
            "floor-mix",
            "svc-mix",
            "svc-mix-w2",
            "svc-microcache-mix",
        ): "The mix paths (`floor-mix`, `svc-mix`, `svc-mix-w2`, "
        "`svc-microcache-mix`) replay the same generated request file (see Mix composition) "
        "from the same place in a round; their non-2xx are the intended denials. Allowed "
        "requests of every method go on to a small nginx `return 200` server. `svc-mix-w2` "
        "is a second authsvc on the same store run with `serve --workers 2`.",
    }
    picked = [text for keys, text in notes.items() if set(keys) & set(paths)]
    return ("(" + "\n".join(picked) + ")\n") if picked else ""


def _sizing(results: dict[str, Any]) -> str:
    """How many cores nginx and authsvc need per request rate, from this run's CPU times."""
    cpu = results.get("cpu") or {}
    if "svc-mix" not in cpu:
        return ""
    rows = []
    labels = {
        ("svc-mix", "nginx"): "nginx: realip, the auth subrequest, proxying to the API",
        ("svc-mix", "authsvc"): "authsvc, one process (`serve`)",
        ("svc-mix-w2", "authsvc"): "authsvc, two workers together (`serve --workers 2`)",
        ("floor-mix", "floor"): "the floor handler, for comparison",
    }
    for (path, part), label in labels.items():
        if part in cpu.get(path, {}):
            us = cpu[path][part]
            rows.append(f"| {label} | {us:,.0f} | {1e6 / us:,.0f} |")
    nginx, authsvc = cpu["svc-mix"]["nginx"], cpu["svc-mix"]["authsvc"]
    return f"""## Sizing workers and instances

CPU time each process used on the mix, divided by the requests it served (user + system,
from /proc; this machine's cores are slow and shared, so read the figures as an upper
bound for a dedicated core):

| process | CPU µs per request | requests/s per core |
| --- | ---: | ---: |
{chr(10).join(rows)}

To serve R requests per second, a host needs about R × ({nginx:,.0f} + {authsvc:,.0f}) µs
of CPU each second for nginx and authsvc together, plus what the protected API itself
costs. Give authsvc one worker (`serve --workers N`) per {1e6 / authsvc:,.0f} requests/s
expected at peak, with a third of headroom, and keep N at or below the cores left once
nginx has its share; nginx's own `worker_processes auto` takes the rest. Each worker keeps
its own record cache, so each reads the store on its own misses: the store sees about
(1 − hit rate) × R reads per second whatever N is (the record cache answered
{_record_hit_rate(results)} of lookups here). Past one host, run more instances on a
shared PostgreSQL store behind the same nginx upstream (docs/deployment.md); changes
reach every instance within the propagation bound.

"""


def _record_hit_rate(results: dict[str, Any]) -> str:
    records = results.get("record_cache") or {}
    looked_up = records.get("hits", 0) + records.get("misses", 0)
    return f"{records.get('hits', 0) / looked_up:.0%}" if looked_up else "most"


def write_report(args: argparse.Namespace, results: dict[str, Any]) -> None:
    machine = results["machine"]
    options = "".join(
        (
            f" --paths {','.join(args.paths)}" if results["some_paths"] else "",
            " --skip-extras" if args.skip_extras else "",
        )
    )
    micro = ""
    if "micro" in results:
        rows = "\n".join(f"| {label} | {value:.2f} |" for label, value in results["micro"].items())
        micro = (
            "## Pure core (µs per call, best of 5 × 50,000)\n\n| call | µs |\n| --- | ---: |\n"
            + rows
            + "\n"
        )
    text = f"""# Performance

Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `scripts/bench --rounds {args.rounds}
--duration {args.duration:g}{options}` on {machine["cores"]} cores ({machine["cpu"]}), Python
{machine["python"]}, nginx {machine["nginx"]}, kernel {machine["kernel"]}. wrk: 1 thread,
{args.connections} connections; nginx: 1 worker; authsvc: 1 process (2 for `svc-mix-w2`).
Medians of {args.rounds} interleaved rounds of {args.duration:g} s per path. Everything
shares the 2 cores, so absolute numbers are low; the ratios are what to compare.

## Paths

{_table(results["medians"])}

{_notes(results["paths"])}
## Targets

{_targets(results)}

Where a target is not met, `docs/performance-notes.md` shows the profile and what stands
in the way.

{rate_limit_section(results)}{_sizing(results)}{_composition(results)}{micro}"""
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
