"""The acceptance rules of docs/auth-endpoint.md as pure functions.

Decisions are recomputed on every request from the current configuration and a cached
token record: records are cached, decisions never are, so a configuration reload is only
a reference swap.

Each rule is one function (:func:`is_expired`, :func:`ip_rule`, :func:`granting_template`)
that :func:`decide` calls in order, stopping at the first refusal, and that
:mod:`authsvc.rules.explain` calls all of, to show every outcome: the two can only
disagree on the order, which tests hold them to (tests/adversarial/test_explain_agrees.py).
The hot path pays nothing for it: the filter rule and the template that decide are
prebuilt objects that the matchers return instead of True, and bench/micro.py measures
decide() as fast as before.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from typing import Literal

from authsvc.config import MANAGE_TOKENS, VIEW_TOKENS, Config, SecurityPolicy
from authsvc.rules.endpoints import EndpointTemplate, PermissionMatcher
from authsvc.rules.ipfilter import DEFAULT_DENY, FilterRule, IPAddress
from authsvc.rules.ratelimit import RateLimit, parse_rate_limit, stricter
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
    RATE_LIMITED = "rate_limited"
    BAD_REQUEST = "bad_request"
    BAD_PATH = "bad_path"
    STORE_UNAVAILABLE = "store_unavailable"


#: The status ``/auth`` answers with for each reason (docs/auth-endpoint.md): used by the
#: auth listener's prepared answers and by explain (the CLI's too, without aiohttp).
AUTH_STATUS: dict[Reason, int] = {
    Reason.OK: 200,
    Reason.MISSING_TOKEN: 401,
    Reason.MALFORMED_TOKEN: 401,
    Reason.INVALID_TOKEN: 401,
    Reason.EXPIRED: 401,
    Reason.TOKENS_DISABLED: 401,
    Reason.IP_NOT_ALLOWED: 403,
    Reason.PERMISSION_DENIED: 403,
    Reason.RATE_LIMITED: 403,
    Reason.BAD_REQUEST: 403,
    Reason.BAD_PATH: 403,
    Reason.STORE_UNAVAILABLE: 503,
}

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


@lru_cache(maxsize=1024)  # a handful of distinct limits are written; parsing is not free
def _parsed_limit(text: str) -> RateLimit:
    return parse_rate_limit(text)


def own_rate_limit(record: TokenRecord) -> RateLimit | None:
    """The token's own limit (None: none). A stored text is known good (it was checked when
    written); one a hand-edited store holds fails closed here (ValueError)."""
    return None if record.rate_limit is None else _parsed_limit(record.rate_limit)


def effective_rate_limit(record: TokenRecord, policy: SecurityPolicy) -> RateLimit | None:
    """The limit ``/auth`` applies: the lower of the token's own and the policy's
    ``max_rate_limit`` (like ``max_lifetime``, the maximum applies at use); None: none."""
    return stricter(own_rate_limit(record), policy.max_rate_limit)


def is_expired(record: TokenRecord, policy: SecurityPolicy, now: float) -> bool:
    """Rule 2: expired from the effective expiry on (``now == expiry`` is expired)."""
    expiry = effective_expiry(record, policy)
    return expiry is not None and now >= expiry


def effective_ip_filter(record: TokenRecord, policy: SecurityPolicy) -> str | None:
    """Rule 4: the enforced filter overrides the token's own."""
    return policy.enforce_ip_filter or record.ip_filter


def ip_rule(record: TokenRecord, client_ip: IPAddress, config: Config) -> FilterRule | None:
    """Rule 4: the rule of the token's effective filter that decides for ``client_ip``;
    None when no filter applies. A filter that has disappeared from the configuration
    denies every address (``DEFAULT_DENY``)."""
    filter_name = config.policy.enforce_ip_filter or record.ip_filter
    if filter_name is None:
        return None
    ip_filter = config.ip_filters.get(filter_name)
    return DEFAULT_DENY if ip_filter is None else ip_filter.rule_for(client_ip)


def granting_template(
    record: TokenRecord, method: str, segments: tuple[str, ...], config: Config
) -> EndpointTemplate | None:
    """Rule 5: a template of the token's permissions that grants the request, or None."""
    return grants(config, record.permissions).first_match(method, segments)


def check_token(record: TokenRecord, client_ip: IPAddress, config: Config, now: float) -> Reason:
    """Rules 2–4 (tokens switched on, expiry, IP filter), in the order that decides which
    refusal is reported: ``OK`` or the reason to refuse."""
    policy = config.policy
    if not policy.tokens_enabled:
        return Reason.TOKENS_DISABLED
    if is_expired(record, policy, now):
        return Reason.EXPIRED
    rule = ip_rule(record, client_ip, config)
    if rule is not None and not rule.allow:
        return Reason.IP_NOT_ALLOWED
    return Reason.OK


def decide(record: TokenRecord, described: Described, config: Config, now: float) -> Reason:
    """Rules 2–5 for a request to the protected API (rule 1, the digest lookup, is done)."""
    reason = check_token(record, described.client_ip, config, now)
    if reason is not Reason.OK:
        return reason
    # granting_template(), inlined: one call less on the hot path
    matcher = grants(config, record.permissions)
    if matcher.first_match(described.method, described.segments) is not None:
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
