"""What every /auth answer of the soak must be, from the pure rules.

The timeline records, on the wall clock, each configuration the soak wrote and each
token state it made (the record as the admin API or the CLI reported it, and the current
secret), with the interval during which the change may or may not have reached the
server yet. An answer is checked when neither the configuration nor its token changed
during the request (those are counted "in transition") and no expiry instant of the token
falls within it; it must then be exactly what ``describe`` + ``decide`` say, in the order
of docs/auth-endpoint.md. During a store outage that the soak provokes, a request that
reaches the lookup may also be answered 503 ``store_unavailable``; nothing else may be 5xx.
"""

from __future__ import annotations

import bisect
import enum
from dataclasses import dataclass, field
from typing import TypeVar

from authsvc.config import Config
from authsvc.rules.decision import Reason, decide, effective_expiry
from authsvc.rules.request import Described, Rejected, describe
from authsvc.rules.tokens import TokenRecord, is_well_formed
from tests.soak.workload import Probe

T = TypeVar("T")
PEER = "127.0.0.1"  # the soak talks to the server over loopback only
#: Clock slack around an expiry instant. Times shown by the admin API are whole seconds
#: (rounded down), so the true instant lies in [shown, shown + 1): that second is added.
EXPIRY_SLACK = 0.25
STATUS = {
    Reason.OK: 200,
    Reason.MISSING_TOKEN: 401,
    Reason.MALFORMED_TOKEN: 401,
    Reason.INVALID_TOKEN: 401,
    Reason.EXPIRED: 401,
    Reason.TOKENS_DISABLED: 401,
    Reason.IP_NOT_ALLOWED: 403,
    Reason.PERMISSION_DENIED: 403,
    Reason.BAD_REQUEST: 403,
    Reason.BAD_PATH: 403,
    Reason.STORE_UNAVAILABLE: 503,
}


class Verdict(enum.StrEnum):
    """How one answer was judged."""

    CHECKED = "checked"  # compared with the rules, and right
    WRONG = "wrong"  # compared with the rules, and wrong
    CONFIG = "in transition: configuration"
    TOKEN = "in transition: token"
    EXPIRY = "in transition: expiry instant"
    OUTAGE = "store outage 503"  # accepted: provoked by the soak, the token was uncached
    SERVER_ERROR = "5xx"
    NO_ANSWER = "no answer"


@dataclass(frozen=True, slots=True)
class TokenState:
    """A token as it stands: its record and its one current secret."""

    record: TokenRecord
    secret: str


@dataclass(frozen=True, slots=True)
class Answer:
    """One request and what came back (status 0: no answer); times are wall clock."""

    probe: Probe
    start: float
    end: float
    status: int
    reason: str
    token_id: str  # X-Auth-Token-Id ('' when absent)


@dataclass(frozen=True, slots=True)
class Judgement:
    verdict: Verdict
    expected: tuple[int, str] | None = None
    detail: str = ""


def _overlaps(windows: list[tuple[float, float]], start: float, end: float) -> bool:
    return any(low <= end and start <= high for low, high in windows)


def _at(history: list[tuple[float, T]], moment: float) -> T | None:
    """The value in force at ``moment``: the last one recorded at or before it."""
    index = bisect.bisect_right([when for when, _ in history], moment) - 1
    return history[index][1] if index >= 0 else None


@dataclass
class Timeline:
    """Configurations and token states over time, and when each was in transition."""

    configs: list[tuple[float, Config]] = field(default_factory=list)
    config_windows: list[tuple[float, float]] = field(default_factory=list)
    tokens: dict[str, list[tuple[float, TokenState | None]]] = field(default_factory=dict)
    token_windows: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)  # secret -> token id, ever
    outages: list[tuple[float, float]] = field(default_factory=list)

    def configure(self, start: float, end: float, config: Config) -> None:
        """``config`` replaced the previous one at some instant within [start, end]."""
        if self.configs:  # the first one was there before any request
            self.config_windows.append((start, end))
        self.configs.append((start, config))

    def token(self, token_id: str, start: float, end: float, state: TokenState | None) -> None:
        """The token became ``state`` (None: deleted) at some instant within [start, end].

        A new token's window is harmless: nobody holds its secret before ``end``."""
        self.token_windows.setdefault(token_id, []).append((start, end))
        self.tokens.setdefault(token_id, []).append((start, state))
        if state is not None:
            self.owners[state.secret] = token_id

    def outage(self, start: float, end: float) -> None:
        """The store was cut off (or recovering) within [start, end]."""
        self.outages.append((start, end))

    def state(self, token_id: str, moment: float) -> TokenState | None:
        """The token's state at ``moment`` (None: deleted or not yet created)."""
        return _at(self.tokens.get(token_id, []), moment)

    def config(self, moment: float) -> Config:
        """The configuration written last at or before ``moment``."""
        found = _at(self.configs, moment)
        assert found is not None, "no configuration before the first request"
        return found


