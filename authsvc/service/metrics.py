"""Prometheus metrics, one registry per service instance (tests run several in a process)."""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from prometheus_client.utils import INF, floatToGoString

from authsvc.rules.decision import Reason
from authsvc.service.metrics_share import WorkerShare

__all__ = ["CONTENT_TYPE_LATEST", "HotPathCounts", "Metrics"]

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5)


class HotPathCounts(Collector):
    """What the auth handler counts on every request, as plain integers.

    A prometheus-client Counter takes a lock on every increment and a Histogram walks its
    buckets in Python: together about 1.5 µs per request (docs/performance-notes.md). The
    event loop is one thread, so a bare ``+=`` is safe here; the registry reads the numbers
    only when /metrics is scraped, through :meth:`collect`.
    """

    def __init__(self) -> None:
        self.created = time.time()
        self.decisions = dict.fromkeys(Reason, 0)
        self.latency_buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one is +Inf
        self.latency_sum = 0.0
        self.cache_hits = 0
        self.cache_misses = 0

    def decided(self, reason: Reason, seconds: float) -> None:
        self.decisions[reason] += 1
        # bisect_left: a value equal to a bound belongs to that bucket (le = "less or equal")
        self.latency_buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    def collect(self) -> Iterator[Metric]:
        created = self.created
        decisions = CounterMetricFamily(
            "authsvc_decisions", "Auth decisions by X-Auth-Reason", labels=["reason"]
        )
        for reason, count in self.decisions.items():
            decisions.add_metric([reason.value], count, created=created)
        yield decisions
        cumulative, buckets = 0, []
        for bound, count in zip((*LATENCY_BUCKETS, INF), self.latency_buckets, strict=True):
            cumulative += count
            buckets.append((floatToGoString(bound), cumulative))  # type: ignore[no-untyped-call]
        latency = HistogramMetricFamily(
            "authsvc_decision_latency_seconds",
            "Time to answer one /auth request, store lookups included",
        )
        latency.add_metric([], buckets, self.latency_sum, created)
        yield latency
        for name, documentation, value in (
            ("authsvc_cache_hits", "Token record cache hits", self.cache_hits),
            ("authsvc_cache_misses", "Token record cache misses", self.cache_misses),
        ):
            family = CounterMetricFamily(name, documentation)
            family.add_metric([], value, created=created)
            yield family


class Metrics:
    """Everything /metrics exposes. The auth handler's counts live in :attr:`hot`; the
    rest are prometheus-client metrics, pre-bound per label where they are on a request
    path.

    A worker of ``serve --workers N`` (``environ`` names the shared directory) also shares
    its numbers with the other workers, and its /metrics adds theirs up: see
    :mod:`authsvc.service.metrics_share`."""

    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.hot = HotPathCounts()
        r.register(self.hot)
        self.store_lookups = Counter(
            "authsvc_store_lookups",
            "Token lookups in the store after a cache miss, by whether the token exists",
            ["result"],
            registry=r,
        )
        for result in ("found", "not_found"):
            self.store_lookups.labels(result=result)  # both series from the start
        self.unknown_lookups_skipped = Counter(
            "authsvc_unknown_lookups_skipped",
            "Unknown tokens answered 401 without a store lookup (the budget was spent)",
            registry=r,
        )
        self.known_tokens = Gauge(
            "authsvc_known_tokens",
            "Tokens this instance knows to exist (their lookups are never refused)",
            registry=r,
        )
        self.store_errors = Counter(
            "authsvc_store_errors", "Store operations that failed", ["operation"], registry=r
        )
        self.config_reload_ok = Gauge(
            "authsvc_config_last_reload_successful",
            "1 if the last configuration load succeeded, else 0",
            registry=r,
        )
        self.config_reload_time = Gauge(
            "authsvc_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration load",
            registry=r,
        )
        self.propagation_delay = Histogram(
            "authsvc_propagation_delay_seconds",
            "From a change's commit elsewhere (CLI, another instance) to its invalidation here",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0),
            registry=r,
        )
        self.cache_drops = Counter(
            "authsvc_cache_drops",
            "Whole-cache drops (change notifications possibly missed)",
            registry=r,
        )
        self.admin_requests = Counter(
            "authsvc_admin_requests", "Admin API responses by status", ["status"], registry=r
        )
        # The token gauges: counted in the store by service.token_gauges. Their series
        # appear with the first count, so a store that was down from the start shows no
        # made-up zeros.
        self.tokens = Gauge(
            "authsvc_tokens",
            "Tokens in the store by derived status: active, expired, blocked",
            ["status"],
            registry=r,
        )
        self.tokens_expiring = Gauge(
            "authsvc_tokens_expiring",
            "Active tokens whose effective expiry falls within the window from now",
            ["within"],
            registry=r,
        )
        self.tokens_counted_at = Gauge(
            "authsvc_tokens_counted_timestamp_seconds",
            "Unix time of the last successful count behind authsvc_tokens (0: none yet)",
            registry=r,
        )
        # Rate limits of the cluster scope (service.ratelimit_cluster): 1 while Redis is
        # unreachable and this instance counts alone.
        self.ratelimit_fallback = Gauge(
            "authsvc_ratelimit_fallback",
            "1 while rate limits are counted by this instance alone because Redis is down",
            registry=r,
        )
        self.ratelimit_redis_errors = Counter(
            "authsvc_ratelimit_redis_errors",
            "Redis calls of the cluster rate limiter that failed or timed out",
            registry=r,
        )
        self.share = WorkerShare.from_environ(r, environ)
        if self.share is not None:
            # Started here because every `serve` builds its Metrics inside its running event
            # loop (Runtime.open), so serve() needs no hook of its own. asyncio.Runner cancels
            # the task when serve() returns, after the last request; it then writes a last
            # snapshot.
            self.share.start()

    def exposition(self) -> bytes:
        if self.share is not None:
            return self.share.exposition()
        return generate_latest(self.registry)

    def config_loaded(self, when: float) -> None:
        self.config_reload_ok.set(1)
        self.config_reload_time.set(when)

    def config_failed(self) -> None:
        self.config_reload_ok.set(0)

    def set_token_counts(
        self, by_status: Mapping[str, int], expiring: Mapping[str, int], when: float
    ) -> None:
        """Set the token gauges from one count: tokens per status, and active tokens
        expiring per window (``"7d"`` → count)."""
        for status, count in by_status.items():
            self.tokens.labels(status=status).set(count)
        for within, count in expiring.items():
            self.tokens_expiring.labels(within=within).set(count)
        self.tokens_counted_at.set(when)
