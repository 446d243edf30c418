"""The acceptance rules of docs/auth-endpoint.md as pure functions.

Decisions are recomputed on every request from the current configuration and a cached
token record: records are cached, decisions never are, so a configuration reload is only
a reference swap.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from authsvc.config import MANAGE_TOKENS, VIEW_TOKENS, Config, SecurityPolicy
from authsvc.rules.endpoints import PermissionMatcher
from authsvc.rules.ipfilter import IPAddress
from authsvc.rules.request import Described
from authsvc.rules.tokens import TokenRecord


class Reason(StrEnum):
    """The ``X-Auth-Reason`` codes of docs/auth-endpoint.md."""

    OK = "ok"
    MISSING_TOKEN = "missing_token"
    MALFORMED_TOKEN = "malformed_token"
    INVALID_TOKEN = "invalid_token"
    EXPIRED = "expired"
    TOKENS_DISABLED = "tokens_disabled"
    IP_NOT_ALLOWED = "ip_not_allowed"
    PERMISSION_DENIED = "permission_denied"
    BAD_REQUEST = "bad_request"
    BAD_PATH = "bad_path"
    STORE_UNAVAILABLE = "store_unavailable"


Status = Literal["active", "expired", "blocked"]


def effective_expiry(record: TokenRecord, policy: SecurityPolicy) -> float | None:
    """When rule 2 stops accepting the token: the earlier of its own ``expires_at`` and
    ``created_at + max_lifetime`` (the policy's maximum counts from creation, so tightening
    it blocks older tokens without rewriting them); None when neither is set."""
    expires_at = record.expires_at
    if policy.max_lifetime is None:
        return expires_at
    cap = record.created_at + policy.max_lifetime
    return cap if expires_at is None or cap < expires_at else expires_at


def is_expired(record: TokenRecord, policy: SecurityPolicy, now: float) -> bool:
    """Rule 2: expired from the effective expiry on (``now == expiry`` is expired)."""
    expiry = effective_expiry(record, policy)
    return expiry is not None and now >= expiry


def effective_ip_filter(record: TokenRecord, policy: SecurityPolicy) -> str | None:
    """Rule 4: the enforced filter overrides the token's own."""
    return policy.enforce_ip_filter or record.ip_filter


def check_token(record: TokenRecord, client_ip: IPAddress, config: Config, now: float) -> Reason:
    """Rules 2–4 (expiry, tokens switched on, IP filter): ``OK`` or the reason to refuse."""
    policy = config.policy
    if not policy.tokens_enabled:
        return Reason.TOKENS_DISABLED
    if is_expired(record, policy, now):
        return Reason.EXPIRED
    filter_name = effective_ip_filter(record, policy)
    if filter_name is not None:
        ip_filter = config.ip_filters.get(filter_name)
        # A filter that has disappeared from the configuration denies every address.
        if ip_filter is None or not ip_filter.allows(client_ip):
            return Reason.IP_NOT_ALLOWED
    return Reason.OK


def decide(record: TokenRecord, described: Described, config: Config, now: float) -> Reason:
    """Rules 2–5 for a request to the protected API (rule 1, the digest lookup, is done)."""
    reason = check_token(record, described.client_ip, config, now)
    if reason is not Reason.OK:
        return reason
    if grants(config, record.permissions).matches(described.method, described.segments):
        return Reason.OK
    return Reason.PERMISSION_DENIED


MAX_MERGED_MATCHERS = 4096


def grants(config: Config, permissions: frozenset[str]) -> PermissionMatcher:
    """One matcher for every endpoint of ``permissions`` under ``config``: a request walks
    one trie instead of one per permission. Names no longer in the catalog grant nothing.
    Built once per (configuration, permission set); tokens share few distinct sets."""
    matcher = config.matchers.get(permissions)
    if matcher is None:
        catalog = config.permissions
        matcher = PermissionMatcher(
            [
                template
                for name in sorted(permissions)
                if name in catalog
                for template in catalog[name].endpoints
            ]
        )
        if len(config.matchers) >= MAX_MERGED_MATCHERS:
            config.matchers.clear()  # pathological variety: stay bounded
        config.matchers[permissions] = matcher
    return matcher


def admin_access(
    record: TokenRecord, client_ip: IPAddress, config: Config, now: float, *, write: bool
) -> Reason:
    """May this token use the admin API? Reads need View or Manage, writes need Manage."""
    reason = check_token(record, client_ip, config, now)
    if reason is not Reason.OK:
        return reason
    if MANAGE_TOKENS in record.permissions:
        return Reason.OK
    if not write and VIEW_TOKENS in record.permissions:
        return Reason.OK
    return Reason.PERMISSION_DENIED


def token_status(record: TokenRecord, policy: SecurityPolicy, now: float) -> Status:
    """The derived status shown by the admin API and the CLI."""
    if not policy.tokens_enabled:
        return "blocked"
    if is_expired(record, policy, now):
        return "expired"
    return "active"
