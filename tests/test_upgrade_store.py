"""Upgrades keep data: a store made by an older release opens under this code (``authsvc
migrate``, or ``serve`` on its own), every token still working, and what later schema
versions added behaves (rotation with a grace; rate limits, usage counts and the store's
own values), on both stores.

The old store is made by the old code itself, not by hand: each release of
:data:`RELEASES` is taken from the repository's history (``git archive``) and its own CLI
creates, rotates (with a grace, where it can) and deletes tokens. Without that history (a
shallow clone) the test cannot run: it is skipped, or fails in CI (``git fetch
--unshallow`` fixes it).
"""

from __future__ import annotations

import http.client
import io
import json
import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from authsvc.service.key_check import KeyRefused
from authsvc.service.runtime import Runtime
from authsvc.store import HOUR, KEY_CHECK, HourlyCount, TokenChange
from tests.auth_client import auth_client as make_auth_client
from tests.factories import BASE, config_data, make_config
from tests.processes import REPO, start_authsvc
from tests.required import unavailable
from tests.stores import Backend
from tests.webapp import ENVIRON, READ_ITEMS, ClientMaker, bearer


@dataclass(frozen=True, slots=True)
class Release:
    """An earlier release whose stores must keep working."""

    commit: str
    schema: int  # the schema version its stores have
    rotates_with_grace: bool  # its CLI has ``token rotate --grace``
    knows_admin_proxies: bool  # its configuration has (and needs) admin_trusted_proxies


RELEASES = (
    Release("4ee65c6", 1, rotates_with_grace=False, knows_admin_proxies=False),
    Release("3ba8178", 2, rotates_with_grace=True, knows_admin_proxies=True),
)
#: The schema version this code migrates every older store to.
CURRENT_SCHEMA = 3
TIMEOUT = 60
KEY = "k" * 40  # the HMAC key both releases use (AUTHSVC_SECRET_KEY)

# What the old release's CLI runs: its own package first on the path, checked.
_RUN_OLD = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); import authsvc;"
    " assert authsvc.__file__.startswith(sys.path[0]), authsvc.__file__;"
    " from authsvc.cli import main; sys.exit(main(sys.argv[1:]))"
)


@dataclass(frozen=True, slots=True)
class OldRelease:
    """An earlier release, unpacked: its ``authsvc`` package is in ``root``."""

    release: Release
    root: Path


