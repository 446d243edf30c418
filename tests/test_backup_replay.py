"""``restore --replay-audit`` (SPEC §13) on both stores: what the audit log recorded after
the backup is made again, so that no revoked secret works after a restore. Tokens deleted,
rotated or revoked (current or previous secret) after the backup stay dead; permission and
rate-limit changes are made again; tokens created after it are listed as lost; unreadable
lines are counted, never fatal; the restore is audited once, with the counts."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from authsvc.backup.commands import restore_backup, take_backup
from authsvc.backup.manifest import read_manifest
from authsvc.backup.replay import ReplayReport
from authsvc.config import Config
from authsvc.rules.durations import rfc3339
from authsvc.rules.tokens import TokenRecord
from authsvc.service.revocation import SECRET_HOLDER
from authsvc.service.runtime import Runtime
from tests.auth_client import auth_client
from tests.factories import make_config
from tests.stores import Backend
from tests.test_backup import KEY, wipe
from tests.webapp import ClientMaker, auth_status, mint

CLI = "cli"


class ShiftedClock:
    """Wall time, shifted: the changes before the backup are recorded seconds before it
    began, those after it seconds after (the audit log has whole seconds, and a record of
    the backup's own second is replayed, on the safe side)."""

    def __init__(self) -> None:
        self.shift = -5.0

    def __call__(self) -> float:
        return time.time() + self.shift


@dataclass(frozen=True, slots=True)
class Story:
    """The tokens of the scenario, each with what happened to it after the backup."""

    kept: tuple[TokenRecord, str]
    deleted: tuple[TokenRecord, str]
    rotated: tuple[TokenRecord, str]
    rotated_new_secret: str
    leaked: tuple[TokenRecord, str]
    graced: tuple[TokenRecord, str]  # rotated with a grace before the backup; this
    graced_current: str  # previous secret was revoked as leaked after it
    switched: tuple[TokenRecord, str]  # rotated with a grace before the backup; the
    switched_current: str  # first use of this new secret after it ended the grace
    updated: tuple[TokenRecord, str]
    lost: TokenRecord
    created_and_deleted: TokenRecord


@pytest.fixture
def config(tmp_path: Path, store_url: str) -> Config:
    return make_config(tmp_path, store=store_url, audit_log=str(tmp_path / "audit.log"))


async def live_through(config: Config, folder: Path) -> Story:
    """Tokens, a backup, then every kind of change the replay knows."""
    clock = ShiftedClock()
    runtime = await Runtime.open(config, environ=KEY, clock=clock)
    service = runtime.service
    try:
        kept, deleted, rotated, leaked, graced, switched, updated = [
            await mint(runtime, "Reader") for _ in range(7)
        ]
        _, graced_current = await service.rotate(
            actor=CLI, client=None, token_id=graced[0].id, grace="1h"
        )
        _, switched_current = await service.rotate(
            actor=CLI, client=None, token_id=switched[0].id, grace="1h"
        )
        await take_backup(config, folder, KEY)
        clock.shift = 5.0
        in_grace = await service.lookup(service.digest(switched_current))
        assert in_grace is not None
        service.graces.first_use(in_grace, service.digest(switched_current), None)
        await service.delete(actor=CLI, client=None, token_id=deleted[0].id)
        _, new_secret = await service.rotate(actor=CLI, client=None, token_id=rotated[0].id)
        await service.revoke_leaked(actor=SECRET_HOLDER, client=None, secret=leaked[1])
        revoked = await service.revoke_leaked(actor=SECRET_HOLDER, client=None, secret=graced[1])
        assert revoked == (graced[0].id, "previous_secret")
        await service.update(
            actor=CLI,
            client=None,
            token_id=updated[0].id,
            permissions=["Reader", "Writer"],
            rate_limit="60/m",
        )
        lost, _ = await mint(runtime, "Reader")
        gone, _ = await mint(runtime, "Reader")
        await service.delete(actor=CLI, client=None, token_id=gone.id)
    finally:
        await runtime.close()
    return Story(
        kept,
        deleted,
        rotated,
        new_secret,
        leaked,
        graced,
        graced_current,
        switched,
        switched_current,
        updated,
        lost,
        gone,
    )


async def test_changes_after_the_backup_are_made_again(
    backend: Backend, config: Config, tmp_path: Path, aiohttp_client: ClientMaker
) -> None:
    story = await live_through(config, tmp_path / "backup")
    replayed = tmp_path / "replayed.log"
    lines = config.audit_log.read_text()
    garbage = 'not json\n[1, 2]\n{"time": "yesterday", "action": "token.delete"}\n'
    bad_update = {
        "time": "2999-01-01T00:00:00Z",
        "action": "token.update",
        "target": story.kept[0].id,
        "details": {"permissions": "Writer"},  # not a list
    }
    replayed.write_text(garbage + lines + json.dumps(bad_update) + "\n")
    await wipe(backend, config)

    restored = await restore_backup(config, tmp_path / "backup", replay=[replayed], environ=KEY)

    report = restored.replay
    assert isinstance(report, ReplayReport)
    assert report.deleted == [story.deleted[0].id, story.leaked[0].id]
    assert report.rotated == [story.rotated[0].id]
    # the whole token goes: see the replay's module on a rotation missing from the logs
    assert report.leaked_previous == [story.graced[0].id]
    assert report.graces_ended == [story.switched[0].id]
    assert report.updated == [story.updated[0].id]
    assert report.lost == [story.lost.id]
    last = len(garbage.splitlines()) + len(lines.splitlines()) + 1
    assert report.unreadable == [f"{replayed}:{number}" for number in (1, 2, 3, last)]
    assert not report.starts_after_backup

    runtime = await Runtime.open(config, environ=KEY)
    try:
        client = await auth_client(aiohttp_client, runtime)
        dead = [
            story.deleted[1],
            story.rotated[1],
            story.rotated_new_secret,
            story.leaked[1],
            story.graced[1],
            story.graced_current,
            story.switched[1],
        ]
        assert [await auth_status(client, secret) for secret in dead] == [401] * len(dead)
        alive = [story.kept[1], story.updated[1], story.switched_current]
        assert [await auth_status(client, secret) for secret in alive] == [200] * len(alive)
        updated = await runtime.store.get(story.updated[0].id)
    finally:
        await runtime.close()
    assert updated is not None
    assert updated.permissions == {"Reader", "Writer"}
    assert updated.rate_limit == "60/m"

    entries = [json.loads(line) for line in config.audit_log.read_text().splitlines()]
    restores = [entry for entry in entries if entry["action"] == "store.restore"]
    assert len(restores) == 1
    assert restores[0]["details"]["deleted"] == 2
    assert restores[0]["details"]["rotated_deleted"] == 1
    assert restores[0]["details"]["lost"] == 1
    assert restores[0]["details"]["leaked_previous_deleted"] == 1
    assert restores[0]["details"]["graces_ended"] == 1
    assert restores[0]["details"]["unreadable_lines"] == 4


async def test_without_a_replay_the_backup_comes_back_as_it_was(
    backend: Backend, config: Config, tmp_path: Path
) -> None:
    """The replay is what keeps revoked tokens dead: without it they are back (and the
    command says so), which is why operations.md says to replay."""
    story = await live_through(config, tmp_path / "backup")
    await wipe(backend, config)
    restored = await restore_backup(config, tmp_path / "backup", environ=KEY)
    assert restored.replay is None
    runtime = await Runtime.open(config, environ=KEY)
    try:
        assert await runtime.store.get(story.deleted[0].id) is not None
    finally:
        await runtime.close()


async def test_several_logs_are_applied_in_time_order(
    backend: Backend, config: Config, tmp_path: Path
) -> None:
    """Two hosts' logs (here: the records before and after the backup, given in the wrong
    order) replay as one log in time order; logs that start after the backup are flagged."""
    story = await live_through(config, tmp_path / "backup")
    backup_time = read_manifest(tmp_path / "backup").time
    entries = config.audit_log.read_text().splitlines()
    stamp = rfc3339(math.floor(backup_time))
    before = [line for line in entries if json.loads(line)["time"] < stamp]
    after = [line for line in entries if json.loads(line)["time"] >= stamp]
    assert before
    assert after
    early, late = tmp_path / "host-a.log", tmp_path / "host-b.log"
    early.write_text("\n".join(before) + "\n")
    late.write_text("\n".join(after) + "\n")
    await wipe(backend, config)

    restored = await restore_backup(config, tmp_path / "backup", replay=[late, early], environ=KEY)
    report = restored.replay
    assert isinstance(report, ReplayReport)
    assert not report.starts_after_backup
    assert report.deleted == [story.deleted[0].id, story.leaked[0].id]
    assert report.lost == [story.lost.id]

    await wipe(backend, config)
    alone = await restore_backup(config, tmp_path / "backup", replay=[late], environ=KEY)
    assert isinstance(alone.replay, ReplayReport)
    assert alone.replay.starts_after_backup  # nothing older than the backup: maybe rotated


async def test_a_leaked_previous_secret_stays_dead_when_its_rotation_is_missing(
    backend: Backend, config: Config, tmp_path: Path, aiohttp_client: ClientMaker
) -> None:
    """Host A rotated a token with a grace after the backup, host B then revoked its
    previous secret as leaked, and only B's log is given: the restored token's current
    secret is the leaked one, so the replay deletes the token (ending a grace would leave
    the leaked secret working)."""
    clock = ShiftedClock()
    runtime = await Runtime.open(config, environ=KEY, clock=clock)
    try:
        token, leaked = await mint(runtime, "Reader")
        await take_backup(config, tmp_path / "backup", KEY)
        clock.shift = 5.0
        await runtime.service.rotate(actor=CLI, client=None, token_id=token.id, grace="1h")
        revoked = await runtime.service.revoke_leaked(
            actor=SECRET_HOLDER, client=None, secret=leaked
        )
        assert revoked == (token.id, "previous_secret")
    finally:
        await runtime.close()
    host_b = tmp_path / "host-b.log"
    records = [json.loads(line) for line in config.audit_log.read_text().splitlines()]
    host_b.write_text(
        "".join(json.dumps(r) + "\n" for r in records if r["action"] != "token.rotate")
    )
    await wipe(backend, config)

    restored = await restore_backup(
        config, tmp_path / "backup", force=True, replay=[host_b], environ=KEY
    )

    assert isinstance(restored.replay, ReplayReport)
    assert restored.replay.leaked_previous == [token.id]
    runtime = await Runtime.open(config, environ=KEY)
    try:
        client = await auth_client(aiohttp_client, runtime)
        assert await auth_status(client, leaked) == 401
    finally:
        await runtime.close()
