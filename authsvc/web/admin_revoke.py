"""``POST /admin/v1/tokens/revoke``: revoke a leaked secret on the word of whoever holds it.

Holding the secret is the proof (as with GitHub's credential revocation API), so the call
needs no admin token and ignores any ``Authorization`` header: a secret scanner, or anyone
who finds a token where it should not be, can switch it off. A token's current secret
deletes the token; a previous secret still in its grace ends only that grace. A secret that
matches nothing live is ``404``; an unknown one spends the same bounded store lookups as on
``/auth``, and past that budget the answer is ``429`` with ``Retry-After``.
"""

from __future__ import annotations

from aiohttp import web

from authsvc.rules.request import Rejected, client_ip
from authsvc.service.lookups import BudgetSpent
from authsvc.service.token_service import SECRET_HOLDER
from authsvc.web.admin import read_object
from authsvc.web.auth import peer_address
from authsvc.web.errors import ApiError, error_response
from authsvc.web.keys import RUNTIME

_REVOKE_FIELDS = {"token"}


def _client(request: web.Request) -> str | None:
    """The address for the audit record, found as for admin calls; an unusable
    ``X-Real-IP`` does not stop a revocation (it grants nothing), the peer is noted."""
    runtime = request.app[RUNTIME]
    peer = peer_address(request)
    found = client_ip(
        request.headers.get("X-Real-IP"), peer, runtime.live.current.admin_trusted_proxies
    )
    return peer if isinstance(found, Rejected) else str(found)


async def revoke_leaked(request: web.Request) -> web.Response:
    """``{"token": "<secret>"}`` → 200 ``{"id", "revoked": "token" | "previous_secret"}``."""
    runtime = request.app[RUNTIME]
    body = await read_object(request, _REVOKE_FIELDS)
    secret = body.get("token")
    if not isinstance(secret, str):
        raise ApiError("invalid_field", "'token' must be a string: the secret.", field="token")
    try:
        token_id, revoked = await runtime.service.revoke_leaked(
            actor=SECRET_HOLDER,
            client=_client(request),
            secret=secret,
            find=runtime.lookups.find_within_budget,
        )
    except BudgetSpent as spent:
        response = error_response(
            "too_many_requests",
            "Too many unknown secrets were presented to this instance; try again later.",
        )
        response.headers["Retry-After"] = str(spent.retry_after)
        return response
    return web.json_response(
        {"id": token_id, "revoked": revoked}, headers={"Cache-Control": "no-store"}
    )
