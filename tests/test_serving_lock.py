"""The serving mark of PostgreSQL stores (authsvc/store/postgres/serving.py): a restore is
refused while an instance serves the schema, an instance starting during a restore waits
for it, a listener that reconnects marks the schema again, and the restore holds the
schema until its audit replay is done. Both stores' refusal of a served store:
tests/test_backup.py."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from authsvc.backup import commands
from authsvc.backup.commands import restore_backup, take_backup
from authsvc.backup.replay import ReplayReport
from authsvc.backup.replay import replay_audit as real_replay
from authsvc.service.runtime import Runtime
from authsvc.store import RestoreUnfinished, StoreUnavailable, TokenStore
from authsvc.store.postgres import listen
from authsvc.store.postgres.driver import Connection
from authsvc.store.postgres.pool import PgPool
from authsvc.store.postgres.serving import SERVING_LOCK, RestoreRunning, mark_serving
from authsvc.store.postgres.snapshot import PostgresSnapshots
from authsvc.store.postgres.store import PostgresStore
from authsvc.store.snapshots import SnapshotRefused
from tests.factories import make_config
from tests.pg import PgSchema, connect, with_query
from tests.processes import child_env, free_port, write_authsvc_config
from tests.stores import Heard, add, digest_for
from tests.waiting import within
from tests.webapp import mint

KEY = {"AUTHSVC_SECRET_KEY": "k" * 40}
HANG = 10.0


@pytest.fixture
async def served(pg_schema: PgSchema) -> PostgresStore:
    """An opened store on the test's schema (listening is up to the test)."""
    store = PostgresStore(pg_schema.url)
    await store.open()
    return store


async def test_a_restore_is_refused_naming_who_serves(
    served: PostgresStore, pg_schema: PgSchema
) -> None:
    """The refusal names the serving session, so a host that died can be found."""
    await served.listen(Heard())
    try:
        with pytest.raises(SnapshotRefused, match=r"in use: .* \(pid \d+ from "):
            async with PostgresSnapshots(pg_schema.url).exclusive():
                pass
    finally:
        await served.close()
    async with PostgresSnapshots(pg_schema.url).exclusive():
        pass  # free once the instance is gone


async def test_an_instance_starting_during_a_restore_waits(
    served: PostgresStore, pg_schema: PgSchema, monkeypatch: pytest.MonkeyPatch
) -> None:
    """listen() (serve's start) does not return while a restore holds the schema; once the
    restore ends it holds the mark, and the next restore is refused."""
    monkeypatch.setattr(listen, "RESTORE_RETRY", 0.05)
    snapshots = PostgresSnapshots(pg_schema.url)
    try:
        async with snapshots.exclusive():
            starting = asyncio.create_task(served.listen(Heard()))
            await asyncio.sleep(0.5)
            assert not starting.done()
        await asyncio.wait_for(starting, HANG)
        assert served.listening
        with pytest.raises(SnapshotRefused, match="in use"):
            async with snapshots.exclusive():
                pass
    finally:
        await served.close()


async def test_a_listener_that_reconnects_marks_again(
    served: PostgresStore, pg_schema: PgSchema
) -> None:
    """The mark lives on the listener's connection: killed, it is taken again on reconnect."""
    heard = Heard()
    await served.listen(heard)
    try:
        await pg_schema.terminate_backends()
        await within(HANG, lambda: heard.calls == [None], "the reconnect")
        assert served.listening
        with pytest.raises(SnapshotRefused, match="in use"):
            async with PostgresSnapshots(pg_schema.url).exclusive():
                pass
    finally:
        await served.close()


