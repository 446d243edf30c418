"""The file watcher: every way editors and deployments replace a file is picked up
within the 2-second bound, and a file written in steps is applied once, whole."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from authsvc.config import Config
from authsvc.config.load import load_config
from authsvc.service.reload import ConfigReloader
from authsvc.service.runtime import Runtime
from tests.factories import config_data
from tests.waiting import within
from tests.webapp import ENVIRON

BOUND = 2.0  # SPEC §1: applied within 2 seconds of the write


def config_text(tmp_path: Path, **policy: Any) -> str:
    return yaml.safe_dump(config_data(tmp_path, security_policy=policy), sort_keys=False)


class Watched:
    def __init__(self, runtime: Runtime, reloader: ConfigReloader, path: Path) -> None:
        self.runtime = runtime
        self.reloader = reloader
        self.path = path
        self.applied: list[Config] = []
        original = reloader.reload

        def recording(trigger: str) -> bool:
            ok = original(trigger)
            if ok:
                self.applied.append(runtime.live.current)
            return ok

        reloader.reload = recording  # type: ignore[method-assign]

    async def wait_for(self, predicate: Any, started: float) -> float:
        """Seconds from ``started`` until ``predicate(config)`` holds (fails past 2 s)."""
        return await within(
            BOUND,
            lambda: bool(predicate(self.runtime.live.current)),
            "the configuration applied",
            since=started,
            every=0.02,
        )


@pytest.fixture
async def watched(tmp_path: Path) -> AsyncIterator[Watched]:
    folder = tmp_path / "conf"
    folder.mkdir()
    path = folder / "authsvc.yaml"
    path.write_text(config_text(tmp_path))
    runtime = await Runtime.open(load_config(path), environ=ENVIRON)
    reloader = runtime.reloader(path)
    w = Watched(runtime, reloader, path)
    reloader.start()
    yield w
    await reloader.stop()
    await runtime.close()


def lifetime(days: int) -> Any:
    return lambda config: config.policy.max_lifetime == days * 86_400


class TestWatcher:
    async def test_in_place_write(self, watched: Watched, tmp_path: Path) -> None:
        """An editor that rewrites the file in place."""
        started = time.monotonic()
        watched.path.write_text(config_text(tmp_path, max_lifetime="7d"))
        await watched.wait_for(lifetime(7), started)

    async def test_rename_save(self, watched: Watched, tmp_path: Path) -> None:
        """An editor that writes a temporary file and renames it over the original."""
        started = time.monotonic()
        temporary = watched.path.with_name(".authsvc.yaml.swp")
        temporary.write_text(config_text(tmp_path, max_lifetime="8d"))
        os.replace(temporary, watched.path)
        await watched.wait_for(lifetime(8), started)

    async def test_symlink_swap(self, tmp_path: Path) -> None:
        """Kubernetes ConfigMaps: the file is a symlink through ..data, swapped atomically."""
        root = tmp_path / "configmap"
        (root / "v1").mkdir(parents=True)
        (root / "v1" / "authsvc.yaml").write_text(config_text(tmp_path))
        (root / "..data").symlink_to("v1")
        path = root / "authsvc.yaml"
        path.symlink_to("..data/authsvc.yaml")
        runtime = await Runtime.open(load_config(path), environ=ENVIRON)
        reloader = runtime.reloader(path)
        reloader.start()
        try:
            (root / "v2").mkdir()
            (root / "v2" / "authsvc.yaml").write_text(config_text(tmp_path, max_lifetime="9d"))
            started = time.monotonic()
            (root / "..data_tmp").symlink_to("v2")
            os.replace(root / "..data_tmp", root / "..data")
            await Watched(runtime, reloader, path).wait_for(lifetime(9), started)
        finally:
            await reloader.stop()
            await runtime.close()

    async def test_file_written_in_steps_is_applied_once_whole(
        self, watched: Watched, tmp_path: Path
    ) -> None:
        """A writer pausing mid-file: the valid-looking first half is never applied."""
        full = config_text(tmp_path, max_lifetime="10d", tokens_enabled=False)
        full += "cache:\n  ttl: 7s\n"
        # The first half alone is a valid configuration (cache has defaults).
        half = full[: full.index("cache:")]
        assert load_config(_write(tmp_path / "probe.yaml", half)).cache.ttl == 5.0
        started = time.monotonic()
        with watched.path.open("w") as stream:
            stream.write(half)
            stream.flush()
            # Longer than a polling tick (so the watcher sees the half), shorter than
            # the settle time (so it waits for the rest).
            await asyncio.sleep(0.3)
            stream.write(full[len(half) :])
        await watched.wait_for(lambda config: config.cache.ttl == 7.0, started)
        await asyncio.sleep(0.8)  # let any later tick run
        assert len(watched.applied) == 1
        assert watched.applied[0].policy.tokens_enabled is False

    async def test_invalid_file_keeps_serving_then_recovers(
        self, watched: Watched, tmp_path: Path
    ) -> None:
        """A broken save changes nothing; the next good save is applied."""
        before = watched.runtime.live.current
        watched.path.write_text("permissions: [broken")
        await within(
            BOUND,
            lambda: watched.runtime.live.last_error is not None,
            "the failed reload attempted",
            every=0.02,
        )
        assert watched.runtime.live.current is before
        started = time.monotonic()
        watched.path.write_text(config_text(tmp_path, max_lifetime="11d"))
        await watched.wait_for(lifetime(11), started)
        assert watched.runtime.live.last_error is None

    async def test_missing_file_keeps_serving(self, watched: Watched, tmp_path: Path) -> None:
        """A deleted file (mid-deploy) is not an empty configuration."""
        before = watched.runtime.live.current
        watched.path.unlink()
        await asyncio.sleep(1.0)
        assert watched.runtime.live.current is before
        started = time.monotonic()
        watched.path.write_text(config_text(tmp_path, max_lifetime="12d"))
        await watched.wait_for(lifetime(12), started)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
