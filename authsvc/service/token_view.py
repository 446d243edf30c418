"""The public token object (docs/admin-api.md), shared by the admin API and the CLI's ``--json``."""

from __future__ import annotations

from typing import Any

from authsvc.config import SecurityPolicy
from authsvc.rules.decision import effective_expiry, token_status
from authsvc.rules.durations import rfc3339
from authsvc.rules.tokens import TokenRecord, previous_secret_ends_at


def _time(epoch: float | None) -> str | None:
    return None if epoch is None else rfc3339(epoch)


def token_object(record: TokenRecord, policy: SecurityPolicy, now: float) -> dict[str, Any]:
    """Every field of the record plus the derived effective expiry and status; never the
    secret. ``effective_expires_at`` is when the token stops being accepted (the earlier of
    ``expires_at`` and the policy's maximum lifetime), so clients need not re-derive it;
    ``previous_secret_expires_at`` is when the previous secret of a rotation with a grace
    stops (the earlier of the grace's end and that expiry), null when none works now."""
    expiry = effective_expiry(record, policy)
    previous = previous_secret_ends_at(record, expiry)
    if previous is not None and previous <= now:
        previous = None  # over: that secret matches nothing any more
    return {
        "id": record.id,
        "name": record.name,
        "permissions": sorted(record.permissions),
        "ip_filter": record.ip_filter,
        "created_at": rfc3339(record.created_at),
        "expires_at": _time(record.expires_at),
        "effective_expires_at": _time(expiry),
        "previous_secret_expires_at": _time(previous),
        "status": token_status(record, policy, now),
        "created_by": record.created_by,
        "last_used_at": _time(record.last_used_at),
        "last_used_ip": record.last_used_ip,
        "rate_limit": record.rate_limit,
    }
