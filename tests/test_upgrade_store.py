"""Upgrades keep data: a store made by an older release opens under this code (``authsvc
migrate``, or ``serve`` on its own), every token still working, and the new columns of
rotation with a grace behave (both stores).

The old store is made by the old code itself, not by hand: the release at commit
:data:`OLD_RELEASE` is taken from the repository's history (``git archive``) and its own
CLI creates, rotates and deletes tokens. Without that history (a shallow clone) the test
cannot run: it is skipped, or fails in CI (``git fetch --unshallow`` fixes it).
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

from authsvc.service.runtime import Runtime
from tests.auth_client import auth_client as make_auth_client
from tests.factories import BASE, config_data, make_config
from tests.processes import REPO, start_authsvc
from tests.required import unavailable
from tests.stores import Backend
from tests.webapp import ENVIRON, READ_ITEMS, ClientMaker, bearer

#: The release whose stores must keep working (schema version 1, before rotation grace).
OLD_RELEASE = "4ee65c6"
TIMEOUT = 60
KEY = "k" * 40  # the HMAC key both releases use (AUTHSVC_SECRET_KEY)

# What the old release's CLI runs: its own package first on the path, checked.
_RUN_OLD = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); import authsvc;"
    " assert authsvc.__file__.startswith(sys.path[0]), authsvc.__file__;"
    " from authsvc.cli import main; sys.exit(main(sys.argv[1:]))"
)


@pytest.fixture(scope="session")
def old_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The old release's ``authsvc`` package, unpacked from the repository's history."""
    try:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", OLD_RELEASE, "authsvc"],
            capture_output=True,
            timeout=TIMEOUT,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        unavailable(f"release {OLD_RELEASE} is not in this clone's history ({error})")
    root = tmp_path_factory.mktemp(f"authsvc-{OLD_RELEASE}")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(root, filter="data")
    return root


@dataclass(frozen=True, slots=True)
class OldStore:
    """A store the old release made: its URL and the tokens it issued, by name."""

    url: str
    folder: Path
    tokens: dict[str, dict[str, Any]]


def _environ() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSVC_")}
    env.pop("PYTHONPATH", None)  # the old package alone, not this checkout
    return {**env, "AUTHSVC_SECRET_KEY": KEY}


def old_cli(release: Path, folder: Path, *args: str) -> str:
    """Run the old release's CLI with the configuration in ``folder``; its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", _RUN_OLD, str(release), "--config", "old.yaml", *args],
        cwd=folder,
        env=_environ(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"old authsvc {' '.join(args)}: {done.stderr}"
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


def old_config(folder: Path, store_url: str) -> None:
    """A configuration file in the old release's format (it knew no admin_trusted_proxies)."""
    data = {
        "store": store_url,
        "secret_key_file": str(folder / "unused.key"),  # AUTHSVC_SECRET_KEY wins
        "audit_log": str(folder / "audit.log"),
        "trusted_proxies": BASE["trusted_proxies"],
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
def old_store(old_release: Path, store_url: str, tmp_path: Path) -> OldStore:
    """A store (each kind) made and used by the old release: tokens plain, expiring,
    fenced by an IP filter and rotated, and one deleted."""
    folder = tmp_path / "old"
    folder.mkdir()
    old_config(folder, store_url)
    tokens: dict[str, dict[str, Any]] = {}
    for name, extra in (
        ("plain", ()),
        ("expiring", ("--expires-in", "30d")),
        ("fenced", ("--ip-filter", "office")),
        ("rotated", ()),
        ("deleted", ()),
    ):
        create = ("token", "create", "--name", name, "--permission", "Reader", *extra)
        tokens[name] = json.loads(old_cli(old_release, folder, *create, "--json"))
    rotated = old_cli(old_release, folder, "token", "rotate", tokens["rotated"]["id"], "--json")
    tokens["rotated"]["token"] = json.loads(rotated)["token"]
    old_cli(old_release, folder, "token", "delete", tokens["deleted"]["id"])
    return OldStore(store_url, folder, tokens)


async def open_new(store: OldStore, tmp_path: Path) -> Runtime:
    """This code's runtime on the store, with the same key."""
    config = make_config(tmp_path, store=store.url)
    return await Runtime.open(config, environ={**ENVIRON, "AUTHSVC_SECRET_KEY": KEY})


class TestUpgrade:
    async def test_migrate_keeps_every_token_working(
        self,
        old_store: OldStore,
        backend: Backend,
        tmp_path: Path,
        aiohttp_client: ClientMaker,
    ) -> None:
        """``authsvc migrate`` upgrades the old schema; every old secret authenticates as
        before (the deleted one and the rotated-away one do not); records are intact."""
        config = tmp_path / "new.yaml"
        config.write_text(yaml.safe_dump(config_data(tmp_path, store=old_store.url)))
        assert await backend.recorded_versions() == [1]  # what the old release made
        migrated = new_cli(tmp_path, config, "migrate")
        assert migrated.returncode == 0, migrated.stderr
        assert "schema is at version 2" in migrated.stdout
        assert await backend.recorded_versions() == [2]
        runtime = await open_new(old_store, tmp_path)
        try:
            client = await make_auth_client(aiohttp_client, runtime)

            async def status(name: str, ip: str = "127.0.0.1") -> int:
                secret = old_store.tokens[name]["token"]
                headers = {**bearer(secret), **READ_ITEMS, "X-Real-IP": ip}
                async with client.get("/auth", headers=headers) as response:
                    return response.status

            assert await status("plain") == 200
            assert await status("expiring") == 200
            assert await status("fenced", "10.1.2.3") == 200
            assert await status("fenced") == 403
            assert await status("rotated") == 200
            assert await status("deleted") == 401
            kept = {r.name: r for r in await runtime.store.all_tokens()}
            assert set(kept) == {"plain", "expiring", "fenced", "rotated"}
            for name, record in kept.items():
                issued = old_store.tokens[name]
                assert record.id == issued["id"]
                assert record.ip_filter == issued["ip_filter"]
                assert (record.grace_ends_at, record.via_previous) == (None, False)
        finally:
            await runtime.close()

    async def test_the_new_columns_work_on_an_upgraded_store(
        self, old_store: OldStore, tmp_path: Path, aiohttp_client: ClientMaker
    ) -> None:
        """An old token rotated with a grace by this code: both secrets work, the first
        use of the new one ends the old one, and the store forgets it."""
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
        finally:
            await runtime.close()

    def test_serve_migrates_on_its_own_and_the_old_release_then_refuses(
        self, old_store: OldStore, old_release: Path, tmp_path: Path
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
            [sys.executable, "-c", _RUN_OLD, str(old_release), *old_list],
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
