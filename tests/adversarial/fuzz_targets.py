"""Coverage-guided fuzz targets (atheris, libFuzzer) for the request describer, the
configuration loader and the admin API's create/PATCH bodies.

Each target runs in a process of its own (tests/adversarial/fuzz_main.py), because
libFuzzer ends the process when it is done. ``scripts/fuzz --seconds 600`` runs every
target for longer (``tests/adversarial/test_fuzz.py`` runs each briefly in the test
command). One target by hand::

    .venv/bin/python -m tests.adversarial.fuzz_main TARGET -max_total_time=60 CORPUS_DIR

A target fails (libFuzzer reports a crash and saves the input) when an exception escapes
it: describe() raising or breaking its guarantees; parse_config() raising anything but
ConfigError; the admin API answering 5xx, leaving its error shape, or changing the store
on a refusal. ``admin-bodies`` needs AUTHSVC_FUZZ_WORKDIR (a scratch folder) and takes
AUTHSVC_FUZZ_STORE (a store URL; default an SQLite file in the workdir).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from authsvc.config.errors import ConfigError
from authsvc.config.load import parse_config
from authsvc.rules.ipfilter import NetworkSet
from authsvc.rules.request import Described, Rejected, describe
from authsvc.service.runtime import Runtime
from authsvc.web.errors import FIELD_CODES, STATUS_BY_CODE
from tests.adversarial.invariants import check_described, reference_path
from tests.auth_client import AdminTestServer
from tests.factories import make_config

Target = Callable[[bytes], None]
CONFIG_PATH = Path("/nonexistent-authsvc-fuzz/authsvc.yaml")
ADMIN_PERMISSIONS = ["ManageOrganizationTokens", "ViewOrganizationTokens", "Reader", "Writer"]
#: The first byte of an admin-bodies input picks the call; the rest is the body.
ADMIN_CALLS = ("create", "patch")


def request_target() -> Target:
    """describe() on arbitrary bytes (as Latin-1 text): never raises; agrees with the
    reference model; an accepted target reads the same to a careless upstream."""
    trusted = NetworkSet.compile(["127.0.0.1/32", "::1/128"])

    def run(data: bytes) -> None:
        target = data.decode("latin-1")
        result = describe("GET", target, "203.0.113.5", "127.0.0.1", trusted)
        expected = reference_path(target)
        if isinstance(result, Described):
            if expected != (result.path, result.segments):
                raise AssertionError(f"{target!r}: {result} but the reference says {expected}")
            check_described(target, result)
        elif not isinstance(result, Rejected) or expected is not None:
            raise AssertionError(f"{target!r}: {result} but the reference says {expected}")

    return run


def config_target() -> Target:
    """parse_config() on arbitrary text: a Config or a ConfigError, nothing else."""

    def run(data: bytes) -> None:
        try:
            parse_config(data.decode("utf-8", "replace"), CONFIG_PATH)
        except ConfigError as error:
            if not error.errors or not all(isinstance(e, str) and e for e in error.errors):
                raise AssertionError(f"a ConfigError without sentences: {error.errors!r}") from None

    return run


class AdminHarness:
    """One runtime and admin listener for the whole run, an admin token and a victim."""

    def __init__(self, workdir: Path, store_url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.workdir = workdir
        self.store_url = store_url
        self.headers: dict[str, str] = {}
        self.victim = ""
        self.victim_permissions: list[str] = []
        self.client: Any = None
        self.total: int | None = None  # tokens in the store, as the API must count them

    async def start(self) -> None:
        config = make_config(self.workdir, store=self.store_url)
        runtime = await Runtime.open(config, environ={"AUTHSVC_SECRET_KEY": "k" * 40})
        _, secret = await runtime.service.create(
            actor="cli",
            client=None,
            name="fuzz admin",
            permissions=ADMIN_PERMISSIONS,
            expires_in=None,
            ip_filter=None,
        )
        victim, _ = await runtime.service.create(
            actor="cli",
            client=None,
            name="fuzz victim",
            permissions=["Reader"],
            expires_in=None,
            ip_filter=None,
        )
        self.headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
        self.victim, self.victim_permissions = victim.id, sorted(victim.permissions)
        self.client = TestClient(AdminTestServer(runtime))
        await self.client.start_server()

    async def _json(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
        response = await self.client.request(method, path, data=body, headers=self.headers)
        text = await response.text()
        if response.status >= 500:
            raise AssertionError(f"{method} {path} {body!r}: {response.status} {text}")
        if self.headers["Authorization"].removeprefix("Bearer ") in text:
            raise AssertionError(f"{method} {path} {body!r}: the admin secret came back")
        return response.status, json.loads(text)

    async def _total(self) -> int:
        _, listed = await self._json("GET", "/admin/v1/tokens?limit=1")
        return int(listed["total"])

    async def call(self, data: bytes) -> None:
        """Send ``data[1:]`` as the body of the call ``data[0]`` picks, and check the answer
        and what it changed."""
        if self.total is None:
            self.total = await self._total()
        kind = ADMIN_CALLS[data[0] % len(ADMIN_CALLS)] if data else "create"
        body = data[1:]
        if kind == "create":
            status, answer = await self._json("POST", "/admin/v1/tokens", body)
        else:
            status, answer = await self._json("PATCH", f"/admin/v1/tokens/{self.victim}", body)
        where = f"{kind} {body!r} -> {status} {answer}"
        if status >= 400:
            error = answer["error"]
            assert set(answer) == {"error"}, where
            assert set(error) <= {"code", "message", "field"}, where
            assert STATUS_BY_CODE[error["code"]] == status, where
            assert error["message"], where
            assert "field" not in error or error["code"] in FIELD_CODES, where
        if kind == "create":
            self.total += status == 201
            assert await self._total() == self.total, where
        else:
            if status == 200:
                self.victim_permissions = sorted(answer["permissions"])
            _, victim = await self._json("GET", f"/admin/v1/tokens/{self.victim}")
            assert sorted(victim["permissions"]) == self.victim_permissions, where


def admin_target() -> Target:
    """The admin API's create and PATCH on arbitrary bodies: never 5xx, refusals in the
    error shape with their documented status, nothing changed by a refusal."""
    workdir = Path(os.environ["AUTHSVC_FUZZ_WORKDIR"])
    store_url = os.environ.get("AUTHSVC_FUZZ_STORE") or f"sqlite:///{workdir / 'fuzz.db'}"
    harness = AdminHarness(workdir, store_url)
    harness.loop.run_until_complete(harness.start())

    def run(data: bytes) -> None:
        harness.loop.run_until_complete(harness.call(data))

    return run


TARGETS: dict[str, Callable[[], Target]] = {
    "request": request_target,
    "config": config_target,
    "admin-bodies": admin_target,
}
