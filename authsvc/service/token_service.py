"""TokenService: every operation on tokens, for the admin API, the web page and the CLI.

It applies the issuance policy and, for a calling admin token, the delegation bounds;
writes the store, keeps the record cache honest and writes the audit trail. Nothing about
tokens is implemented anywhere else.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeAlias

from authsvc.rules import delegation, policy
from authsvc.rules.durations import format_duration
from authsvc.rules.policy import Refused
from authsvc.rules.tokens import (
    TokenRecord,
    check_grace,
    digest,
    is_token_id,
    new_secret,
    new_token_id,
)
from authsvc.service.audit import AuditLog
from authsvc.service.cache import RecordCache
from authsvc.service.grace import GraceEnder
from authsvc.service.key_check import KeyRefused, other_key_message
from authsvc.service.live import LiveConfig
from authsvc.service.revocation import SECRET_HOLDER, LeakedSecrets, Revoked
from authsvc.service.usage import hour_of, usage_hours
from authsvc.store import (
    KEEP,
    Keep,
    KeyCheckMismatch,
    ListQuery,
    NameTaken,
    TokenChange,
    TokenStore,
)

__all__ = ["CLI_ACTOR", "SECRET_HOLDER", "Actor", "Revoked", "TokenService"]

CLI_ACTOR = "cli"

#: Who makes a change: the calling admin token's record (bounded by what it holds), or the
#: name of an actor that is not a token (``cli``: the host's operator, not bounded).
Actor: TypeAlias = TokenRecord | str


def _not_found(token_id: str) -> Refused:
    return Refused("not_found", f"No token has the id {token_id[:40]!r}.")


def _who(actor: Actor) -> tuple[str, TokenRecord | None]:
    """(the id recorded as ``created_by`` and in the audit log, the record that bounds the
    change or None). A token id alone is refused: a token acting without its record would
    escape the delegation bounds, so a caller that forgets it fails closed."""
    if isinstance(actor, TokenRecord):
        return actor.id, actor
    if is_token_id(actor):
        raise TypeError("a token acting through TokenService must pass its record")
    return actor, None


class TokenService:
    """Create, read, update, rotate and delete tokens under the live security policy."""

    def __init__(
        self,
        store: TokenStore,
        live: LiveConfig,
        cache: RecordCache,
        audit: AuditLog,
        *,
        key: bytes,
        clock: Callable[[], float] = time.time,
        key_check: str | None = None,
    ) -> None:
        # the check value of ``key``, handed to every insert (service/key_check.py)
        self._key_check = key_check
        self._store = store
        self._live = live
        self._cache = cache
        self._audit = audit
        self._clock = clock
        self._key = key
        # digest -> (cache generation when the read began, its result)
        self._inflight: dict[bytes, tuple[int, asyncio.Future[TokenRecord | None]]] = {}
        #: Ends graces on the first use of the new secret (the /auth handler reports it).
        self.graces = GraceEnder(store, cache, audit, clock)
        self._leaks = LeakedSecrets(store, cache, audit, clock, digest=self.digest)

    async def close(self) -> None:
        """Finish the writes started off the request path."""
        await self.graces.close()

    # -- lookups ---------------------------------------------------------------------

    def digest(self, secret: str) -> bytes:
        return digest(self._key, secret)

    def cached(self, token_digest: bytes) -> TokenRecord | None:
        """The record for a digest if the cache holds it (never awaits)."""
        return self._cache.get(token_digest)

    async def lookup(self, token_digest: bytes) -> TokenRecord | None:
        """The record for a digest from the cache, else the store (one query per digest
        however many requests wait for it). Raises StoreUnavailable.

        A request joins a store read already under way only if no change has reached the
        cache since that read began: a read that started before a revocation may return
        the revoked record, and a request that starts after the revocation completed must
        not be answered from it (SECURITY 32)."""
        record = self._cache.get(token_digest)
        if record is not None:
            return record
        generation = self._cache.generation
        pending = self._inflight.get(token_digest)
        if pending is not None and pending[0] == generation:
            return await asyncio.shield(pending[1])
        future: asyncio.Future[TokenRecord | None] = asyncio.get_running_loop().create_future()
        entry = (generation, future)
        self._inflight[token_digest] = entry
        try:
            record = await self._store.get_by_digest(token_digest)
            if record is not None and record.via_previous and self.graces.ended(record):
                record = None  # ended here; the store may not have committed that yet
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # mark retrieved: waiters re-raise it, nobody must
            raise
        else:
            future.set_result(record)
            if record is not None and self._cache.generation == generation:
                self._cache.put(token_digest, record)
            return record
        finally:
            # a newer read may have taken the slot: leave that one in place
            if self._inflight.get(token_digest) is entry:
                del self._inflight[token_digest]

    async def get(self, token_id: str) -> TokenRecord:
        record = await self._store.get(token_id) if is_token_id(token_id) else None
        if record is None:
            raise _not_found(token_id)
        return record

    async def list_tokens(self, query: ListQuery) -> tuple[int, list[TokenRecord]]:
        return await self._store.list_tokens(query)

    async def usage(self, token_id: str, start: float, end: float) -> list[dict[str, Any]]:
        """The ``hours`` of the token's usage from ``start`` to ``end`` (epoch seconds):
        whole hours, the one that holds ``start`` and every one starting before ``end``
        (:func:`~authsvc.service.usage.usage_hours`); not_found for an unknown token."""
        await self.get(token_id)
        counts = await self._store.usage(token_id, hour_of(start), math.ceil(end))
        return usage_hours(counts)

    # -- changes ---------------------------------------------------------------------

    async def create(
        self,
        *,
        actor: Actor,
        client: str | None,
        name: str,
        permissions: Sequence[str],
        expires_in: str | None,
        ip_filter: str | None,
        rate_limit: object = None,
    ) -> tuple[TokenRecord, str]:
        """Issue a token; returns the record and its secret (the only time it exists).
        The policy's rules come first, then the bounds of a calling token."""
        actor_id, bound = _who(actor)
        config = self._live.current
        issuance = policy.check_create(
            config,
            name=name,
            permissions=permissions,
            expires_in=expires_in,
            ip_filter=ip_filter,
            rate_limit=rate_limit,
        )
        created_at = float(int(self._clock()))
        if bound is not None:
            issuance = delegation.bound_create(bound, issuance, config.policy, created_at)
        record = TokenRecord(
            id=new_token_id(),
            name=issuance.name,
            permissions=issuance.permissions,
            ip_filter=issuance.ip_filter,
            created_at=created_at,
            expires_at=None if issuance.expires_in is None else created_at + issuance.expires_in,
            created_by=actor_id,
            rate_limit=None if issuance.rate_limit is None else issuance.rate_limit.text,
        )
        secret = new_secret()
        try:
            await self._store.insert(record, self.digest(secret), key_check=self._key_check)
        except NameTaken:
            raise Refused(
                "name_taken", f"A token named {name!r} already exists.", field="name"
            ) from None
        except KeyCheckMismatch:
            # another process filled the (empty) store first, with its own key
            raise KeyRefused(other_key_message("this instance's key", self._store.name)) from None
        self._audit.write(
            "token.create",
            actor=actor_id,
            target=record.id,
            client=client,
            details={
                "name": record.name,
                "permissions": sorted(record.permissions),
                "rate_limit": record.rate_limit,
            },
        )
        return record, secret

    async def update_permissions(
        self, *, actor: Actor, client: str | None, token_id: str, permissions: Sequence[str]
    ) -> TokenRecord:
        """Replace a token's permissions (see :meth:`update`)."""
        return await self.update(
            actor=actor, client=client, token_id=token_id, permissions=permissions
        )

    async def update(
        self,
        *,
        actor: Actor,
        client: str | None,
        token_id: str,
        permissions: Sequence[str] | None = None,
        rate_limit: object = KEEP,
    ) -> TokenRecord:
        """PATCH: new permissions and/or a new ``rate_limit`` (a limit as written, or None
        for none), in one write; effective at once on this instance. A calling token must
        hold the target's permissions and the new ones, and be limited no lower than the
        new limit."""
        actor_id, bound = _who(actor)
        config = self._live.current
        policy.check_tokens_enabled(config)
        wanted = (
            None if permissions is None else policy.check_permission_update(config, permissions)
        )
        limit = (
            KEEP if isinstance(rate_limit, Keep) else policy.check_rate_limit(config, rate_limit)
        )
        if wanted is None and isinstance(limit, Keep):
            raise Refused("invalid_field", "Give permissions, rate_limit or both to change.")
        before = await self.get(token_id)
        if bound is not None:
            if wanted is not None:
                delegation.bound_update(bound, before, wanted)
            if not isinstance(limit, Keep):
                delegation.bound_rate_limit_update(bound, before, limit, config.policy)
        # A change made meanwhile by someone else is simply replaced by these values, which
        # lie within the caller's reach: there is nothing to re-check after the write.
        change = TokenChange(
            permissions=KEEP if wanted is None else wanted,
            rate_limit=limit if isinstance(limit, Keep) or limit is None else limit.text,
        )
        record = await self._store.update_token(token_id, change)
        if record is None:
            raise _not_found(token_id)
        self._cache.invalidate(token_id=token_id)
        details: dict[str, object] = {}
        if wanted is not None:
            details["permissions_before"] = sorted(before.permissions)
            details["permissions"] = sorted(record.permissions)
        if not isinstance(limit, Keep):
            details["rate_limit_before"] = before.rate_limit
            details["rate_limit"] = record.rate_limit
        self._audit.write(
            "token.update", actor=actor_id, target=token_id, client=client, details=details
        )
        return record

    async def rotate(
        self, *, actor: Actor, client: str | None, token_id: str, grace: object = None
    ) -> tuple[TokenRecord, str]:
        """A new secret for the same token. Without a ``grace`` (a duration up to 7d) the
        old secret stops working at once; with one it keeps working until the grace ends
        or the new secret is first used. A previous secret still in an earlier grace stops
        at once either way. A calling token gets the new secret only for a token within
        its reach (it could have made it)."""
        actor_id, bound = _who(actor)
        if not is_token_id(token_id):
            raise _not_found(token_id)
        seconds = check_grace(grace)
        if bound is not None:
            delegation.bound_rotate(bound, await self.get(token_id), self._live.current.policy)
        secret = new_secret()
        swap = self._store.replace_digest
        if seconds is None:
            result = await swap(token_id, self.digest(secret))
        else:
            ends = self._clock() + seconds
            result = await swap(token_id, self.digest(secret), grace_ends_at=ends)
        if result is None:
            raise _not_found(token_id)
        old_digest, record = result
        self.graces.rotated(token_id)
        self._cache.invalidate(digest=old_digest, token_id=token_id)
        if bound is not None:
            self._withhold_if_beyond(bound, record, actor_id, client)
        self._audit.write(
            "token.rotate",
            actor=actor_id,
            target=token_id,
            client=client,
            details={"grace": None if seconds is None else format_duration(seconds)},
        )
        return record, secret

    def _withhold_if_beyond(
        self, bound: TokenRecord, record: TokenRecord, actor_id: str, client: str | None
    ) -> None:
        """Someone may have widened the target between the check and the swap: then the
        new secret goes to no one (fail closed), and the audit log says the old secret was
        replaced all the same."""
        try:
            delegation.bound_rotate(bound, record, self._live.current.policy)
        except Refused as refused:
            self._audit.write(
                "token.rotate",
                actor=actor_id,
                target=record.id,
                client=client,
                details={"secret_withheld": "the token changed beyond the caller's reach"},
            )
            raise Refused(
                refused.code,
                f"{refused.message} (The token changed during the rotation: its old secret "
                "was replaced, and the new one is not shown.)",
            ) from None

    async def delete(self, *, actor: Actor, client: str | None, token_id: str) -> None:
        """Delete a token; it stops working at once on this instance. Never bounded: any
        token that may write can revoke any token."""
        actor_id, _ = _who(actor)
        if not is_token_id(token_id):
            raise _not_found(token_id)
        old_digest = await self._store.delete(token_id)
        if old_digest is None:
            raise _not_found(token_id)
        self._cache.invalidate(digest=old_digest, token_id=token_id)
        self._audit.write("token.delete", actor=actor_id, target=token_id, client=client)

    async def revoke_leaked(
        self,
        *,
        actor: str,
        client: str | None,
        secret: str,
        find: Callable[[bytes], Awaitable[TokenRecord | None]] | None = None,
    ) -> tuple[str, Revoked]:
        """Revoke what a leaked ``secret`` opens (see :mod:`authsvc.service.revocation`);
        ``find`` looks its digest up (default: cache, then store)."""
        return await self._leaks.revoke(
            actor=actor, client=client, secret=secret, find=find or self.lookup
        )
