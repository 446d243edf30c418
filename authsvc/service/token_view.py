"""The public token object (SPEC §4), shared by the admin API and the CLI's ``--json``."""

from __future__ import annotations

from typing import Any

from authsvc.config import SecurityPolicy
from authsvc.rules.decision import token_status
from authsvc.rules.durations import rfc3339
from authsvc.rules.tokens import TokenRecord


def _time(epoch: float | None) -> str | None:
    return None if epoch is None else rfc3339(epoch)


def token_object(record: TokenRecord, policy: SecurityPolicy, now: float) -> dict[str, Any]:
    """Every field of the record plus the derived status; never the secret."""
    return {
        "id": record.id,
        "name": record.name,
        "permissions": sorted(record.permissions),
        "ip_filter": record.ip_filter,
        "created_at": rfc3339(record.created_at),
        "expires_at": _time(record.expires_at),
        "status": token_status(record, policy, now),
        "created_by": record.created_by,
        "last_used_at": _time(record.last_used_at),
        "last_used_ip": record.last_used_ip,
    }
