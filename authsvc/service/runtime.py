"""The composition root: everything a running authsvc (or one CLI call) needs, opened and
closed in one place. Each part is handed what it uses from here; no part reaches through
another to find a third."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from authsvc.config import Config
from authsvc.service.audit import AuditLog
from authsvc.service.cache import RecordCache
from authsvc.service.key_check import bind_key, open_checked
from authsvc.service.live import LiveConfig
from authsvc.service.lookups import KnownDigests, LookupBudget, TokenLookups
from authsvc.service.metrics import Metrics
from authsvc.service.propagation import POLL_INTERVAL, ChangeFeed
from authsvc.service.ratelimit import RateLimiter, build_rate_limiter
from authsvc.service.reload import ConfigReloader
from authsvc.service.secret_key import find_secret_key
from authsvc.service.token_gauges import TokenGauges
from authsvc.service.token_service import TokenService
from authsvc.service.usage import UsageRecorder
from authsvc.store import TokenStore, open_store


@dataclass(slots=True)
class Runtime:
    """The live configuration, the store and the services built on them."""

    live: LiveConfig
    store: TokenStore
    cache: RecordCache
    audit: AuditLog
    service: TokenService
    lookups: TokenLookups
    metrics: Metrics
    usage: UsageRecorder
    clock: Callable[[], float]
    limiter: RateLimiter  # per-token rate limits; `serve` starts its background work

    @classmethod
    async def open(
        cls,
        config: Config,
        *,
        clock: Callable[[], float] = time.time,
        cache_timer: Callable[[], float] = time.monotonic,
        environ: Mapping[str, str] = os.environ,
        store: TokenStore | None = None,
    ) -> Runtime:
        """Open the store (creating its schema), check the key against it (raising
        ``KeyRefused``: service/key_check.py) and wire the services.

        ``clock`` is wall time (expiry, audit); ``cache_timer`` is monotonic (cache TTL).
        """
        find_secret_key(config.secret_key_file, environ)  # a bad key file fails first
        store = store or open_store(config.store)
        await open_checked(store, config.secret_key_file, environ)  # refusals write nothing
        try:
            store_key = await bind_key(store, config.secret_key_file, environ)
        except BaseException:
            await store.close()
            raise
        live = LiveConfig(config)
        cache = RecordCache(config.cache.max_entries, config.cache.ttl, cache_timer)
        audit = AuditLog(config.audit_log, clock)
        # every insert hands the store the key's check value (recorded with the first)
        service = TokenService(
            store, live, cache, audit, key=store_key.key, clock=clock, key_check=store_key.check
        )
        metrics = Metrics()
        metrics.config_loaded(clock())
        # The set of existing tokens starts empty (every lookup then spends budget, and
        # each one found joins the set); a change feed loads it whole when it starts.
        budget = LookupBudget(config.cache.unknown_lookups_per_second, cache_timer)
        lookups = TokenLookups(service, KnownDigests(), budget, metrics)
        usage = UsageRecorder(store, clock=clock)
        limiter = build_rate_limiter(config.rate_limits, metrics, clock=cache_timer)
        return cls(live, store, cache, audit, service, lookups, metrics, usage, clock, limiter)

    def change_feed(self, *, poll_interval: float = POLL_INTERVAL) -> ChangeFeed:
        """The feed that applies changes made elsewhere to this runtime's cache."""
        return ChangeFeed(
            self.store,
            self.cache,
            self.lookups.known,
            self.metrics,
            self.clock,
            poll_interval=poll_interval,
        )

    def token_gauges(self) -> TokenGauges:
        """The background count behind /metrics' token gauges (``serve`` starts it)."""
        return TokenGauges(self.store, self.live, self.metrics, self.clock)

    def reloader(self, path: Path, *, interval: float = 0.2, settle: float = 0.5) -> ConfigReloader:
        """The reloader that swaps this runtime's configuration when ``path`` changes."""
        return ConfigReloader(
            path,
            live=self.live,
            cache=self.cache,
            audit=self.audit,
            budget=self.lookups.budget,
            metrics=self.metrics,
            clock=self.clock,
            interval=interval,
            settle=settle,
        )

    async def close(self) -> None:
        await self.limiter.stop()
        await self.usage.stop()
        await self.service.close()  # store writes started off the request path
        await self.store.close()
