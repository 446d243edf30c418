"""Run wrk against one path and parse what it prints."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass(frozen=True)
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int
    #: From a script that reports them (bench/mix.lua): answers by status, and
    #: (start, sent) of each thread's walk through its request file.
    statuses: dict[int, int] = field(default_factory=dict)
    walks: list[tuple[int, int]] = field(default_factory=list)


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def run_wrk(
    url: str,
    *,
    duration: float,
    connections: int,
    headers: dict[str, str],
    script: Path | None = None,
    env: dict[str, str] | None = None,
) -> Result:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    if script is not None:
        command += ["-s", str(script)]
    command.append(url)
    out = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 30,
        env={**os.environ, **(env or {})},
    ).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Result(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        p50_ms=_ms(latency["50"]),
        p99_ms=_ms(latency["99"]),
        requests=int(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
        statuses={int(s): int(n) for s, n in re.findall(r"^bench-status (\d+) (\d+)$", out, re.M)},
        walks=[(int(a), int(b)) for a, b in re.findall(r"^bench-walk (\d+) (\d+)$", out, re.M)],
    )
