"""The token gauges of /metrics: how many tokens are active, expired and blocked, and how
many active ones expire within 1, 7 and 30 days (docs/metrics.md).

A background task counts them in the store (one pass, no record read out: the store may
hold a million tokens) every :data:`REFRESH_INTERVAL` seconds, and again right after a
reload changes the policy, since ``max_lifetime`` and ``tokens_enabled`` change statuses
without any token changing. While the store cannot answer, the gauges keep their last
values and the timestamp gauge shows how old they are; the outage is logged once, and its
end once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Final

from authsvc.config import SecurityPolicy
from authsvc.service.background import Background
from authsvc.service.live import LiveConfig
from authsvc.service.metrics import Metrics
from authsvc.store import ListQuery, StatusBasis, StoreError, TokenStatus, TokenStore

log = logging.getLogger("authsvc.token_gauges")

#: Seconds between two counts: the gauges are at most this old (plus one count's time).
REFRESH_INTERVAL: Final = 30.0
#: Seconds between two looks at the policy in force, to count again after a reload.
POLICY_CHECK_INTERVAL: Final = 0.5
STATUSES: Final[tuple[TokenStatus, ...]] = ("active", "expired", "blocked")
#: The ``within`` label of ``authsvc_tokens_expiring`` and its window in seconds.
EXPIRING_WINDOWS: Final = (("1d", 86400), ("7d", 7 * 86400), ("30d", 30 * 86400))

Counts = tuple[dict[str, int], dict[str, int]]


def count_queries(basis: StatusBasis) -> list[ListQuery]:
    """What one count asks the store: one filter per status, then one per window."""
    return [ListQuery(status=status, basis=basis) for status in STATUSES] + [
        ListQuery(expires_within=seconds, basis=basis) for _, seconds in EXPIRING_WINDOWS
    ]


async def count_tokens(store: TokenStore, basis: StatusBasis) -> Counts:
    """(tokens per status, active tokens expiring per window) under ``basis``."""
    counts = await store.count_tokens(count_queries(basis))
    by_status: dict[str, int] = dict(zip(STATUSES, counts[: len(STATUSES)], strict=True))
    windows = [label for label, _ in EXPIRING_WINDOWS]
    expiring = dict(zip(windows, counts[len(STATUSES) :], strict=True))
    return by_status, expiring


class TokenGauges:
    """Keeps ``metrics``' token gauges current from ``store`` under the live policy."""

    def __init__(
        self,
        store: TokenStore,
        live: LiveConfig,
        metrics: Metrics,
        clock: Callable[[], float],
        *,
        interval: float = REFRESH_INTERVAL,
        policy_check: float = POLICY_CHECK_INTERVAL,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._live = live
        self._metrics = metrics
        self._clock = clock
        self._interval = interval
        self._policy_check = policy_check
        self._timer = timer
        self._failing = False
        self._loop = Background("authsvc-token-gauges", self._run)

    def start(self) -> None:
        """Count now, then every interval and after every policy change, until stopped."""
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def refresh(self) -> SecurityPolicy:
        """Count once under the policy in force and set the gauges; on a store failure
        keep the last values. The policy counted under (whether or not the count worked)."""
        policy = self._live.current.policy
        now = self._clock()
        try:
            by_status, expiring = await count_tokens(self._store, StatusBasis.of(policy, now))
        except StoreError as error:
            self._metrics.store_errors.labels(operation="count").inc()
            if not self._failing:
                self._failing = True
                log.warning(
                    "cannot count tokens for the metrics, keeping the last counts: %s", error
                )
            return policy
        if self._failing:
            self._failing = False
            log.info("counting tokens for the metrics works again")
        self._metrics.set_token_counts(by_status, expiring, now)
        return policy

    async def _run(self) -> None:
        while True:
            try:
                counted = await self.refresh()
            except Exception:  # a bug here must not end the gauges for good: log, go on
                log.exception("unexpected error while counting tokens for the metrics")
                counted = self._live.current.policy
            await self._wait(counted)

    async def _wait(self, counted: SecurityPolicy) -> None:
        """Until the interval has passed, or the policy in force differs from ``counted``
        (a reload changed it: statuses may have changed with it)."""
        deadline = self._timer() + self._interval
        while (left := deadline - self._timer()) > 0:
            await asyncio.sleep(min(left, self._policy_check))
            if self._live.current.policy != counted:
                return
