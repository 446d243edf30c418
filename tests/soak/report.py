"""The soak's counts, its failures, and a precise account of every wrong answer."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from authsvc.config import Config
from tests.soak.oracle import Answer, Judgement, Timeline, Verdict

SHOWN = 10  # wrong answers described in full; the rest are counted


def _time(epoch: float | None) -> str:
    if epoch is None:
        return "none"
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S.%f")[:-3]


def _config(config: Config, permissions: frozenset[str]) -> str:
    policy = config.policy
    endpoints = {
        name: [e.text for e in config.permissions[name].endpoints]
        for name in sorted(permissions)
        if name in config.permissions
    }
    filters = {name: list(f.rules) for name, f in sorted(config.ip_filters.items())}
    return (
        f"policy tokens_enabled={policy.tokens_enabled} max_lifetime={policy.max_lifetime_text}"
        f" enforce_ip_filter={policy.enforce_ip_filter}; trusted_proxies="
        f"{list(config.trusted_proxies.texts)}; the token's permissions in the catalog:"
        f" {endpoints}; ip_filters: {filters}"
    )


def describe_wrong(answer: Answer, judgement: Judgement, timeline: Timeline) -> str:
    """Everything needed to reproduce a wrong answer: the request, the token's state, the
    configuration in force and the answer."""
    probe = answer.probe
    shown = [value[:20] + "..." if len(value) > 20 else value for value in probe.authorization]
    secret = probe.authorization[0].partition(" ")[2].strip(" ") if probe.authorization else ""
    owner = timeline.owners.get(secret)
    state = None if owner is None else timeline.state(owner, answer.start)
    config = timeline.config(answer.start)
    if state is None:
        token = f"token: {probe.kind}, {owner or 'never issued'}, deleted or not issued then"
    else:
        record = state.record
        which = "its current secret" if state.secret == secret else "a secret it no longer has"
        token = (
            f"token {record.id} ({which}): permissions {sorted(record.permissions)},"
            f" ip_filter {record.ip_filter}, created {_time(record.created_at)},"
            f" expires {_time(record.expires_at)}"
        )
    during = any(low <= answer.end and answer.start <= high for low, high in timeline.outages)
    outage = " (store outage)" if during else ""
    return "\n    ".join(
        [
            f"{'HEAD' if probe.head else 'GET'} /auth from {_time(answer.start)} to"
            f" {_time(answer.end)}{outage}: X-Original-Method {probe.method!r}, X-Original-URI"
            f" {probe.uri!r}, X-Real-IP {probe.real_ip!r}, Authorization {shown}",
            token,
            "configuration: " + _config(config, state.record.permissions if state else frozenset()),
            f"answer: {answer.status} {answer.reason!r} X-Auth-Token-Id {answer.token_id!r};"
            f" {judgement.detail}",
        ]
    )


@dataclass
class SoakReport:
    """What one soak did and found."""

    store: str
    seconds: float
    rate: float
    seed: int
    sent: int = 0
    late: int = 0  # requests sent over 100 ms behind schedule (all in flight were waiting)
    verdicts: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # 5xx and no answers, described
    changes: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    refusal_samples: dict[str, str] = field(default_factory=dict)
    change_failures: list[str] = field(default_factory=list)
    reloads: int = 0
    reloads_logged: int = 0
    reloads_unconfirmed: int = 0
    log_problems: list[str] = field(default_factory=list)
    rss_warm_kb: int = 0
    rss_end_kb: int = 0
    rss_peak_kb: int = 0
    rss_bound_mb: float = 0.0
    outage: str = "none"
    metrics: list[str] = field(default_factory=list)  # from the service's /metrics

    def add(self, answer: Answer, judgement: Judgement, timeline: Timeline) -> None:
        """Count one judged answer (describing the first few of each kind of failure)."""
        self.verdicts[judgement.verdict.value] += 1
        self.statuses[answer.status] += 1
        self.reasons[answer.reason if answer.status else "none"] += 1
        if judgement.verdict is Verdict.WRONG and len(self.wrong) < SHOWN:
            self.wrong.append(describe_wrong(answer, judgement, timeline))
        elif (
            judgement.verdict in (Verdict.SERVER_ERROR, Verdict.NO_ANSWER)
            and len(self.errors) < SHOWN
        ):
            self.errors.append(describe_wrong(answer, judgement, timeline))

    @property
    def growth_mb(self) -> float:
        return (self.rss_end_kb - self.rss_warm_kb) / 1024

    def failures(self) -> list[str]:
        """Every reason this soak failed (empty: it passed)."""
        found = []
        counts = self.verdicts
        for verdict in (Verdict.WRONG, Verdict.SERVER_ERROR, Verdict.NO_ANSWER):
            if counts[verdict.value]:
                found.append(f"{counts[verdict.value]} answer(s): {verdict.value}")
        found += [f"wrong answer:\n    {text}" for text in self.wrong]
        found += [f"5xx or no answer:\n    {text}" for text in self.errors]
        found += [f"change failed: {text}" for text in self.change_failures]
        found += [f"server log: {text}" for text in self.log_problems]
        if self.growth_mb > self.rss_bound_mb:
            found.append(
                f"memory grew by {self.growth_mb:.1f} MB after warm-up (bound"
                f" {self.rss_bound_mb:g} MB): VmRSS {self.rss_warm_kb} kB -> {self.rss_end_kb} kB"
            )
        return found

    def text(self) -> str:
        """The counts, for a person."""

        def listing(counter: Counter[str] | Counter[int]) -> str:
            return ", ".join(f"{key} {value}" for key, value in sorted(counter.items())) or "none"

        transition = sum(v for k, v in self.verdicts.items() if k.startswith("in transition"))
        lines = [
            f"soak on {self.store}: {self.seconds:g} s at {self.rate:g} requests/s,"
            f" seed {self.seed}",
            f"requests: sent {self.sent}, checked {self.verdicts[Verdict.CHECKED.value]},"
            f" wrong {self.verdicts[Verdict.WRONG.value]}, in transition {transition}"
            f" ({listing(Counter({k: v for k, v in self.verdicts.items() if 'transition' in k}))}),"
            f" store-outage 503 {self.verdicts[Verdict.OUTAGE.value]},"
            f" other 5xx {self.verdicts[Verdict.SERVER_ERROR.value]},"
            f" no answer {self.verdicts[Verdict.NO_ANSWER.value]}, sent late {self.late}",
            f"by status: {listing(self.statuses)}",
            f"by reason: {listing(self.reasons)}",
            f"changes made: {sum(self.changes.values())} ({listing(self.changes)})",
            f"changes refused: {sum(self.refused.values())} ({listing(self.refused)})",
            *(f"  e.g. {kind}: {text}" for kind, text in sorted(self.refusal_samples.items())),
            f"reloads: {self.reloads} (logged by the service {self.reloads_logged},"
            f" unconfirmed within the window {self.reloads_unconfirmed})",
            f"store outage: {self.outage}",
            f"memory: VmRSS after warm-up {self.rss_warm_kb} kB, at the end {self.rss_end_kb} kB,"
            f" peak {self.rss_peak_kb} kB: growth {self.growth_mb:.1f} MB"
            f" (bound {self.rss_bound_mb:g} MB)",
            f"service metrics: {'; '.join(self.metrics) or 'none read'}",
        ]
        return "\n".join(lines)

    def properties(self) -> dict[str, object]:
        """Flat counts for the test log (pytest's ``record_property``)."""
        return {
            "soak_sent": self.sent,
            **{f"soak_{k.replace(' ', '_').replace(':', '')}": v for k, v in self.verdicts.items()},
            **{f"soak_status_{k}": v for k, v in self.statuses.items()},
            "soak_changes": sum(self.changes.values()),
            "soak_refused": sum(self.refused.values()),
            "soak_reloads": self.reloads,
            "soak_rss_growth_mb": round(self.growth_mb, 2),
        }
