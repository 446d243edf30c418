"""A revocation completed on an instance is final there: no request that starts after it
is allowed, however slow a store read that began before it (SECURITY 32)."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from authsvc.rules.tokens import TokenRecord
from authsvc.service.runtime import Runtime
from tests.webapp import auth_status, mint

Client = TestClient[web.Request, web.Application]


def slow_reads(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Hold every digest lookup of the store until the returned event is set."""
    gate = asyncio.Event()
    real = runtime.store.get_by_digest

    async def held(digest: bytes) -> TokenRecord | None:
        found = await real(digest)  # read now: the answer from before any change
        await gate.wait()
        return found

    monkeypatch.setattr(runtime.store, "get_by_digest", held)
    return gate


async def until_reading(runtime: Runtime) -> None:
    """Wait until the service has a store read under way."""
    for _ in range(200):
        if runtime.service._inflight:  # the race window itself
            return
        await asyncio.sleep(0.005)
    raise AssertionError("no store read started")


class TestRevocationRace:
    """A request after a completed revocation never joins a read from before it."""

    @pytest.mark.parametrize("change", ["delete", "rotate", "update"])
    async def test_request_after_revocation_is_refused(
        self,
        runtime: Runtime,
        auth_client: Client,
        monkeypatch: pytest.MonkeyPatch,
        change: str,
    ) -> None:
        """A request that starts once the change has returned gets no 200 from the old read."""
        record, secret = await mint(runtime, "Reader")
        gate = slow_reads(runtime, monkeypatch)
        early = asyncio.create_task(auth_status(auth_client, secret))
        await until_reading(runtime)
        service = runtime.service
        if change == "delete":
            await service.delete(actor="cli", client=None, token_id=record.id)
        elif change == "rotate":
            await service.rotate(actor="cli", client=None, token_id=record.id)
        else:
            await service.update_permissions(
                actor="cli", client=None, token_id=record.id, permissions=["Writer"]
            )
        late = asyncio.create_task(auth_status(auth_client, secret))
        await asyncio.sleep(0.05)  # the late request is waiting on the store too
        gate.set()
        assert await early in (200, 401, 403)  # began before the change: either answer
        assert await late in (401, 403)
        assert await auth_status(auth_client, secret) in (401, 403)
