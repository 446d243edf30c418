"""Live configuration: reload on SIGHUP and when the file changes, all or nothing.

The file is polled (``os.stat`` through any symlinks, every 0.2 s) rather than watched
with inotify: polling sees rename-saves, in-place writes and Kubernetes-style symlink
swaps alike, needs no dependency and costs one stat call per tick. A change is applied
only once the file has stopped changing for ``settle`` (0.5 s), so a file written in
several steps is read once, whole; the worst case from write to swap stays near 1 s,
inside the 2 s bound. Parsing, validation and compilation happen before
the one reference swap; requests in flight keep the configuration they started with.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

from authsvc.config import ConfigError
from authsvc.config.diff import diff, keep_restart_keys
from authsvc.config.load import load_config
from authsvc.service.audit import AuditLog
from authsvc.service.background import Background
from authsvc.service.cache import RecordCache
from authsvc.service.live import LiveConfig
from authsvc.service.lookups import LookupBudget
from authsvc.service.metrics import Metrics

log = logging.getLogger("authsvc.reload")

Signature = tuple[int, int, int, int] | None


def file_signature(path: Path) -> Signature:
    """What identifies one version of the file: device, inode, mtime and size of the
    file the path resolves to now (None while it is missing, e.g. mid-rename)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


class ConfigReloader:
    """Applies edits of the configuration file to a running service."""

    def __init__(
        self,
        path: Path,
        *,
        live: LiveConfig,
        cache: RecordCache,
        audit: AuditLog,
        budget: LookupBudget,
        metrics: Metrics,
        clock: Callable[[], float],
        interval: float = 0.2,
        settle: float = 0.5,
    ) -> None:
        self._path = path
        self._live = live
        self._cache = cache
        self._audit = audit
        self._budget = budget
        self._metrics = metrics
        self._clock = clock
        self._interval = interval
        self._settle = settle
        self._seen = file_signature(path)
        self._loop = Background("authsvc-config-watch", self._watch)

    def reload(self, trigger: str) -> bool:
        """Load, validate and swap in the file now; False (and nothing changed) if invalid."""
        live = self._live
        self._seen = file_signature(self._path)
        try:
            loaded = load_config(self._path)
        except ConfigError as error:
            message = "; ".join(error.errors)
            live.last_error = message
            self._metrics.config_failed()
            log.error(
                "configuration reload (%s) failed, still serving the last good configuration: %s",
                trigger,
                message,
            )
            details = {"trigger": trigger, "errors": error.errors[:20]}
            self._audit.write("config.reload_failed", actor="config", details=details)
            return False
        old = live.current
        changes = diff(old, loaded)
        for key in changes.needs_restart:
            log.warning("configuration key %r changed: it takes effect after a restart", key)
        new = keep_restart_keys(old, loaded)
        self._cache.resize(new.cache.max_entries, new.cache.ttl)
        self._budget.resize(new.cache.unknown_lookups_per_second)
        live.current = new
        live.last_error = None
        self._metrics.config_loaded(self._clock())
        if not changes.empty:
            log.info("configuration reloaded (%s): %s", trigger, changes.as_details())
            details = {"trigger": trigger, **changes.as_details()}
            self._audit.write("config.reload", actor="config", details=details)
        return True

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            if file_signature(self._path) == self._seen:
                continue
            # Wait until the writer is done: the file must stay the same for `settle`.
            current = file_signature(self._path)
            while True:
                await asyncio.sleep(self._settle)
                latest = file_signature(self._path)
                if latest == current:
                    break
                current = latest
            if current is None:
                log.warning(
                    "configuration file %s is missing; keeping the last good one", self._path
                )
                self._seen = None
                continue
            try:
                self.reload("file change")
            except Exception:  # a bug here must not stop the watcher: log and go on
                log.exception("unexpected error while reloading the configuration")
