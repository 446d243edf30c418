"""Builders shared by tests: configurations from YAML text, token records, a clock."""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path
from typing import Any

import yaml

from authsvc.config import Config
from authsvc.config.load import parse_config
from authsvc.rules.tokens import TokenRecord, new_token_id

BASE: dict[str, Any] = {
    "permissions": {
        "Reader": {
            "description": "Read items",
            "endpoints": ["GET /api/v1/items", "GET /api/v1/items/{id}"],
        },
        "Writer": {
            "description": "Change items",
            "endpoints": ["POST /api/v1/items", "DELETE /api/v1/items/{id}"],
        },
    },
    "ip_filters": {
        "office": "allow 10.0.0.0/8\nallow 2001:db8::/32\ndeny all\n",
        "localhost": "allow 127.0.0.1\nallow ::1\ndeny all\n",
    },
}


#: The fields of the token object of SPEC §4, pinned here once for every test.
TOKEN_FIELDS = frozenset(
    {
        "id",
        "name",
        "permissions",
        "ip_filter",
        "created_at",
        "expires_at",
        "effective_expires_at",
        "status",
        "created_by",
        "last_used_at",
        "last_used_ip",
    }
)


def make_config(tmp: Path | None = None, **overrides: Any) -> Config:
    """A valid configuration: BASE with top-level keys replaced by ``overrides``
    (``security_policy`` entries are merged into the defaults)."""
    data = {**copy.deepcopy(BASE), **overrides}
    folder = tmp or Path("/nonexistent-authsvc-test")
    if tmp is not None:
        data.setdefault("store", f"sqlite:///{tmp / 'authsvc.db'}")
        data.setdefault("secret_key_file", str(tmp / "authsvc.key"))
    return parse_config(yaml.safe_dump(data), folder / "authsvc.yaml")


def config_data(folder: Path, **overrides: Any) -> dict[str, Any]:
    """A configuration file's content: BASE with the store, key file and audit log in
    ``folder`` (absolute paths), top-level keys replaced by ``overrides``."""
    return {
        **copy.deepcopy(BASE),  # tests edit nested sections: never the shared BASE
        "store": f"sqlite:///{folder / 'authsvc.db'}",
        "secret_key_file": str(folder / "authsvc.key"),
        "audit_log": str(folder / "audit.log"),
        **overrides,
    }


def config_from_text(text: str, folder: Path = Path("/nonexistent-authsvc-test")) -> Config:
    return parse_config(textwrap.dedent(text), folder / "authsvc.yaml")


def make_record(**fields: Any) -> TokenRecord:
    """A token record with fixed, plausible fields; ``fields`` replace them."""
    values: dict[str, Any] = {
        "id": "tok_00000000000000aa",
        "name": "ci deploys",
        "permissions": frozenset({"Reader"}),
        "ip_filter": None,
        "created_at": 1_000_000.0,
        "expires_at": None,
        "created_by": "cli",
    }
    values.update(fields)
    return TokenRecord(**values)


def new_record(name: str = "ci deploys", **fields: Any) -> TokenRecord:
    """:func:`make_record` with a fresh id (unless ``fields`` name one), for tests that
    store several records."""
    return make_record(**{"id": new_token_id(), "name": name, **fields})


class FrozenClock:
    """An injectable clock for expiry edges."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
