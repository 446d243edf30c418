"""The authsvc configuration of a benchmark instance: the shipped one, pointed at the work dir."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bench.mix import filter_rules

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "config" / "authsvc.yaml"
KEY = "b" * 64  # AUTHSVC_SECRET_KEY (bench/procs.py); used as UTF-8 bytes


def shipped_max_entries() -> int:
    """The record cache size of config/authsvc.yaml."""
    return int(yaml.safe_load(SHIPPED.read_text())["cache"]["max_entries"])


def write_config(
    work: Path,
    name: str,
    auth: int,
    admin: int,
    db: Path,
    *,
    max_entries: int,
    rate_limits: dict[str, Any] | None = None,
) -> Path:
    data = yaml.safe_load(SHIPPED.read_text())
    data.update(
        {
            "listen": {"auth": f"127.0.0.1:{auth}", "admin": f"127.0.0.1:{admin}"},
            "store": f"sqlite:///{db}",
            "secret_key_file": str(work / "authsvc.key"),
            "audit_log": str(work / "audit.log"),
            # The shipped unknown-token budget: the junk path's tokens fail their checksum
            # and never reach the store, so it does not shape any measured path. (The
            # mix's 1 % unknown tokens may spend it; they get their 401 either way.)
            "cache": {"ttl": "5s", "max_entries": max_entries, "unknown_lookups_per_second": 50},
            # The shipped filters plus the mix's (bench/mix.py).
            "ip_filters": {**data["ip_filters"], **filter_rules()},
        }
    )
    if rate_limits is not None:
        data["rate_limits"] = rate_limits
    path = work / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