def _presented(values: tuple[str, ...]) -> str | Reason:
    """The secret in exactly one ``Bearer`` header (scheme in any case, spaces around the
    secret ignored), or why there is none."""
    if not values:
        return Reason.MISSING_TOKEN
    scheme, _, secret = values[0].partition(" ")
    secret = secret.strip(" ")
    if len(values) > 1 or scheme.lower() != "bearer" or not is_well_formed(secret):
        return Reason.MALFORMED_TOKEN
    return secret


def _expected(reason: Reason) -> tuple[int, str]:
    return STATUS[reason], reason.value


@dataclass(frozen=True, slots=True)
class _Expected:
    """What the rules say about a request: the answer (None: in transition, ``verdict``
    says which), whether the service may have had to look the token up (then, during an
    outage, 503 is an acceptable answer too), and the token allowed, if any."""

    answer: tuple[int, str] | None
    verdict: Verdict = Verdict.CHECKED
    lookup: bool = True
    token_id: str = ""


def _token_rules(
    secret: str, described: Described, config: Config, answer: Answer, timeline: Timeline
) -> _Expected:
    """Rules 4-8 (the lookup onwards) for a well-formed secret and a usable description."""
    start, end = answer.start, answer.end
    owner = timeline.owners.get(secret)
    if owner is not None and _overlaps(timeline.token_windows.get(owner, []), start, end):
        return _Expected(None, Verdict.TOKEN)
    state = None if owner is None else timeline.state(owner, start)
    if state is None or state.secret != secret:
        return _Expected(_expected(Reason.INVALID_TOKEN))
    expiry = effective_expiry(state.record, config.policy)
    if expiry is not None and expiry - EXPIRY_SLACK <= end and start <= expiry + 1 + EXPIRY_SLACK:
        return _Expected(None, Verdict.EXPIRY)
    reason = decide(state.record, described, config, start)
    return _Expected(_expected(reason), token_id=state.record.id)


def expect(answer: Answer, timeline: Timeline) -> _Expected:
    """What the rules say ``answer`` must be (docs/auth-endpoint.md, "The rules, in order")."""
    probe = answer.probe
    secret = _presented(probe.authorization)
    if isinstance(secret, Reason):
        return _Expected(_expected(secret), lookup=False)
    if _overlaps(timeline.config_windows, answer.start, answer.end):
        return _Expected(None, Verdict.CONFIG)  # the description may be usable under one
    config = timeline.config(answer.start)
    described = describe(probe.method, probe.uri, probe.real_ip, PEER, config.trusted_proxies)
    if isinstance(described, Rejected):
        return _Expected(_expected(Reason(described.reason)), lookup=False)
    return _token_rules(secret, described, config, answer, timeline)


def judge(answer: Answer, timeline: Timeline) -> Judgement:
    """The verdict on one answer."""
    if answer.status == 0:
        return Judgement(Verdict.NO_ANSWER, detail=answer.reason)
    rules = expect(answer, timeline)
    expected, observed = rules.answer, (answer.status, answer.reason)
    if answer.status >= 500:
        outage = _overlaps(timeline.outages, answer.start, answer.end)
        if observed == (503, Reason.STORE_UNAVAILABLE.value) and outage and rules.lookup:
            return Judgement(Verdict.OUTAGE, expected)
        return Judgement(Verdict.SERVER_ERROR, expected, f"answered {observed}")
    if expected is None:
        return Judgement(rules.verdict)
    detail = ""
    if observed != expected:
        detail = f"answered {observed}, the rules say {expected}"
    elif answer.status == 200 and answer.token_id != rules.token_id:
        detail = f"allowed as {answer.token_id!r}, the secret is {rules.token_id!r}'s"
    return Judgement(Verdict.WRONG if detail else Verdict.CHECKED, expected, detail)