async def test_the_restore_holds_the_schema_through_its_replay(
    pg_schema: PgSchema, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the audit replay runs, no instance can mark the schema as served: one starting
    then would serve secrets the replay has not revoked yet."""
    config = make_config(tmp_path, store=pg_schema.url, audit_log=str(tmp_path / "audit.log"))
    runtime = await Runtime.open(config, environ=KEY)
    try:
        await mint(runtime, "Reader")
    finally:
        await runtime.close()
    await take_backup(config, tmp_path / "backup", KEY)
    tried: list[str] = []

    async def replay_while_serving_tried(
        store: TokenStore, paths: Sequence[Path], since: float, *, now: Callable[[], float]
    ) -> ReplayReport:
        conn = await connect(pg_schema.url)
        try:
            with pytest.raises(RestoreRunning):
                await mark_serving(conn, "the test's store")
            tried.append("refused")
        finally:
            await conn.close()
        return await real_replay(store, paths, since, now=now)

    monkeypatch.setattr(commands, "replay_audit", replay_while_serving_tried)
    await restore_backup(
        config, tmp_path / "backup", force=True, replay=[config.audit_log], environ=KEY
    )
    assert tried == ["refused"]


async def test_an_instance_waiting_for_a_restore_that_fails_refuses_to_serve(
    served: PostgresStore, pg_schema: PgSchema, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The restore stops half-way (its marker left in the store): the instance that waited
    for it does not serve what it left."""
    monkeypatch.setattr(listen, "RESTORE_RETRY", 0.05)
    try:
        async with PostgresSnapshots(pg_schema.url).exclusive():
            starting = asyncio.create_task(served.listen(Heard()))
            await asyncio.sleep(0.2)
            # the restore marks the schema, then stops half-way
            await PostgresSnapshots(pg_schema.url).mark_restoring("2026-12-02T10:00:00Z")
        with pytest.raises(RestoreUnfinished, match="has not finished"):
            await asyncio.wait_for(starting, HANG)
        assert not served.listening
    finally:
        await served.close()


async def test_an_outage_while_waiting_does_not_start_the_instance(
    served: PostgresStore, pg_schema: PgSchema, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connect that fails while the instance waits for a restore keeps it waiting: the
    outage path (start unmarked, reconnect later) must not be its way in."""
    monkeypatch.setattr(listen, "RESTORE_RETRY", 0.05)
    real_connect = PgPool.connect
    calls = 0

    async def one_outage(pool: PgPool) -> Connection:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise ConnectionRefusedError("the server went away for a moment")
        return await real_connect(pool)

    monkeypatch.setattr(PgPool, "connect", one_outage)
    try:
        async with PostgresSnapshots(pg_schema.url).exclusive():
            starting = asyncio.create_task(served.listen(Heard()))
            await within(HANG, lambda: calls > 4, "a few tries, one of them failing")
            assert not starting.done()
        await asyncio.wait_for(starting, HANG)
        assert served.listening
    finally:
        await served.close()


async def test_a_listener_lost_during_a_restore_marks_again_after_it(
    served: PostgresStore, pg_schema: PgSchema
) -> None:
    """A listener that reconnects while a restore holds the schema keeps trying (it does
    not give up listening for good) and marks the schema once the restore is over."""
    await served.listen(Heard())
    locker = await connect(with_query(pg_schema.url, application_name="test-locker"))
    try:
        take = "SELECT pg_advisory_lock($1, hashtext($2))"  # waits for the listener's mark
        restoring = asyncio.create_task(locker.execute(take, SERVING_LOCK, pg_schema.name))
        await asyncio.sleep(0.2)
        assert not restoring.done()
        await pg_schema.terminate_backends()  # the listener's connection, and so its mark
        await asyncio.wait_for(restoring, HANG)
        await asyncio.sleep(0.5)  # reconnects refused meanwhile
        assert not served.listening
        with pytest.raises(StoreUnavailable, match="a restore is running"):
            await served.get_by_digest(digest_for("anything"))  # answers nothing meanwhile
    finally:
        await locker.close()
    try:
        await within(HANG, lambda: served.listening, "the listener to mark the schema again")
        with pytest.raises(SnapshotRefused, match="in use"):
            async with PostgresSnapshots(pg_schema.url).exclusive():
                pass
    finally:
        await served.close()


async def test_serve_waiting_for_a_restore_stops_on_sigterm(
    pg_schema: PgSchema, tmp_path: Path
) -> None:
    """`serve` started during a restore waits, and SIGTERM still stops it at once."""
    config = write_authsvc_config(
        tmp_path, auth_port=free_port(), admin_port=free_port(), store=pg_schema.url
    )
    log = tmp_path / "serve.log"
    async with PostgresSnapshots(pg_schema.url).exclusive():
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "authsvc", "--config", str(config), "serve"),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
                env=child_env(),
            )
        try:
            await within(HANG, lambda: "waiting for it to finish" in log.read_text(), "the wait")
            process.send_signal(signal.SIGTERM)
            status = await asyncio.wait_for(process.wait(), 5)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert status == 0, log.read_text()
    assert "authsvc serving" not in log.read_text()


async def test_a_running_instance_that_finds_an_unfinished_restore_fails_closed(
    served: PostgresStore, pg_schema: PgSchema
) -> None:
    """A restore ran while this instance's listener was down, and stopped half-way: once
    the listener is back and sees the mark, the store answers nothing (503s, not secrets
    the replay never revoked) and the cache is dropped, until a restore finishes."""
    token = await add(served, "served")
    heard = Heard()
    await served.listen(heard)
    snapshots = PostgresSnapshots(pg_schema.url)
    try:
        await snapshots.mark_restoring("2026-12-02T10:00:00Z")
        await pg_schema.terminate_backends()  # the listener reconnects and finds the mark
        await within(HANG, lambda: None in heard.calls, "the cache to be dropped")
        with pytest.raises(StoreUnavailable, match="has not finished"):
            await served.get_by_digest(digest_for("served"))
        await snapshots.unmark_restoring()
        await within(HANG, lambda: served.listening, "the listener to come back")
        assert await served.get_by_digest(digest_for("served")) == token
    finally:
        await served.close()
