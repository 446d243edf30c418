"""The admin API's one mapping from outcomes to HTTP: ``{"error": {"code", "message"}}``,
plus ``"field"`` when one input (a body key or a query parameter) is at fault."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from authsvc.rules.delegation import EXCEEDS_CALLER
from authsvc.rules.policy import Refused
from authsvc.rules.tokens import redact_secrets
from authsvc.service.key_check import KeyRefused
from authsvc.store import StoreUnavailable
from authsvc.web.keys import RUNTIME

log = logging.getLogger("authsvc.admin")

#: Status of every error code the admin API answers with.
STATUS_BY_CODE: dict[str, int] = {
    "invalid_json": 400,
    "invalid_form": 400,
    "invalid_query": 400,
    "invalid_request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "tokens_disabled": 403,
    "permission_updates_disabled": 403,
    EXCEEDS_CALLER: 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "name_taken": 409,
    "body_too_large": 413,
    "unsupported_media_type": 415,
    "invalid_field": 422,
    "unknown_field": 422,
    "invalid_name": 422,
    "invalid_permissions": 422,
    "unknown_permission": 422,
    "invalid_expiry": 422,
    "expiry_required": 422,
    "expiry_too_long": 422,
    "ip_filter_enforced": 422,
    "unknown_ip_filter": 422,
    "invalid_grace": 422,
    "grace_too_long": 422,
    "invalid_rate_limit": 422,
    "rate_limit_required": 422,
    "rate_limit_too_high": 422,
    "malformed_token": 422,
    "too_many_requests": 429,
    "invalid_ip": 422,
    "invalid_range": 422,
    "internal_error": 500,
    "store_unavailable": 503,
}

#: The codes whose errors may name the one input at fault in ``field``: the JSON body key
#: (create, PATCH) or the query parameter (list). Every other code is about the whole
#: request and never carries ``field``.
FIELD_CODES = frozenset(
    {
        "invalid_query",
        "name_taken",
        "invalid_field",
        "unknown_field",
        "invalid_name",
        "invalid_permissions",
        "unknown_permission",
        "invalid_expiry",
        "expiry_required",
        "expiry_too_long",
        "ip_filter_enforced",
        "unknown_ip_filter",
        "invalid_grace",
        "grace_too_long",
        "invalid_rate_limit",
        "rate_limit_required",
        "rate_limit_too_high",
        "malformed_token",
        "invalid_ip",
        "invalid_range",
        EXCEEDS_CALLER,
    }
)


class ApiError(Exception):
    """An admin API refusal raised by the web layer itself (bad JSON, bad query, auth);
    ``field`` names the one body key or query parameter at fault, if there is one."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def error_response(code: str, message: str, field: str | None = None) -> web.Response:
    """The error shape with the status of ``code``, and ``field`` only when one input is
    at fault. The message may echo request input (a permission or token name), and the
    field of an unknown key is that key: anything shaped like a secret, whole or cut
    short, is redacted in both, so a token pasted into the wrong place does not come back
    in the body."""
    status = STATUS_BY_CODE[code]
    error = {"code": code, "message": redact_secrets(message)}
    if field is not None:
        error["field"] = redact_secrets(field)
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="authsvc"'
    return web.json_response({"error": error}, status=status, headers=headers)


def _where(request: web.Request) -> str:
    """Method and route template for logs: the raw path could hold anything, a secret
    pasted into the URL included."""
    resource = request.match_info.route.resource
    return f"{request.method} {resource.canonical if resource is not None else '(no route)'}"


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every failure of an admin call leaves in the error shape; bad input never 500s."""
    response = await _answer(request, handler)
    metrics = request.app[RUNTIME].metrics
    metrics.admin_requests.labels(status=str(response.status)).inc()
    return response


async def _answer(  # noqa: PLR0911 - one return per error kind, by design
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except (ApiError, Refused) as error:
        return error_response(error.code, error.message, error.field)
    except StoreUnavailable as error:
        log.warning("store unavailable during %s: %s", _where(request), error)
        return error_response("store_unavailable", "The token store is unavailable; try again.")
    except KeyRefused as error:
        # another process filled the store with another key: nothing was written here
        log.error("%s refused: %s", _where(request), error)
        return error_response("store_unavailable", "The token store names another key.")
    except web.HTTPNotFound:
        return error_response("not_found", "No such resource.")
    except web.HTTPMethodNotAllowed as error:
        response = error_response("method_not_allowed", f"{request.method} is not allowed here.")
        response.headers["Allow"] = ",".join(sorted(error.allowed_methods))
        return response
    except web.HTTPRequestEntityTooLarge:
        return error_response("body_too_large", "The request body is larger than 64 KiB.")
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unexpected error in %s", _where(request))
        return error_response("internal_error", "An internal error occurred; see the logs.")
