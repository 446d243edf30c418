"""Delegation bounds (least privilege): what a calling admin token can hand on.

Through the admin API the calling token (the *actor*) never creates, widens or takes over
(rotates) a token beyond its own permissions, expiry and IP filter; deleting is never
bounded (revocation must always be possible). The CLI acts as the host's operator and has
no actor record, so it is not bounded. These checks run after the policy's issuance rules
(:mod:`authsvc.rules.policy`): a request the policy refuses gets that 422 first, and only a
request the policy would carry out is judged against the actor (403 ``exceeds_caller``).

Pure functions: the actor's record and the time come in as arguments.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from authsvc.config import MANAGE_TOKENS, VIEW_TOKENS, SecurityPolicy
from authsvc.rules.decision import own_rate_limit
from authsvc.rules.durations import rfc3339
from authsvc.rules.policy import Issuance, Refused
from authsvc.rules.ratelimit import RateLimit, stricter
from authsvc.rules.tokens import TokenRecord

EXCEEDS_CALLER = "exceeds_caller"


def held_permissions(actor: TokenRecord) -> frozenset[str]:
    """The permissions the actor can hand on: its own, where Manage includes View."""
    if MANAGE_TOKENS in actor.permissions:
        return actor.permissions | {VIEW_TOKENS}
    return actor.permissions


def bound_create(
    actor: TokenRecord, issuance: Issuance, policy: SecurityPolicy, created_at: float
) -> Issuance:
    """The issuance the actor may carry out: ``issuance`` itself, or with the actor's own
    IP filter filled in where the new token must inherit it. Raises :class:`Refused`
    (``exceeds_caller``, naming the input at fault) for anything beyond the actor."""
    _within_permissions(actor, issuance.permissions, "the new token", field="permissions")
    expires_at = None if issuance.expires_in is None else created_at + issuance.expires_in
    _within_expiry(actor, expires_at, "the new token", field="expires_in")
    within_rate_limit(actor, issuance.rate_limit, policy, "the new token", field="rate_limit")
    inherited = _inherited_filter(actor, policy)
    if inherited is None or issuance.ip_filter == inherited:
        return issuance
    if issuance.ip_filter is None:
        return replace(issuance, ip_filter=inherited)
    raise _exceeds(
        f"The calling token is limited to the IP filter {inherited!r}: a token it creates "
        f"gets that filter, not {issuance.ip_filter!r}.",
        field="ip_filter",
    )


def bound_update(actor: TokenRecord, target: TokenRecord, permissions: Iterable[str]) -> None:
    """PATCH: the target's current permissions and the new set both lie within the
    actor's. A target beyond the actor cannot be changed at all (no one input is at
    fault); a new set beyond it names ``permissions``."""
    _within_permissions(actor, target.permissions, f"the token {target.id}", field=None)
    _within_permissions(actor, permissions, "the new permission set", field="permissions")


def bound_rate_limit_update(
    actor: TokenRecord, target: TokenRecord, limit: RateLimit | None, policy: SecurityPolicy
) -> None:
    """PATCH of ``rate_limit``: the target lies within the actor's permissions (as for a
    permission change), and the new limit within the actor's own."""
    _within_permissions(actor, target.permissions, f"the token {target.id}", field=None)
    within_rate_limit(actor, limit, policy, "the token", field="rate_limit")


def bound_rotate(actor: TokenRecord, target: TokenRecord, policy: SecurityPolicy) -> None:
    """Rotate hands out the target's new secret, so the target must lie within the
    actor's reach as if the actor were creating it: permissions, expiry and IP filter.
    The request names no input, so the refusal names no field."""
    whose = f"the token {target.id}"
    _within_permissions(actor, target.permissions, whose, field=None)
    _within_expiry(actor, target.expires_at, whose, field=None)
    within_rate_limit(actor, own_rate_limit(target), policy, whose, field=None)
    inherited = _inherited_filter(actor, policy)
    if inherited is not None and target.ip_filter != inherited:
        shown = (
            "no IP filter" if target.ip_filter is None else f"the IP filter {target.ip_filter!r}"
        )
        raise _exceeds(
            f"The calling token is limited to the IP filter {inherited!r}, and {whose} has "
            f"{shown}: only a token within the caller's reach can be rotated by it."
        )


def _inherited_filter(actor: TokenRecord, policy: SecurityPolicy) -> str | None:
    """The filter every token the actor hands out must carry: the actor's own, unless the
    policy enforces one (which then applies to every token alike and is not compared)."""
    return None if policy.enforce_ip_filter is not None else actor.ip_filter


def _within_permissions(
    actor: TokenRecord, permissions: Iterable[str], whose: str, *, field: str | None
) -> None:
    beyond = sorted(set(permissions) - held_permissions(actor))
    if beyond:
        raise _exceeds(
            f"The calling token does not hold {', '.join(beyond)}, which {whose} would have: "
            "a token can hand on only permissions it holds.",
            field=field,
        )


def _within_expiry(
    actor: TokenRecord, expires_at: float | None, whose: str, *, field: str | None
) -> None:
    """With an expiry of its own, the actor hands on only tokens that expire no later.
    The policy's max_lifetime is left out: it bounds every token alike."""
    limit = actor.expires_at
    if limit is None:
        return
    if expires_at is None:
        raise _exceeds(
            f"The calling token expires at {rfc3339(limit)}, and {whose} would never expire: "
            "it must expire no later than the caller.",
            field=field,
        )
    if expires_at > limit:
        raise _exceeds(
            f"{whose[0].upper()}{whose[1:]} would expire at {rfc3339(expires_at)}, after the "
            f"calling token's own expiry at {rfc3339(limit)}.",
            field=field,
        )


def within_rate_limit(
    actor: TokenRecord,
    limit: RateLimit | None,
    policy: SecurityPolicy,
    whose: str,
    *,
    field: str | None,
) -> None:
    """With a rate limit (its own, or the policy's lower maximum), the actor hands on only
    tokens limited no higher: a limited token must not mint an unlimited one."""
    own = own_rate_limit(actor)
    if own is None:
        # The policy's maximum alone bounds every token alike (like max_lifetime): the
        # issuance rules have already applied it.
        return
    ceiling = stricter(own, policy.max_rate_limit)
    if limit is None:
        raise _exceeds(
            f"The calling token is limited to {ceiling.text}, and {whose} would have no rate "
            "limit: it must be limited no higher than the caller.",
            field=field,
        )
    if limit.above(ceiling):
        raise _exceeds(
            f"{whose[0].upper()}{whose[1:]} would be limited to {limit.text}, higher than the "
            f"calling token's own limit of {ceiling.text}.",
            field=field,
        )


def _exceeds(message: str, *, field: str | None = None) -> Refused:
    return Refused(EXCEEDS_CALLER, message, field=field)
