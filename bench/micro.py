"""Microseconds per call of the pure core: describe() and decide() with the shipped
23-permission catalog and 50 IP filters of 20 rules each."""

from __future__ import annotations

import timeit
from pathlib import Path

import yaml

from authsvc.config import Config
from authsvc.config.load import parse_config
from authsvc.rules.decision import decide
from authsvc.rules.ipfilter import NetworkSet
from authsvc.rules.request import Described, describe
from authsvc.rules.tokens import TokenRecord

REPO = Path(__file__).resolve().parents[1]


def _config_with_filters() -> tuple[Config, TokenRecord]:
    data = yaml.safe_load((REPO / "config" / "authsvc.yaml").read_text())
    filters = {}
    for f in range(50):
        rules = [f"deny 10.{f}.{r}.0/24" for r in range(19)] + ["allow 127.0.0.0/8"]
        filters[f"filter{f}"] = "\n".join(rules)
    data["ip_filters"] = filters
    config = parse_config(yaml.safe_dump(data), REPO / "config" / "authsvc.yaml")
    record = TokenRecord(
        "tok_0000000000000001",
        "bench",
        frozenset(p for p in data["permissions"]),
        "filter49",
        0.0,
        None,
        "bench",
    )
    return config, record


def measure() -> dict[str, float]:
    config, record = _config_with_filters()
    trusted = NetworkSet.compile(["127.0.0.1/32"])
    described = describe("GET", "/api/v1/queries/running/42", "127.0.0.1", "127.0.0.1", trusted)
    assert isinstance(described, Described)
    # The last permission in the catalog order, last endpoint: the slowest allow.
    last = describe("GET", "/api/v1/views/connections/7", "127.0.0.1", "127.0.0.1", trusted)
    assert isinstance(last, Described)
    results = {}
    for label, function in {
        "describe(): parse the request description": lambda: describe(
            "GET", "/api/v1/queries/running/42", "127.0.0.1", "127.0.0.1", trusted
        ),
        "decide(): all rules, 23 permissions, 20-rule filter": lambda: decide(
            record,
            described,
            config,
            1.0,
        ),
        "decide(): permission denied (every permission tried)": lambda: decide(
            record,
            last,
            config,
            1.0,
        ),
    }.items():
        number = 50_000
        best = min(timeit.repeat(function, number=number, repeat=5))
        results[label] = best / number * 1e6
    return results


if __name__ == "__main__":
    for label, micros in measure().items():
        print(f"{micros:8.2f} µs  {label}")