@pytest.fixture(scope="session", params=RELEASES, ids=lambda release: release.commit)
def old_release(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> OldRelease:
    """An earlier release's ``authsvc`` package, unpacked from the repository's history."""
    release: Release = request.param
    try:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", release.commit, "authsvc"],
            capture_output=True,
            timeout=TIMEOUT,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        unavailable(f"release {release.commit} is not in this clone's history ({error})")
    root = tmp_path_factory.mktemp(f"authsvc-{release.commit}")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(root, filter="data")
    return OldRelease(release, root)


@dataclass(frozen=True, slots=True)
class OldStore:
    """A store an earlier release made: its URL, the release, and the tokens it issued,
    by name (``graced`` also keeps its ``previous`` secret, still in its grace)."""

    url: str
    folder: Path
    release: Release
    tokens: dict[str, dict[str, Any]]


def _environ() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSVC_")}
    env.pop("PYTHONPATH", None)  # the old package alone, not this checkout
    return {**env, "AUTHSVC_SECRET_KEY": KEY}


def old_cli(release: OldRelease, folder: Path, *args: str) -> str:
    """Run the old release's CLI with the configuration in ``folder``; its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", _RUN_OLD, str(release.root), "--config", "old.yaml", *args],
        cwd=folder,
        env=_environ(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"authsvc {release.release.commit} {' '.join(args)}: {done.stderr}"
    return done.stdout


def new_cli(folder: Path, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run this checkout's CLI."""
    env = {**_environ(), "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "authsvc", "--config", str(config), *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def old_config(release: Release, folder: Path, store_url: str) -> None:
    """A configuration file in the old release's format (the first knew no
    admin_trusted_proxies, later ones need it)."""
    proxies = ("trusted_proxies", "admin_trusted_proxies")
    data = {
        **{key: BASE[key] for key in proxies[: 2 if release.knows_admin_proxies else 1]},
        "store": store_url,
        "secret_key_file": str(folder / "unused.key"),  # AUTHSVC_SECRET_KEY wins
        "audit_log": str(folder / "audit.log"),
        "permissions": BASE["permissions"],
        "ip_filters": BASE["ip_filters"],
        "security_policy": {
            "tokens_enabled": True,
            "max_lifetime": None,
            "enforce_ip_filter": None,
            "allow_permission_updates": True,
        },
    }
    (folder / "old.yaml").write_text(yaml.safe_dump(data))


@pytest.fixture
def old_store(old_release: OldRelease, store_url: str, tmp_path: Path) -> OldStore:
    """A store (each kind) made and used by an earlier release: tokens plain, expiring,
    fenced by an IP filter and rotated, one rotated with a grace (where the release can),
    and one deleted."""
    release = old_release.release
    folder = tmp_path / "old"
    folder.mkdir()
    old_config(release, folder, store_url)
    graced = ("graced",) if release.rotates_with_grace else ()
    tokens: dict[str, dict[str, Any]] = {}
    for name, extra in (
        ("plain", ()),
        ("expiring", ("--expires-in", "30d")),
        ("fenced", ("--ip-filter", "office")),
        ("rotated", ()),
        *((name, ()) for name in graced),
        ("deleted", ()),
    ):
        create = ("token", "create", "--name", name, "--permission", "Reader", *extra)
        tokens[name] = json.loads(old_cli(old_release, folder, *create, "--json"))
    rotated = old_cli(old_release, folder, "token", "rotate", tokens["rotated"]["id"], "--json")
    tokens["rotated"]["token"] = json.loads(rotated)["token"]
    for name in graced:
        rotate = ("token", "rotate", tokens[name]["id"], "--grace", "1h", "--json")
        tokens[name]["previous"] = tokens[name]["token"]
        tokens[name]["token"] = json.loads(old_cli(old_release, folder, *rotate))["token"]
    old_cli(old_release, folder, "token", "delete", tokens["deleted"]["id"])
    return OldStore(store_url, folder, release, tokens)


async def open_new(store: OldStore, tmp_path: Path) -> Runtime:
    """This code's runtime on the store, with the same key."""
    config = make_config(tmp_path, store=store.url)
    return await Runtime.open(config, environ={**ENVIRON, "AUTHSVC_SECRET_KEY": KEY})


class TestUpgrade:
    async def test_opening_adds_the_new_tables_empty(
        self, old_store: OldStore, backend: Backend
    ) -> None:
        """Opening an old store (the schema steps alone, no key or service) brings it to
        the current version: every token is there as the old release issued it, without a
        rate limit, and nothing is counted or kept about the store yet."""
        assert await backend.recorded_versions() == [old_store.release.schema]
        store = backend.new_store()
        await store.open()
        try:
            assert await backend.recorded_versions() == [CURRENT_SCHEMA]
            kept = {r.name: r for r in await store.all_tokens()}
            assert set(kept) == set(old_store.tokens) - {"deleted"}
            for name, record in kept.items():
                assert record.id == old_store.tokens[name]["id"]
                assert record.rate_limit is None
                assert (record.grace_ends_at is not None) == (name == "graced")
                assert await store.usage(record.id, 0, 2**40) == []
            assert await store.read_meta(KEY_CHECK) is None
        finally:
            await store.close()

    async def test_a_missing_key_leaves_the_old_schema_alone(
        self, old_store: OldStore, backend: Backend, tmp_path: Path
    ) -> None:
        """Without its key, an old store that holds tokens is refused before anything is
        written, its schema migration included: the old release can still open it (SPEC
        §13, "nothing is written"), and no key is made up. (Another key cannot be told
        from the right one here: a store of the previous release records no check value.)"""
        config = make_config(tmp_path, store=old_store.url)
        with pytest.raises(KeyRefused, match="is missing"):
            await Runtime.open(config, environ={})
        assert await backend.recorded_versions() == [old_store.release.schema]
        assert not config.secret_key_file.exists()

    async def test_migrate_keeps_every_token_working(
        self,
        old_store: OldStore,
        backend: Backend,
        tmp_path: Path,
        aiohttp_client: ClientMaker,
    ) -> None:
        """``authsvc migrate`` upgrades the old schema; every old secret authenticates as
        before (the deleted one and the rotated-away one do not; a previous secret still
        in its grace does, until the new one is used); records are intact."""
        config = tmp_path / "new.yaml"
        config.write_text(yaml.safe_dump(config_data(tmp_path, store=old_store.url)))
        assert await backend.recorded_versions() == [old_store.release.schema]
        migrated = new_cli(tmp_path, config, "migrate")
        assert migrated.returncode == 0, migrated.stderr
        assert f"schema is at version {CURRENT_SCHEMA}" in migrated.stdout
        assert await backend.recorded_versions() == [CURRENT_SCHEMA]
        runtime = await open_new(old_store, tmp_path)
        try:
            client = await make_auth_client(aiohttp_client, runtime)

            async def status(name: str, ip: str = "127.0.0.1", *, which: str = "token") -> int:
                headers = {**bearer(old_store.tokens[name][which]), **READ_ITEMS, "X-Real-IP": ip}
                async with client.get("/auth", headers=headers) as response:
                    return response.status

            assert await status("plain") == 200
            assert await status("expiring") == 200
            assert await status("fenced", "10.1.2.3") == 200
            assert await status("fenced") == 403
            assert await status("rotated") == 200
            assert await status("deleted") == 401
            if old_store.release.rotates_with_grace:
                assert await status("graced", which="previous") == 200
                assert await status("graced") == 200
                assert await status("graced", which="previous") == 401  # the new one was used
            kept = {r.name: r for r in await runtime.store.all_tokens()}
            assert set(kept) == set(old_store.tokens) - {"deleted"}
            for name, record in kept.items():
                issued = old_store.tokens[name]
                assert record.id == issued["id"]
                assert record.ip_filter == issued["ip_filter"]
                assert record.rate_limit is None
                assert record.via_previous is False
                if name != "graced":
                    assert record.grace_ends_at is None
        finally:
            await runtime.close()

    async def test_the_new_columns_work_on_an_upgraded_store(
        self, old_store: OldStore, tmp_path: Path, aiohttp_client: ClientMaker
    ) -> None:
        """An old token rotated with a grace by this code: both secrets work, the first
        use of the new one ends the old one, and the store forgets it. Old tokens take a
        rate limit and usage counts."""
        runtime = await open_new(old_store, tmp_path)  # opening migrates, as serve does
        try:
            client = await make_auth_client(aiohttp_client, runtime)
            token = old_store.tokens["plain"]
            _, new = await runtime.service.rotate(
                actor="cli", client=None, token_id=token["id"], grace="1h"
            )

            async def status(secret: str) -> int:
                async with client.get("/auth", headers={**bearer(secret), **READ_ITEMS}) as r:
                    return r.status

            assert await status(token["token"]) == 200
            assert await status(new) == 200
            assert await status(token["token"]) == 401
            await runtime.service.graces.close()
            old_digest = runtime.service.digest(token["token"])
            assert await runtime.store.get_by_digest(old_digest) is None
            store, fenced = runtime.store, old_store.tokens["fenced"]["id"]
            limited = await store.update_token(fenced, TokenChange(rate_limit="5/s"))
            assert limited is not None
            assert limited.rate_limit == "5/s"
            assert limited.ip_filter == "office"
            counted = HourlyCount(fenced, 1_700_000_000 // HOUR * HOUR, "allowed", 3)
            await store.add_usage([counted])
            assert await store.usage(fenced, 0, 2**40) == [counted]
        finally:
            await runtime.close()

    def test_serve_migrates_on_its_own_and_the_old_release_then_refuses(
        self, old_store: OldStore, old_release: OldRelease, tmp_path: Path
    ) -> None:
        """``serve`` (no migrate first) answers the old secrets; afterwards the old
        release refuses the upgraded store instead of writing to a schema it does not
        know."""
        key_file = tmp_path / "serve.key"
        key_file.write_text(KEY.encode().hex())  # the same key, as a key file holds it
        key_file.chmod(0o600)
        server = start_authsvc(
            tmp_path / "serve", store=old_store.url, secret_key_file=str(key_file)
        )
        try:
            for name in ("plain", "expiring", "rotated"):
                code = _auth(server.auth_port, old_store.tokens[name]["token"])
                assert code == 200, (name, server.log())
        finally:
            server.stop()
        old_list = ("--config", "old.yaml", "token", "list")
        refused = subprocess.run(
            [sys.executable, "-c", _RUN_OLD, str(old_release.root), *old_list],
            cwd=old_store.folder,
            env=_environ(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert refused.returncode != 0
        assert "newer than this authsvc supports" in refused.stderr


def _auth(port: int, secret: str) -> int:
    """The status of /auth on ``port`` for a ``Reader`` request presenting ``secret``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/auth", headers={**bearer(secret), **READ_ITEMS})
        return connection.getresponse().status
    finally:
        connection.close()
