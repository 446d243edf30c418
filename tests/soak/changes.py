"""The soak's changes while the load runs: tokens created, rotated, updated and deleted
through the admin API and the CLI, side by side with the reloads of ``reloads``. Each
change goes into the timeline with the interval in which it takes effect:

- through this instance's admin API: within the call itself (SPEC §6: "at once");
- through the CLI: from the command's start to ``cli_settle`` after it ends (SPEC §6:
  within 1 s; the soak's cache TTL is 1 s too).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from ipaddress import ip_address

from authsvc.rules.decision import Reason, check_token
from authsvc.rules.tokens import TokenRecord
from tests.processes import AuthsvcServer
from tests.soak.admin import AdminApi, Cli, Outcome, state_of
from tests.soak.oracle import Timeline, TokenState
from tests.soak.reloads import Pace, Reloader
from tests.soak.workload import Knobs, expiry_choices, filter_names, grantable

#: Tokens kept besides the admin ones: fewer, and it creates; more, and it deletes.
POOL = (3, 14)
#: The changes made in turn (within the pool's bounds), so that a short run has each kind.
ORDER = {
    False: ("create", "rotate", "delete", "update", "create", "rotate"),  # the admin API
    True: ("create", "delete", "rotate", "update"),  # the CLI
}


@dataclass
class Changer:
    """Makes the changes; ``live`` and ``retired`` feed the load, ``timeline`` the oracle."""

    server: AuthsvcServer
    api: AdminApi
    timeline: Timeline
    rng: random.Random
    reloader: Reloader
    pace: Pace = field(default_factory=Pace)
    live: dict[str, TokenState] = field(default_factory=dict)
    retired: list[str] = field(default_factory=list)
    admins: list[str] = field(default_factory=list)  # admin token ids, newest last
    made: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    samples: dict[str, str] = field(default_factory=dict)  # one message per refusal kind
    failures: list[str] = field(default_factory=list)
    running: asyncio.Event = field(default_factory=asyncio.Event)
    claimed: set[str] = field(default_factory=set)  # tokens a change is working on
    keep: set[str] = field(default_factory=set)  # seeded tokens: never deleted
    turns: dict[bool, int] = field(default_factory=lambda: {False: 0, True: 0})
    busy: asyncio.Lock = field(default_factory=asyncio.Lock)  # an admin API change under way
    cli_busy: asyncio.Lock = field(default_factory=asyncio.Lock)  # a CLI change under way

    @property
    def cli(self) -> Cli:
        return Cli(self.server)

    @property
    def knobs(self) -> Knobs:
        """The configuration variant written last."""
        return self.reloader.knobs

    def note(self, kind: str, outcome: Outcome) -> bool:
        """Count a call's outcome; True when it succeeded."""
        if outcome.failure:
            self.failures.append(f"{kind}: {outcome.failure}")
        elif outcome.refused:
            self.refused[outcome.refused] += 1
            self.samples.setdefault(outcome.refused, outcome.detail)
        else:
            self.made[kind] += 1
            return True
        return False

    def became(self, token_id: str, start: float, end: float, state: TokenState | None) -> None:
        """Record the token's new state; its old secret joins the retired ones."""
        old = self.live.pop(token_id, None)
        if old is not None and (state is None or state.secret != old.secret):
            self.retired = [*self.retired[-63:], old.secret]
        if state is not None:
            self.live[token_id] = state
        self.timeline.token(token_id, start, end, state)

    def admin(self) -> tuple[TokenState, str] | None:
        """The newest admin token and an address to call from, if the configuration in
        force accepts it from there for a while yet (else None: mint another)."""
        if not self.admins or not self.knobs.enabled:
            return None
        state = self.live[self.admins[-1]]
        config = self.timeline.config(time.time())
        # X-Real-IP is believed from loopback on the admin listener; 127.0.0.1 is the
        # fallback for a reading that trusts no peer.
        addresses = ["127.0.0.1", "10.1.2.3"] if self.knobs.trust_loopback else ["127.0.0.1"]
        for address in addresses:
            verdict = check_token(state.record, ip_address(address), config, time.time() + 20)
            if verdict is Reason.OK:
                return state, address
        return None

    async def mint_admin(self) -> None:
        """A new admin token through the CLI (the first one, or when the policy has made
        the last one expire): every permission, the policy's longest lifetime."""
        name = f"soak-admin-{len(self.admins) + 1}"
        args = ["create", "--name", name, "--all-permissions", "--json"]
        if self.knobs.max_lifetime is not None:
            args += ["--expires-in", self.knobs.max_lifetime]
        start = time.time()
        outcome = await self.cli.run(*args)
        if self.note("cli create admin", outcome) and outcome.token:
            state = state_of(outcome.token, outcome.token["token"])
            self.became(state.record.id, start, time.time() + self.pace.cli_settle, state)
            self.admins.append(state.record.id)

    def _target(self, operation: str) -> str | None:
        """A token no other change is working on: never an admin token, and never a seeded
        one for a delete (they are the ones a short run sees expire)."""
        kept = set(self.admins) | (self.keep if operation == "delete" else set())
        targets = sorted(set(self.live) - kept - self.claimed)
        return self.rng.choice(targets) if targets else None

    def _operation(self, use_cli: bool) -> str:
        count = len(set(self.live) - set(self.admins))
        if count < POOL[0]:
            return "create"
        if count > POOL[1]:
            return "delete"
        turn = self.turns[use_cli]
        self.turns[use_cli] += 1
        return ORDER[use_cli][turn % len(ORDER[use_cli])]

    def _permissions(self, holder: TokenRecord | None) -> list[str]:
        names = [n for n in grantable(self.knobs) if holder is None or n in holder.permissions]
        return sorted(self.rng.sample(names, self.rng.randint(1, min(3, len(names)))))

    def _filter(self) -> str | None:
        if self.knobs.enforce is not None:
            return None  # the enforced filter is given to every token; asking another is 422
        return self.rng.choice([None, None, *filter_names(self.knobs)])

    async def step(self, use_cli: bool) -> None:
        """One token change through the CLI or the admin API (none while tokens are
        switched off); the admin API's loop also mints admin tokens when needed."""
        if not self.knobs.enabled:
            return
        admin = None if use_cli else self.admin()
        if not use_cli and admin is None:
            await self.mint_admin()
            return
        operation = self._operation(use_cli)
        target = self._target(operation)
        if operation != "create" and target is None:
            return
        claimed = set() if target is None else {target}
        self.claimed |= claimed  # one change at a time per token: its history stays ordered
        try:
            if admin is None:
                await self._by_cli(operation, target, time.time())
            else:
                await self._by_api(operation, target, admin, time.time())
        finally:
            self.claimed -= claimed

    async def _by_api(
        self, operation: str, target: str | None, admin: tuple[TokenState, str], start: float
    ) -> None:
        kind, (actor, client) = f"admin {operation}", admin
        if operation == "create":
            expiries = expiry_choices(self.knobs, actor.record, start)
            if not expiries:
                return  # the admin token expires too soon to hand on any lifetime
            body = {
                "name": f"soak-{self.rng.getrandbits(40):010x}",
                "permissions": self._permissions(actor.record),
                "expires_in": self.rng.choice(expiries),
                "ip_filter": self._filter(),
            }
            outcome = await self.api.call("POST", "", actor.secret, client, body)
        elif operation == "rotate":
            outcome = await self.api.call("POST", f"/{target}/rotate", actor.secret, client)
        elif operation == "update":
            body = {"permissions": self._permissions(actor.record)}
            outcome = await self.api.call("PATCH", f"/{target}", actor.secret, client, body)
        else:
            outcome = await self.api.call("DELETE", f"/{target}", actor.secret, client)
        self._record(kind, outcome, target, start, time.time())

    async def _by_cli(self, operation: str, target: str | None, start: float) -> None:
        if operation == "create":
            args = ["create", "--name", f"soak-cli-{self.rng.getrandbits(40):010x}", "--json"]
            for permission in self._permissions(None):
                args += ["--permission", permission]
            expires_in = self.rng.choice(expiry_choices(self.knobs, None, start))
            args += [] if expires_in is None else ["--expires-in", expires_in]
            ip_filter = self._filter()
            args += [] if ip_filter is None else ["--ip-filter", ip_filter]
        elif operation == "update":
            args = ["update", str(target), "--json"]
            for permission in self._permissions(None):
                args += ["--permission", permission]
        else:
            args = [operation, str(target)] + (["--json"] if operation == "rotate" else [])
        outcome = await self.cli.run(*args)
        self._record(f"cli {operation}", outcome, target, start, time.time() + self.pace.cli_settle)

    def _record(
        self, kind: str, outcome: Outcome, target: str | None, start: float, end: float
    ) -> None:
        if not self.note(kind, outcome) or outcome.token is None:
            return
        if kind.endswith("delete"):
            assert target is not None
            self.became(target, start, end, None)
            return
        token = outcome.token
        secret = token.get("token") or self.live[token["id"]].secret  # update: same secret
        self.became(token["id"], start, end, state_of(token, secret))

    async def run(self, deadline: float) -> None:
        """Change tokens (admin API and CLI) and reload, side by side, until ``deadline``
        (wall clock); token changes wait while ``running`` is clear."""
        await asyncio.gather(
            self._changing(deadline, self.pace.step, use_cli=False, lock=self.busy),
            self._changing(deadline, self.pace.cli, use_cli=True, lock=self.cli_busy),
            self._reloading(deadline),
        )

    async def _changing(
        self, deadline: float, period: float, *, use_cli: bool, lock: asyncio.Lock
    ) -> None:
        while time.time() + period < deadline:
            await asyncio.sleep(period)
            await self.running.wait()
            async with lock:
                await self.step(use_cli)

    async def _reloading(self, deadline: float) -> None:
        # Reloads go on during a store outage: they need no store.
        while time.time() + self.pace.reload < deadline:
            await asyncio.sleep(self.pace.reload)
            await self.reloader.reload()

    async def pause(self) -> None:
        """Stop changing tokens (after the changes under way) until :meth:`resume`."""
        self.running.clear()
        async with self.busy, self.cli_busy:
            pass

    def resume(self) -> None:
        self.running.set()

    def seeded(self, state: TokenState, at: float) -> None:
        """A token put in the store before the service started."""
        self.keep.add(state.record.id)
        self.became(state.record.id, at, at, state)
