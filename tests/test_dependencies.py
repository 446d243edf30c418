"""The service runs on exactly the files its lock pins, and on no aiohttp with a published
request-smuggling advisory."""

from __future__ import annotations

import configparser
import re
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements.lock"
#: The first aiohttp release past the request-smuggling advisories (the last fixed in 3.14.2:
#: smuggling through a WebSocket upgrade; 3.14.3 fixed an out-of-bounds read in the parser).
SAFE_AIOHTTP = (3, 14, 3)
_PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^ ;\\]+)", re.MULTILINE)


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def install_requires() -> dict[str, str]:
    """name -> specifier of every service dependency in setup.cfg."""
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    found = {}
    for line in parser["options"]["install_requires"].strip().splitlines():
        match = re.match(r"([A-Za-z0-9_.-]+)\s*([^;]*)", line.strip())
        assert match is not None, line
        found[normalise(match.group(1))] = match.group(2).strip()
    return found


def pins() -> dict[str, str]:
    return {normalise(name): version for name, version in _PIN.findall(LOCK.read_text())}


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


class TestLock:
    def test_every_service_dependency_is_pinned(self) -> None:
        """Each install_requires entry has exactly one pinned version in the lock."""
        assert set(install_requires()) <= set(pins())

    def test_every_pin_carries_hashes(self) -> None:
        """Every pinned requirement is followed by at least one sha256 hash."""
        blocks = re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text().split("\n\n", 1)[-1])
        pinned = [block for block in blocks if _PIN.match(block)]
        assert pinned
        assert [b.split()[0] for b in pinned if "--hash=sha256:" not in b] == []

    def test_bootstrap_installs_from_the_lock_with_hashes(self) -> None:
        """scripts/bootstrap installs requirements.lock in --require-hashes mode."""
        bootstrap = (REPO / "scripts" / "bootstrap").read_text()
        assert "--require-hashes -r requirements.lock" in bootstrap

    @pytest.mark.parametrize("name", ["aiohttp", "pyyaml", "asyncpg", "prometheus-client"])
    def test_installed_versions_are_the_locked_ones(self, name: str) -> None:
        """What runs is what the lock pins."""
        assert metadata.version(name) == pins()[name]


class TestAiohttpFloor:
    def test_setup_cfg_floor_is_past_the_advisories(self) -> None:
        """install_requires admits no aiohttp older than the advisories' fixes."""
        floor = re.search(r">=\s*([0-9.]+)", install_requires()["aiohttp"])
        assert floor is not None
        assert version_tuple(floor.group(1)) >= SAFE_AIOHTTP

    def test_locked_aiohttp_is_past_the_advisories(self) -> None:
        """The pinned aiohttp is at or past the floor."""
        assert version_tuple(pins()["aiohttp"]) >= SAFE_AIOHTTP
