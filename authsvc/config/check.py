"""Why the policy in a configuration would refuse an existing token (``config check``)."""

from __future__ import annotations

from authsvc.config import Config
from authsvc.rules.decision import (
    effective_expiry,
    effective_ip_filter,
    effective_rate_limit,
    is_expired,
)
from authsvc.rules.durations import rfc3339
from authsvc.rules.tokens import TokenRecord


def refusals(record: TokenRecord, config: Config, now: float) -> list[str]:
    """Sentences naming each acceptance rule (docs/auth-endpoint.md) the token fails under
    ``config``, ignoring the client address and the request (they are not known here)."""
    policy = config.policy
    reasons = []
    if not policy.tokens_enabled:
        reasons.append("tokens are switched off (tokens_enabled: false)")
    if is_expired(record, policy, now):
        if record.expires_at is not None and effective_expiry(record, policy) == record.expires_at:
            reasons.append(f"expired at {rfc3339(record.expires_at)}")
        else:
            reasons.append(
                f"expired by max_lifetime {policy.max_lifetime_text} "
                f"(created {rfc3339(record.created_at)})"
            )
    filter_name = effective_ip_filter(record, policy)
    if filter_name is not None and filter_name not in config.ip_filters:
        reasons.append(f"IP filter {filter_name!r} is missing: every address is denied")
    unknown = sorted(record.permissions - set(config.permissions))
    if unknown:
        known = len(record.permissions) - len(unknown)
        reasons.append(
            f"unknown permission(s) {', '.join(unknown)}"
            + ("" if known else ": the token grants nothing")
        )
    return reasons


def lowered_limit(record: TokenRecord, config: Config) -> str | None:
    """Why the policy's ``max_rate_limit`` lowers the token's own rate limit at use (a token
    above the maximum keeps working, limited to the maximum), or None when it does not."""
    highest = config.policy.max_rate_limit
    if highest is None or effective_rate_limit(record, config.policy) is not highest:
        return None
    if record.rate_limit is None:
        return f"has no rate limit: max_rate_limit {highest.text} applies"
    return f"rate limit {record.rate_limit} is above max_rate_limit {highest.text}, which applies"
