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

#: Every key of ``security_policy`` written out, as a configuration file must (SPEC §1).
POLICY: dict[str, Any] = {
    "tokens_enabled": True,
    "max_lifetime": None,
    "enforce_ip_filter": None,
    "allow_permission_updates": True,
    "max_rate_limit": None,
}

#: The test configuration: every section that must be written out, and no other.
BASE: dict[str, Any] = {
    "trusted_proxies": ["127.0.0.1/32", "::1/128"],
    "admin_trusted_proxies": ["127.0.0.1/32", "::1/128"],
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
    "security_policy": dict(POLICY),
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
        "previous_secret_expires_at",
        "status",
        "created_by",
        "last_used_at",
        "last_used_ip",
        "rate_limit",
    }
)


def full_policy(**fields: Any) -> dict[str, Any]:
    """Every ``security_policy`` key: POLICY with ``fields`` replacing some."""
    return {**POLICY, **fields}


def config_document(**overrides: Any) -> dict[str, Any]:
    """A configuration file's content: BASE with top-level keys replaced by ``overrides``,
    except ``security_policy``, whose entries are merged into POLICY (so a test names
    only the policy keys it is about and the file still has every one)."""
    data = {**copy.deepcopy(BASE), **overrides}  # never the shared BASE: tests edit it
    data["security_policy"] = full_policy(**overrides.get("security_policy", {}))
    return data


def make_config(tmp: Path | None = None, **overrides: Any) -> Config:
    """A valid configuration: :func:`config_document` of ``overrides``, with the store
    and key file in ``tmp`` when given."""
    data = config_document(**overrides)
    folder = tmp or Path("/nonexistent-authsvc-test")
    if tmp is not None:
        data.setdefault("store", f"sqlite:///{tmp / 'authsvc.db'}")
        data.setdefault("secret_key_file", str(tmp / "authsvc.key"))
    return parse_config(yaml.safe_dump(data), folder / "authsvc.yaml")


def config_data(folder: Path, **overrides: Any) -> dict[str, Any]:
    """A configuration file's content: :func:`config_document` with the store, key file
    and audit log in ``folder`` (absolute paths) unless ``overrides`` name them."""
    paths = {
        "store": f"sqlite:///{folder / 'authsvc.db'}",
        "secret_key_file": str(folder / "authsvc.key"),
        "audit_log": str(folder / "audit.log"),
    }
    return config_document(**{**paths, **overrides})


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
