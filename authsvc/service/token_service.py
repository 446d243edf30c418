"""TokenService: every operation on tokens, for the admin API, the web page and the CLI.

It applies the issuance policy, writes the store, keeps the record cache honest and
writes the audit trail. Nothing about tokens is implemented anywhere else.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from authsvc.rules import policy
from authsvc.rules.policy import Refused
from authsvc.rules.tokens import TokenRecord, digest, is_token_id, new_secret, new_token_id
from authsvc.service.audit import AuditLog
from authsvc.service.cache import RecordCache
from authsvc.service.live import LiveConfig
from authsvc.store import ListQuery, NameTaken, TokenStore

CLI_ACTOR = "cli"


def _not_found(token_id: str) -> Refused:
    return Refused("not_found", f"No token has the id {token_id[:40]!r}.")


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
    ) -> None:
        self._store = store
        self._live = live
        self._cache = cache
        self._audit = audit
        self._clock = clock
        self._key = key
        # digest -> (cache generation when the read began, its result)
        self._inflight: dict[bytes, tuple[int, asyncio.Future[TokenRecord | None]]] = {}

    # -- lookups ---------------------------------------------------------------------

    def digest(self, secret: str) -> bytes:
        return digest(self._key, secret)

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

    # -- changes ---------------------------------------------------------------------

    async def create(
        self,
        *,
        actor: str,
        client: str | None,
        name: str,
        permissions: Sequence[str],
        expires_in: str | None,
        ip_filter: str | None,
    ) -> tuple[TokenRecord, str]:
        """Issue a token; returns the record and its secret (the only time it exists)."""
        issuance = policy.check_create(
            self._live.current,
            name=name,
            permissions=permissions,
            expires_in=expires_in,
            ip_filter=ip_filter,
        )
        created_at = float(int(self._clock()))
        record = TokenRecord(
            id=new_token_id(),
            name=issuance.name,
            permissions=issuance.permissions,
            ip_filter=issuance.ip_filter,
            created_at=created_at,
            expires_at=None if issuance.expires_in is None else created_at + issuance.expires_in,
            created_by=actor,
        )
        secret = new_secret()
        try:
            await self._store.insert(record, self.digest(secret))
        except NameTaken:
            raise Refused(
                "name_taken", f"A token named {name!r} already exists.", field="name"
            ) from None
        self._audit.write(
            "token.create",
            actor=actor,
            target=record.id,
            client=client,
            details={"name": record.name, "permissions": sorted(record.permissions)},
        )
        return record, secret

    async def update_permissions(
        self, *, actor: str, client: str | None, token_id: str, permissions: Sequence[str]
    ) -> TokenRecord:
        """Replace a token's permissions; effective at once on this instance."""
        wanted = policy.check_permission_update(self._live.current, permissions)
        before = await self.get(token_id)
        record = await self._store.update_permissions(token_id, wanted)
        if record is None:
            raise _not_found(token_id)
        self._cache.invalidate(token_id=token_id)
        self._audit.write(
            "token.update",
            actor=actor,
            target=token_id,
            client=client,
            details={
                "permissions_before": sorted(before.permissions),
                "permissions": sorted(record.permissions),
            },
        )
        return record

    async def rotate(
        self, *, actor: str, client: str | None, token_id: str
    ) -> tuple[TokenRecord, str]:
        """A new secret for the same token; the old secret stops working at once."""
        if not is_token_id(token_id):
            raise _not_found(token_id)
        secret = new_secret()
        result = await self._store.replace_digest(token_id, self.digest(secret))
        if result is None:
            raise _not_found(token_id)
        old_digest, record = result
        self._cache.invalidate(digest=old_digest, token_id=token_id)
        self._audit.write("token.rotate", actor=actor, target=token_id, client=client)
        return record, secret

    async def delete(self, *, actor: str, client: str | None, token_id: str) -> None:
        """Delete a token; it stops working at once on this instance."""
        if not is_token_id(token_id):
            raise _not_found(token_id)
        old_digest = await self._store.delete(token_id)
        if old_digest is None:
            raise _not_found(token_id)
        self._cache.invalidate(digest=old_digest, token_id=token_id)
        self._audit.write("token.delete", actor=actor, target=token_id, client=client)
