"""Everything a running authsvc (or one CLI call) needs, opened and closed in one place."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from authsvc.audit import AuditLog
from authsvc.cache import RecordCache
from authsvc.config import Config
from authsvc.live import LiveConfig
from authsvc.metrics import Metrics
from authsvc.secret_key import load_secret_key
from authsvc.service import TokenService
from authsvc.store import TokenStore, open_store
from authsvc.usage import UsageRecorder


@dataclass(slots=True)
class Runtime:
    """The live configuration, the store and the services built on them."""

    live: LiveConfig
    store: TokenStore
    service: TokenService
    metrics: Metrics
    usage: UsageRecorder
    clock: Callable[[], float]

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
        """Load the key, open the store (creating its schema) and wire the services.

        ``clock`` is wall time (expiry, audit); ``cache_timer`` is monotonic (cache TTL).
        """
        key = load_secret_key(config.secret_key_file, environ)
        store = store or open_store(config.store)
        await store.open()
        live = LiveConfig(config)
        cache = RecordCache(config.cache.max_entries, config.cache.ttl, cache_timer)
        audit = AuditLog(config.audit_log, clock)
        service = TokenService(store, live, cache, audit, key=key, clock=clock)
        metrics = Metrics()
        metrics.config_loaded(clock())
        return cls(live, store, service, metrics, UsageRecorder(store), clock)

    async def close(self) -> None:
        await self.usage.stop()
        await self.store.close()
