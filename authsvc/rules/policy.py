"""Issuance rules: what the security policy allows on create and on permission updates.

Pure functions shared by the admin API and the CLI. A refusal raises :class:`Refused`
with a stable ``code``; the HTTP layer maps codes to statuses in one place.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from authsvc.config import Config
from authsvc.rules.durations import format_duration, parse_duration
from authsvc.rules.ratelimit import SYNTAX, RateLimit, parse_rate_limit

NAME_MAX_LENGTH = 100


class Refused(Exception):  # a refusal, not a programming error
    """A request that the rules refuse; ``code`` is the API error code, ``field`` the one
    request field at fault (the admin API's body key, which is also the keyword of
    :func:`check_create`), or None when the refusal is about the whole request."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


@dataclass(frozen=True, slots=True)
class Issuance:
    """A validated create request."""

    name: str
    permissions: frozenset[str]
    expires_in: int | None  # seconds
    ip_filter: str | None
    rate_limit: RateLimit | None = None


def check_name(name: str) -> str:
    """1–100 characters, no control or invisible format characters (names reach headers
    and logs), no leading or trailing white space."""
    if not 1 <= len(name) <= NAME_MAX_LENGTH:
        raise Refused(
            "invalid_name", f"A token name has 1 to {NAME_MAX_LENGTH} characters.", field="name"
        )
    if name != name.strip():
        raise Refused(
            "invalid_name", "A token name may not start or end with white space.", field="name"
        )
    if any(unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp") for char in name):
        raise Refused(
            "invalid_name", "A token name may not contain control characters.", field="name"
        )
    return name


def check_permissions(config: Config, permissions: Sequence[str]) -> frozenset[str]:
    """A non-empty set of names from the current catalog."""
    if not permissions:
        raise Refused(
            "invalid_permissions", "A token needs at least one permission.", field="permissions"
        )
    unknown = sorted(set(permissions) - set(config.permissions))
    if unknown:
        raise Refused(
            "unknown_permission",
            f"Unknown permission {', '.join(unknown)}: see GET /admin/v1/permissions.",
            field="permissions",
        )
    return frozenset(permissions)


def check_expiry(config: Config, expires_in: str | None) -> int | None:
    """``expires_in`` in minutes, hours or days; required and bounded by ``max_lifetime``."""
    policy = config.policy
    if expires_in is None:
        if policy.max_lifetime is not None:
            raise Refused(
                "expiry_required",
                f"The security policy requires an expiry of at most {policy.max_lifetime_text}.",
                field="expires_in",
            )
        return None
    try:
        seconds = parse_duration(expires_in, units="mhd")
    except ValueError as error:
        raise Refused("invalid_expiry", str(error), field="expires_in") from None
    if policy.max_lifetime is not None and seconds > policy.max_lifetime:
        raise Refused(
            "expiry_too_long",
            f"Expiry {expires_in} exceeds the security policy's maximum lifetime of "
            f"{policy.max_lifetime_text or format_duration(policy.max_lifetime)}.",
            field="expires_in",
        )
    return seconds


def check_ip_filter(config: Config, ip_filter: str | None) -> str | None:
    """The enforced filter wins; asking for another is refused; names must exist."""
    enforced = config.policy.enforce_ip_filter
    if enforced is not None:
        if ip_filter is not None and ip_filter != enforced:
            raise Refused(
                "ip_filter_enforced",
                f"The security policy enforces the IP filter {enforced!r} on every token.",
                field="ip_filter",
            )
        return enforced
    if ip_filter is not None and ip_filter not in config.ip_filters:
        raise Refused(
            "unknown_ip_filter",
            f"Unknown IP filter {ip_filter!r}: see GET /admin/v1/ip-filters.",
            field="ip_filter",
        )
    return ip_filter


def check_rate_limit(config: Config, value: object) -> RateLimit | None:
    """A token's ``rate_limit`` (a limit as written, or None for none), within the
    policy's ``max_rate_limit``: required under one, and compared by rate (SPEC §12)."""
    if value is None:
        limit = None
    elif not isinstance(value, str):
        raise Refused("invalid_rate_limit", f"rate_limit must be {SYNTAX}, or null.", field=_RATE)
    else:
        try:
            limit = parse_rate_limit(value)
        except ValueError as error:
            raise Refused("invalid_rate_limit", f"rate_limit: {error}.", field=_RATE) from None
    highest = config.policy.max_rate_limit
    if highest is None:
        return limit
    if limit is None:
        raise Refused(
            "rate_limit_required",
            f"The security policy requires a rate limit of at most {highest.text}.",
            field=_RATE,
        )
    if limit.above(highest):
        raise Refused(
            "rate_limit_too_high",
            f"Rate limit {limit.text} is higher than the security policy's maximum of "
            f"{highest.text}.",
            field=_RATE,
        )
    return limit


_RATE = "rate_limit"


def check_tokens_enabled(config: Config) -> None:
    """No token can be created or changed while the policy switches tokens off."""
    if not config.policy.tokens_enabled:
        raise Refused("tokens_disabled", "The security policy has switched tokens off.")


def check_create(
    config: Config,
    *,
    name: str,
    permissions: Sequence[str],
    expires_in: str | None,
    ip_filter: str | None,
    rate_limit: object = None,
) -> Issuance:
    """Every issuance rule of docs/admin-api.md, in the order an operator would fix them."""
    check_tokens_enabled(config)
    return Issuance(
        name=check_name(name),
        permissions=check_permissions(config, permissions),
        expires_in=check_expiry(config, expires_in),
        ip_filter=check_ip_filter(config, ip_filter),
        rate_limit=check_rate_limit(config, rate_limit),
    )


def check_permission_update(config: Config, permissions: Sequence[str]) -> frozenset[str]:
    """PATCH: allowed only when the policy allows permission updates."""
    check_tokens_enabled(config)
    if not config.policy.allow_permission_updates:
        raise Refused(
            "permission_updates_disabled",
            "The security policy does not allow changing a token's permissions.",
        )
    return check_permissions(config, permissions)
