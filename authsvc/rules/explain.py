"""Why ``/auth`` would answer what it answers, and RFC 7662 introspection: every check of
docs/auth-endpoint.md with its outcome, for the admin API's explain and introspect calls
and the CLI's ``authsvc explain``.

Explaining runs the very functions :func:`~authsvc.rules.decision.decide` runs
(``is_expired``, ``ip_rule``, ``granting_template``), but all of them rather than up to the
first refusal, and reports the first refusal in ``decide``'s order as the answer. Nothing
here counts anything: no usage, no lookup budget, no metrics. Pure: the caller finds the
token record and hands over the configuration and ``now``.

Details echo the request's method and path (that is their point) but never a secret:
anything shaped like one is redacted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from authsvc.config import Config
from authsvc.rules.decision import (
    AUTH_STATUS,
    Reason,
    effective_expiry,
    effective_ip_filter,
    effective_rate_limit,
    granting_template,
    ip_rule,
    is_expired,
)
from authsvc.rules.durations import rfc3339
from authsvc.rules.endpoints import EndpointTemplate
from authsvc.rules.ipfilter import DEFAULT_DENY, IPAddress, NetworkSet
from authsvc.rules.request import Described, Rejected, describe
from authsvc.rules.tokens import (
    TokenRecord,
    has_token_shape,
    has_valid_checksum,
    previous_secret_ends_at,
    redact_secrets,
    secret_ended,
)

#: ``describe()`` is given a fixed TCP peer that no list trusts, so it reads only the method
#: and the target: the client address of an explanation is given on its own.
_UNTRUSTED = NetworkSet.compile([])
_ANY_PEER = "192.0.2.1"


#: Every check an explanation may list, in the order it lists them.
CHECK_NAMES = (
    "token",
    "request",
    "tokens_enabled",
    "expiry",
    "ip_filter",
    "permission",
    "rate_limit",
)


@dataclass(frozen=True, slots=True)
class Check:
    """One check and its outcome; ``refusal`` is the reason ``/auth`` gives when it fails."""

    check: str
    passed: bool
    detail: str
    refusal: Reason

    def as_json(self) -> dict[str, Any]:
        return {"check": self.check, "passed": self.passed, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Explanation:
    """What ``/auth`` would answer, and why."""

    reason: Reason
    checks: tuple[Check, ...]
    matched_endpoint: str | None  # "Permission: METHOD /template" that grants the request
    ip_rule: str | None  # the filter rule that decided; None when no filter applies

    @property
    def status(self) -> int:
        return AUTH_STATUS[self.reason]

    def as_json(self) -> dict[str, Any]:
        """The answer of ``POST /admin/v1/explain`` (and ``authsvc explain --json``)."""
        return {
            "status": self.status,
            "reason": self.reason.value,
            "checks": [check.as_json() for check in self.checks],
            "matched_endpoint": self.matched_endpoint,
            "ip_rule": self.ip_rule,
        }


@dataclass(frozen=True, slots=True)
class TokenFound:
    """The token being explained; ``how`` says how it was found (for the detail)."""

    record: TokenRecord
    how: str


@dataclass(frozen=True, slots=True)
class TokenRefused:
    """The presented secret identifies no token. ``before_request`` is True for a refusal
    ``/auth`` makes before it reads the request description (a malformed secret); an
    unknown secret and a store outage come after it."""

    reason: Reason
    detail: str
    before_request: bool = False


TokenFinding = TokenFound | TokenRefused


@dataclass(frozen=True, slots=True)
class Bucket:
    """A token's rate-limit bucket as the limiter sees it now, nothing taken from it: whole
    requests left, and seconds until one fits when none is left."""

    remaining: int
    retry_after: int


UNKNOWN_SECRET = TokenRefused(
    Reason.INVALID_TOKEN,
    "No live token has this secret: it is unknown, its token was deleted, or it was "
    "replaced by a rotation.",
)
STORE_DOWN = TokenRefused(
    Reason.STORE_UNAVAILABLE,
    "The token store cannot be reached and the token is not in this instance's cache.",
)


def secret_problem(secret: str) -> TokenRefused | None:
    """Why ``/auth`` refuses ``secret`` before looking it up, or None if it would look."""
    if not has_token_shape(secret):
        return TokenRefused(
            Reason.MALFORMED_TOKEN,
            "The secret is malformed: it is not authsvc_ followed by 49 letters and digits.",
            before_request=True,
        )
    if not has_valid_checksum(secret):
        return TokenRefused(
            Reason.MALFORMED_TOKEN,
            "The secret is malformed: its checksum does not match (a typo or a made-up secret).",
            before_request=True,
        )
    return None


def explain(
    finding: TokenFinding,
    *,
    method: str,
    uri: str,
    client_ip: IPAddress | None,
    config: Config,
    now: float,
    bucket: Bucket | None = None,
) -> Explanation:
    """Explain ``/auth``'s answer for a token, method, raw request target and client
    address (None: no address, which fails any IP filter) under ``config`` at ``now``;
    ``bucket`` is the token's rate-limit bucket where this process keeps it (None: the
    count is not known here, and the limit is taken to pass)."""
    described = describe(method, uri, None, _ANY_PEER, _UNTRUSTED)
    request = _request_check(described, uri)
    if isinstance(finding, TokenRefused):
        token = Check("token", False, finding.detail, finding.reason)
        order = (token, request) if finding.before_request else (request, token)
        return Explanation(_first_refusal(order), (token, request), None, None)
    record = finding.record
    if secret_ended(record, now):
        # a previous secret whose grace is over matches nothing, as if it were unknown
        ended = TokenRefused(Reason.INVALID_TOKEN, _previous_detail(record, ended=True))
        return explain(ended, method=method, uri=uri, client_ip=client_ip, config=config, now=now)
    how = _previous_detail(record, ended=False) if record.via_previous else finding.how
    token = Check("token", True, f"{_who(record)}, {how}.", Reason.INVALID_TOKEN)
    (enabled, expiry, ip_check), rule = token_checks(record, client_ip, config, now)
    checks = [token, request, enabled, expiry, ip_check]
    matched: str | None = None
    if isinstance(described, Described):
        permission, matched = _permission_check(record, described, config)
        checks.append(permission)
    checks.append(_rate_check(record, config, bucket))
    # ``decide``'s order: the request description, then rules 2–5, then the rate limit.
    return Explanation(_first_refusal(checks), tuple(checks), matched, rule)


def token_checks(
    record: TokenRecord, client_ip: IPAddress | None, config: Config, now: float
) -> tuple[tuple[Check, Check, Check], str | None]:
    """Rules 2–4 (tokens switched on, expiry, IP filter) in ``decide``'s order, what makes
    a token usable whatever the request (introspection asks only this); and the text of
    the filter rule that decided (None when no filter applies)."""
    policy = config.policy
    enabled = Check(
        "tokens_enabled",
        policy.tokens_enabled,
        "security_policy.tokens_enabled is true."
        if policy.tokens_enabled
        else "security_policy.tokens_enabled is false: every token is refused.",
        Reason.TOKENS_DISABLED,
    )
    expired = is_expired(record, policy, now)
    expiry = Check("expiry", not expired, _expiry_detail(record, config, expired), Reason.EXPIRED)
    ip_check, rule = _ip_check(record, client_ip, config)
    return (enabled, expiry, ip_check), rule


def _first_refusal(checks: list[Check] | tuple[Check, ...]) -> Reason:
    return next((check.refusal for check in checks if not check.passed), Reason.OK)


def _who(record: TokenRecord) -> str:
    return redact_secrets(f"{record.id} ({record.name!r})")


def _previous_detail(record: TokenRecord, *, ended: bool) -> str:
    grace = record.grace_ends_at
    until = "" if grace is None else rfc3339(grace)
    if ended:
        return (
            f"This was the previous secret of {_who(record)}; the grace after its rotation "
            f"ended at {until}, so it matches nothing any more."
        )
    return f"found by its previous secret, which works until the grace ends at {until}"


def _request_check(described: Described | Rejected, uri: str) -> Check:
    if isinstance(described, Rejected):
        return Check("request", False, described.detail, Reason(described.reason))
    detail = f"{described.method} {described.path}"
    if described.path != uri.partition("?")[0]:
        detail += " (the path as matched, its escapes normalised)"
    return Check("request", True, redact_secrets(detail), Reason.BAD_REQUEST)


def _expiry_detail(record: TokenRecord, config: Config, expired: bool) -> str:
    expiry = effective_expiry(record, config.policy)
    if expiry is None:
        return "The token has no expiry and the policy sets no max_lifetime."
    by_policy = expiry != record.expires_at
    source = (
        f" (created_at + the policy's max_lifetime {config.policy.max_lifetime_text})"
        if by_policy
        else ""
    )
    verb = "Expired at" if expired else "Expires at"
    return f"{verb} {rfc3339(expiry)}{source}."


def _ip_check(
    record: TokenRecord, client_ip: IPAddress | None, config: Config
) -> tuple[Check, str | None]:
    """Rule 4 with ``decide``'s own ``ip_rule``; the check and the deciding rule's text."""
    refused = Reason.IP_NOT_ALLOWED
    name = effective_ip_filter(record, config.policy)
    enforced = " (enforced by the security policy)" if config.policy.enforce_ip_filter else ""
    if client_ip is None:
        if name is None:
            return Check("ip_filter", True, "No IP filter applies to this token.", refused), None
        detail = f"{name}{enforced}: no client address given, so the filter cannot pass."
        return Check("ip_filter", False, detail, refused), DEFAULT_DENY.text
    rule = ip_rule(record, client_ip, config)
    if rule is None:
        return Check("ip_filter", True, "No IP filter applies to this token.", refused), None
    if name not in config.ip_filters:
        detail = f"{name}{enforced} no longer exists in the configuration: it denies every address."
    elif rule is DEFAULT_DENY:
        detail = f"{name}{enforced}: default deny (no rule matches {client_ip})."
    else:
        detail = f"{name}{enforced}: {rule.text}"
    return Check("ip_filter", rule.allow, detail, refused), rule.text


def _permission_of(template: EndpointTemplate, record: TokenRecord, config: Config) -> str:
    """The token's permission (first by name, as the matcher was built) holding
    ``template``."""
    catalog = config.permissions
    for name in sorted(record.permissions):
        permission = catalog.get(name)
        if permission is not None and any(t is template for t in permission.endpoints):
            return name
    return "?"  # unreachable: the matcher holds only the token's templates


def _permission_check(
    record: TokenRecord, described: Described, config: Config
) -> tuple[Check, str | None]:
    template = granting_template(record, described.method, described.segments, config)
    refused = Reason.PERMISSION_DENIED
    if template is not None:
        matched = f"{_permission_of(template, record, config)}: {template.text}"
        return Check("permission", True, matched, refused), matched
    held = sorted(record.permissions)
    gone = [name for name in held if name not in config.permissions]
    detail = (
        f"No permission of the token ({', '.join(held)}) has a template that matches "
        f"{described.method} {described.path}."
    )
    if gone:
        detail += f" No longer in the catalog, so granting nothing: {', '.join(gone)}."
    return Check("permission", False, redact_secrets(detail), refused), None


def _rate_check(record: TokenRecord, config: Config, bucket: Bucket | None) -> Check:
    """The rate limit, taken from only when every other check passes (so it comes last)."""
    refused = Reason.RATE_LIMITED
    limit = effective_rate_limit(record, config.policy)
    if limit is None:
        return Check("rate_limit", True, "No rate limit applies to this token.", refused)
    by_policy = limit is config.policy.max_rate_limit and record.rate_limit != limit.text
    what = f"Limited to {limit.text}" + (" (the policy's max_rate_limit)" if by_policy else "")
    if bucket is None:
        detail = f"{what}; its count is kept by the serving instances, not known here."
        return Check("rate_limit", True, detail, refused)
    if bucket.remaining >= 1:
        return Check("rate_limit", True, f"{what}: {bucket.remaining} left now.", refused)
    detail = f"{what}: used up; the next request fits in {bucket.retry_after} s."
    return Check("rate_limit", False, detail, refused)


def introspection(
    record: TokenRecord | None, client_ip: IPAddress | None, config: Config, now: float
) -> dict[str, Any]:
    """RFC 7662's answer: ``{"active": false}`` unless the token is usable now (rules 2–4,
    the IP filter against ``client_ip``; None fails any filter)."""
    if record is None:
        return {"active": False}
    checks, _ = token_checks(record, client_ip, config, now)
    if secret_ended(record, now) or not all(check.passed for check in checks):
        return {"active": False}
    # Permissions no longer in the catalog grant nothing: a gateway must not see them.
    scope = " ".join(sorted(name for name in record.permissions if name in config.permissions))
    answer: dict[str, Any] = {
        "active": True,
        "sub": record.id,
        "scope": scope,
        "iat": int(record.created_at),
    }
    expiry = effective_expiry(record, config.policy)
    if record.via_previous:  # a previous secret stops at its grace's end, if earlier
        expiry = previous_secret_ends_at(record, expiry)
    if expiry is not None:
        answer["exp"] = int(expiry)
    answer["token_type"] = "bearer"  # noqa: S105 - RFC 7662's token type, not a password
    answer["name"] = record.name
    return answer
