"""Prometheus metrics, one registry per service instance (tests run several in a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from authsvc.rules.decision import Reason

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    """Everything /metrics exposes. Counters are pre-bound per label so the hot path does
    no label lookups."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._decisions = Counter(
            "authsvc_decisions", "Auth decisions by X-Auth-Reason", ["reason"], registry=r
        )
        self.decision_by_reason = {
            reason: self._decisions.labels(reason=reason.value) for reason in Reason
        }
        self.decision_latency = Histogram(
            "authsvc_decision_latency_seconds",
            "Time to answer one /auth request, store lookups included",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5),
            registry=r,
        )
        self.cache_hits = Counter("authsvc_cache_hits", "Token record cache hits", registry=r)
        self.cache_misses = Counter("authsvc_cache_misses", "Token record cache misses", registry=r)
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

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def config_loaded(self, when: float) -> None:
        self.config_reload_ok.set(1)
        self.config_reload_time.set(when)

    def config_failed(self) -> None:
        self.config_reload_ok.set(0)
