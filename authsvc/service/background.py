"""One background loop of a running service, started once and cancelled cleanly."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from contextlib import suppress
from typing import Any


class Background:
    """Runs ``body()`` as a named task between :meth:`start` and :meth:`stop`."""

    def __init__(self, name: str, body: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._name = name
        self._body = body
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._body(), name=self._name)

    async def join(self) -> None:
        """Wait until the loop ends by itself (its body must watch for a stop request):
        for loops that must not be cut off in the middle of a store write."""
        task, self._task = self._task, None
        if task is not None:
            await task

    async def stop(self) -> None:
        """Cancel the loop and wait until it has ended (no-op when not started)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
