"""``GET /admin/v1/tokens/{id}/usage?from=&to=`` (docs/admin-api.md): a token's requests
per hour, allowed and denied by reason (SPEC §12, Usage).

A read like ``GET /admin/v1/tokens/{id}``: it needs ``ViewOrganizationTokens`` (Manage
includes it), is not bounded by delegation, and an unknown or deleted token is 404. The
counts are those in the store: what instances counted in the last flush interval (5 s)
is not in them yet.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from aiohttp import web

from authsvc.service.usage import KEEP_SECONDS
from authsvc.web.admin import at_fault, authorize, no_store, query_params, token_id_of
from authsvc.web.errors import ApiError
from authsvc.web.keys import RUNTIME

USAGE_PARAMS = frozenset({"from", "to"})
#: The range when ``from`` is not given: this long before ``to``.
DEFAULT_SPAN = 7 * 86400
#: The longest range one call reads: the time counts are kept.
MAX_SPAN = KEEP_SECONDS
RANGE_CODE = "invalid_range"

# RFC 3339 date-time (section 5.6): "T" and "Z" in either case, an optional fraction, an
# offset. Groups: date, time, fraction, offset.
_RFC3339 = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt]([0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})",
    re.ASCII,
)


def parse_rfc3339(text: str) -> float:
    """Epoch seconds of an RFC 3339 date-time with an offset, e.g. ``2026-12-02T13:00:00Z``
    or ``2026-12-02T14:30:00.5+01:00``; raise ValueError. A leap second (``:60``) is read
    as the first instant of the next minute."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError("not an RFC 3339 time")
    day, clock, fraction, offset = match.groups()
    leap = clock.endswith(":60")
    if leap:
        clock = clock[:-2] + "59"
    zone = UTC
    if offset not in ("Z", "z"):
        hours, minutes = int(offset[1:3]), int(offset[4:6])
        if hours > 23 or minutes > 59:
            raise ValueError("the offset is out of range")
        sign = -1 if offset[0] == "-" else 1
        zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
    moment = datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=zone)  # range checks
    return moment.timestamp() + (1 if leap else 0) + float(f"0{fraction or ''}")


def _instant(text: str, key: str) -> float:
    try:
        return parse_rfc3339(text)
    except (ValueError, OverflowError):
        raise ApiError(
            RANGE_CODE,
            f"{key} must be an RFC 3339 time such as 2026-12-02T13:00:00Z.",
            field=key,
        ) from None


def usage_range(request: web.Request, now: float) -> tuple[float, float]:
    """(from, to) as epoch seconds: ``to`` defaults to now, ``from`` to 7 days before
    ``to``; from < to and at most 90 days apart."""
    params = query_params(request, USAGE_PARAMS, hint="; allowed: from, to")
    # An empty value means the default, as empty list filters mean no filter.
    given = [key for key in ("from", "to") if params.get(key)]
    end = _instant(params["to"], "to") if "to" in given else now
    start = _instant(params["from"], "from") if "from" in given else end - DEFAULT_SPAN
    # Only one of them given: that one is at fault; both: neither alone.
    culprit = at_fault(given)
    if start >= end:
        raise ApiError(RANGE_CODE, "from must be earlier than to.", field=culprit)
    if end - start > MAX_SPAN:
        raise ApiError(
            RANGE_CODE,
            f"The range from..to is longer than {MAX_SPAN // 86400} days, the time usage is kept.",
            field=culprit,
        )
    return start, end


async def token_usage(request: web.Request) -> web.Response:
    """The hours that overlap [from, to) and had requests, oldest first."""
    await authorize(request, write=False)
    runtime = request.app[RUNTIME]
    token_id = token_id_of(request)
    start, end = usage_range(request, runtime.clock())
    return no_store({"hours": await runtime.service.usage(token_id, start, end)})


def add_usage_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/admin/v1/tokens/{token_id}/usage", token_usage, allow_head=False)
