"""The benchmark's table, printed and written to docs/performance.md."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

TARGETS = """\
| target | measured | met |
| --- | --- | --- |
"""


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


def _targets(results: dict[str, Any]) -> str:
    m = results["medians"]
    rps = {name: values["rps"] for name, values in m.items()}
    micro_worst = max(results["micro"].values())
    rss, startup = results["rss"], results["startup"]
    rows = [
        ("svc-hit ≥ 1.0 × floor", rps["svc-hit"] / rps["floor"], 1.0),
        ("svc-junk ≥ svc-hit", rps["svc-junk"] / rps["svc-hit"], 1.0),
        ("svc-deny ≥ 0.95 × svc-hit", rps["svc-deny"] / rps["svc-hit"], 0.95),
        ("svc-miss ≥ 0.6 × svc-hit", rps["svc-miss"] / rps["svc-hit"], 0.6),
    ]
    out = [TARGETS.rstrip("\n")]
    for label, ratio, goal in rows:
        out.append(f"| {label} | {ratio:.2f} × | {'yes' if ratio >= goal else '**no**'} |")
    p99 = (m["svc-hit"]["p99_ms"], m["floor"]["p99_ms"])
    out.append(
        f"| p99 svc-hit ≤ p99 floor | {p99[0]:.2f} ms vs {p99[1]:.2f} ms | "
        f"{'yes' if p99[0] <= p99[1] else '**no**'} |"
    )
    out.append(
        f"| pure decision ≤ 10 µs | {micro_worst:.2f} µs (worst case) | "
        f"{'yes' if micro_worst <= 10 else '**no**'} |"
    )
    rss_mb = rss["rss_after_mb"]
    out.append(
        f"| RSS with {rss['cached']:,.0f} cached records ≤ 150 MB | {rss_mb:.0f} MB "
        f"(idle {rss['rss_before_mb']:.0f} MB) | {'yes' if rss_mb <= 150 else '**no**'} |"
    )
    out.append(
        f"| start-up with {startup['tokens']:,.0f} tokens ≤ 2 s | {startup['startup_s']:.2f} s"
        f" | {'yes' if startup['startup_s'] <= 2 else '**no**'} |"
    )
    out.append(
        f"| miss latency unchanged from 100,000 | p50 {startup['miss_p50_ms_big']:.2f} ms vs "
        f"{startup['miss_p50_ms_small']:.2f} ms, p99 {startup['miss_p99_ms_big']:.2f} vs "
        f"{startup['miss_p99_ms_small']:.2f} ms | see numbers |"
    )
    out.append(
        f"\nsvc-hit / nginxauth = {rps['svc-hit'] / rps['nginxauth']:.2f}; "
        f"svc-hit / plain = {rps['svc-hit'] / rps['plain']:.2f}; "
        f"svc-microcache / nginxauth = {rps['svc-microcache'] / rps['nginxauth']:.2f}; "
        f"svc-microcache / svc-hit = {rps['svc-microcache'] / rps['svc-hit']:.2f}"
    )
    return "\n".join(out)


def write_report(args: argparse.Namespace, results: dict[str, Any]) -> None:
    machine = results["machine"]
    micro = "\n".join(f"| {label} | {value:.2f} |" for label, value in results["micro"].items())
    text = f"""# Performance

Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `scripts/bench --rounds {args.rounds}
--duration {args.duration:g}` on {machine["cores"]} cores ({machine["cpu"]}), Python
{machine["python"]}, nginx {machine["nginx"]}, kernel {machine["kernel"]}. wrk: 1 thread,
{args.connections} connections; nginx: 1 worker; authsvc: 1 process. Medians of
{args.rounds} interleaved rounds of {args.duration:g} s per path. Everything shares the
2 cores, so absolute numbers are low; the ratios are what to compare.

## Paths

{_table(results["medians"])}

(`svc-deny` answers 403 and `svc-junk` 401 by design: their non-2xx count is every request.
`svc-microcache` is `svc-hit`'s request through the optional nginx micro-cache of
`deploy/nginx/microcache/`: the same token, method, target and client every time, its best
case, in which authsvc decides about once per second or two and nginx answers the rest.)

## Targets

{_targets(results)}

Where a target is not met, `docs/performance-notes.md` shows the profile and what stands
in the way.

## Pure core (µs per call, best of 5 × 50,000)

| call | µs |
| --- | ---: |
{micro}
"""
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
