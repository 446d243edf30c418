"""Revoking a leaked secret on the word of whoever holds it (``POST
/admin/v1/tokens/revoke``, ``authsvc token revoke``): holding the secret is the proof.

A token's current secret deletes the token; a previous secret still in its grace only ends
that grace, and the current secret keeps working. Each write is conditional on the digest
still having that role in the store, so a secret that was rotated away meanwhile revokes
nothing it no longer opens.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal, TypeAlias

from authsvc.rules.policy import Refused
from authsvc.rules.tokens import TokenRecord, is_well_formed, secret_ended
from authsvc.service.audit import AuditLog
from authsvc.service.cache import RecordCache
from authsvc.store import TokenStore

#: The audit actor of a revocation by whoever holds the secret (the public revoke call).
SECRET_HOLDER = "secret-holder"  # noqa: S105 - an actor's name, not a password

#: What a leaked secret's revocation ended: the whole token, or only a previous secret.
Revoked: TypeAlias = Literal["token", "previous_secret"]


def _no_live_secret() -> Refused:
    return Refused(
        "not_found",
        "No live token has this secret: it is unknown, its token was deleted or rotated,"
        " or it is a previous secret whose grace is over.",
    )


class LeakedSecrets:
    """Revokes what a presented secret opens."""

    def __init__(
        self,
        store: TokenStore,
        cache: RecordCache,
        audit: AuditLog,
        clock: Callable[[], float],
        *,
        digest: Callable[[str], bytes],
    ) -> None:
        self._store = store
        self._cache = cache
        self._audit = audit
        self._clock = clock
        self._digest = digest

    async def revoke(
        self,
        *,
        actor: str,
        client: str | None,
        secret: str,
        find: Callable[[bytes], Awaitable[TokenRecord | None]],
    ) -> tuple[str, Revoked]:
        """(token id, what was revoked); ``find`` looks the secret's digest up.

        Refused: ``malformed_token`` (not a well-formed secret: nothing is looked up),
        ``not_found`` (nothing live has it)."""
        if not is_well_formed(secret):
            raise Refused(
                "malformed_token",
                "This is not an authsvc token secret: its prefix, length, characters or"
                " checksum are wrong.",
                field="token",
            )
        token_digest = self._digest(secret)
        record = await find(token_digest)
        if record is None or secret_ended(record, self._clock()):
            raise _no_live_secret()
        revoked: Revoked
        if record.via_previous:
            ended = await self._store.end_grace(record.id, token_digest, previous=True)
            if ended is None:
                raise _no_live_secret()  # the grace ended or was replaced meanwhile
            revoked = "previous_secret"
            # both records: the current secret's one still says a grace is running
            self._cache.invalidate(digest=ended[1], token_id=record.id)
        else:
            gone = await self._store.delete(record.id, digest=token_digest)
            if gone is None:
                raise _no_live_secret()  # rotated or deleted meanwhile
            revoked = "token"
            self._cache.invalidate(digest=gone, token_id=record.id)
        self._audit.write(
            "token.revoke_leaked",
            actor=actor,
            target=record.id,
            client=client,
            details={"revoked": revoked},
        )
        return record.id, revoked
