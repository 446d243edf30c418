"""Waiting in tests: poll a condition until it holds, failing (not hanging) past a bound."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest


async def within(
    seconds: float,
    check: Callable[[], bool | Awaitable[bool]],
    what: str | Callable[[], str],
    *,
    since: float | None = None,
    every: float = 0.01,
) -> float:
    """Poll ``check`` (plain or async) every ``every`` seconds until it holds; the seconds
    it took, counted from ``since`` (a ``time.monotonic()`` reading; default: now). Fails the
    test once ``seconds`` have passed since then, saying ``what`` was awaited (a callable is
    asked only then, e.g. for a log as it is at that moment)."""
    started = time.monotonic() if since is None else since
    while time.monotonic() - started < seconds:
        done = check()
        if done if isinstance(done, bool) else await done:
            return time.monotonic() - started
        await asyncio.sleep(every)
    pytest.fail(f"not within {seconds}s: {what if isinstance(what, str) else what()}")
