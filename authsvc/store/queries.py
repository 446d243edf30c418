"""SQL fragments both stores build their listings from: the token columns, ORDER BY, LIKE.

Both backends list tokens the same way: ``name_contains`` matches the case-folded name
(``str.lower``) with a LIKE pattern in which ``%``, ``_`` and ``\\`` are literal, and the
orderings below sort on the folded name, then the name itself. Each backend says how it
spells the folded name in SQL (SQLite calls ``authsvc_fold(name)``, PostgreSQL stores
``name_fold``).

The status and expiry filters (:func:`conditions`) compute each token's effective expiry
in SQL from the :class:`~authsvc.store.StatusBasis` (the moment and the policy's
``max_lifetime``), so a listing or a count never reads the records out; with no index on
the expiry columns this is one scan of the table, which counting needs anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from authsvc.store import (
    HOUR,
    USAGE_OUTCOMES,
    HourlyCount,
    Keep,
    ListQuery,
    StatusBasis,
    TokenChange,
    TokenStatus,
)

#: The columns of a token record, in the order the stores read them back.
COLUMNS: Final = (
    "id, name, permissions, ip_filter, created_at, expires_at, created_by,"
    " last_used_at, last_used_ip, grace_ends_at, rate_limit"
)
_DIRECTIONS: Final = {"asc": "ASC", "desc": "DESC"}


def _sort_keys(fold: str) -> dict[str, tuple[str, ...]]:
    # Sort keys for order="asc"; "desc" reverses every key, so it is the exact mirror image.
    # (expires_at IS NULL) puts tokens that never expire after all others in ascending order.
    return {
        "name": (fold, "name"),
        "expires_at": ("expires_at IS NULL", "expires_at", fold, "name"),
    }


def order_by(sort: str, order: str, *, fold: str) -> str:
    """The ORDER BY clause for a listing; only fixed fragments, never caller text.

    ``fold`` is the backend's SQL for the case-folded name.
    """
    keys = _sort_keys(fold)
    if sort not in keys or order not in _DIRECTIONS:
        raise ValueError(f"unsupported ordering {sort!r} {order!r}")
    return ", ".join(f"{key} {_DIRECTIONS[order]}" for key in keys[sort])


def like_pattern(needle: str) -> str:
    """A LIKE pattern matching ``needle`` anywhere, with ``%``, ``_`` and ``\\`` literal."""
    escaped = needle.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# -- filters ---------------------------------------------------------------------------------

#: Conditions that hold for every token and for none, in SQL both backends read alike.
MATCH_ALL: Final = "(1 = 1)"
MATCH_NONE: Final = "(1 = 0)"


class Params:
    """The values bound to a statement while it is built; ``mark(n)`` spells the backend's
    placeholder of the n-th value (1-based: SQLite ``?n``, PostgreSQL ``$n``). Numbered
    placeholders let one value appear twice in the SQL and be bound once."""

    def __init__(self, mark: Callable[[int], str]) -> None:
        self.values: list[object] = []
        self._mark = mark

    def add(self, value: object) -> str:
        """Bind ``value``; its placeholder."""
        self.values.append(value)
        return self._mark(len(self.values))


def conditions(query: ListQuery, params: Params, *, fold: str, name_searchable: bool = True) -> str:
    """The SQL condition that a token matches ``query``'s filters, values bound in
    ``params``; only fixed fragments and placeholders, never caller text.

    ``fold`` is the backend's SQL for the case-folded name; ``name_searchable=False`` says
    that ``name_contains`` cannot occur in any stored name (the condition is then false).
    """
    parts = []
    if query.name_contains is not None:
        if not name_searchable:
            return MATCH_NONE
        parts.append(f"{fold} LIKE {params.add(like_pattern(query.name_contains))} ESCAPE '\\'")
    basis = query.basis
    if query.status is not None and basis is not None:
        parts.append(_status_condition(query.status, basis, params))
    if query.expires_within is not None and basis is not None:
        parts.append(_expiring_condition(query.expires_within, basis, params))
    return "(" + " AND ".join(parts) + ")" if parts else MATCH_ALL


def _effective_expiry(basis: StatusBasis, params: Params) -> str:
    """SQL for ``rules.decision.effective_expiry``: the earlier of ``expires_at`` and
    ``created_at + max_lifetime`` (NULL when neither is set). The same float addition as
    in Python, so the store and the token object agree to the last bit on the boundary."""
    if basis.max_lifetime is None:
        return "expires_at"
    cap = f"(created_at + {params.add(float(basis.max_lifetime))})"
    return (
        f"(CASE WHEN expires_at IS NOT NULL AND expires_at <= {cap} THEN expires_at ELSE {cap} END)"
    )


def _status_condition(status: TokenStatus, basis: StatusBasis, params: Params) -> str:
    """``rules.decision.token_status(record, policy, now) == status`` in SQL."""
    if not basis.tokens_enabled:
        return MATCH_ALL if status == "blocked" else MATCH_NONE
    if status == "blocked":
        return MATCH_NONE
    expiry, now = _effective_expiry(basis, params), params.add(float(basis.now))
    if status == "expired":
        return f"({expiry} <= {now})"  # expired from the instant itself on (is_expired)
    return f"({expiry} IS NULL OR {expiry} > {now})"


def _expiring_condition(seconds: float, basis: StatusBasis, params: Params) -> str:
    """Active, with an effective expiry at most ``seconds`` after ``basis.now``."""
    if not basis.tokens_enabled:
        return MATCH_NONE  # blocked tokens are not active, whatever their expiry
    expiry, now = _effective_expiry(basis, params), params.add(float(basis.now))
    horizon = params.add(float(basis.now + seconds))
    return f"({expiry} > {now} AND {expiry} <= {horizon})"


def count_columns(
    queries: Sequence[ListQuery],
    params: Params,
    *,
    fold: str,
    name_searchable: Callable[[str], bool] = lambda _: True,
) -> str:
    """The select list counting each query's matches in one pass over ``tokens``:
    ``count(CASE WHEN <condition> THEN 1 END) AS count_<i>, ...`` (count skips the NULLs,
    so an empty table counts 0, not NULL). The i-th column is named by
    :func:`count_column`."""
    if not queries:
        raise ValueError("nothing to count")
    return ", ".join(
        "count(CASE WHEN "
        + conditions(
            query,
            params,
            fold=fold,
            name_searchable=query.name_contains is None or name_searchable(query.name_contains),
        )
        + f" THEN 1 END) AS {count_column(index)}"
        for index, query in enumerate(queries)
    )


def count_column(index: int) -> str:
    """The name of the ``index``-th column of :func:`count_columns`."""
    return f"count_{index:d}"


# -- writes ----------------------------------------------------------------------------------


def assignments(
    change: TokenChange, params: Params, *, permissions: Callable[[frozenset[str]], object]
) -> str:
    """The SET list of an UPDATE applying ``change`` (values bound in ``params``; ``""``
    when it changes nothing). ``permissions`` turns a set of names into the backend's
    column value (SQLite: a JSON array, PostgreSQL: a text array)."""
    parts = []
    if not isinstance(change.permissions, Keep):
        parts.append(f"permissions = {params.add(permissions(change.permissions))}")
    if not isinstance(change.rate_limit, Keep):
        parts.append(f"rate_limit = {params.add(change.rate_limit)}")
    return ", ".join(parts)


#: One row of ``token_usage``: (token_id, hour, outcome, count).
UsageRow = tuple[str, int, str, int]


def usage_rows(counts: Sequence[HourlyCount]) -> list[UsageRow]:
    """``counts`` as rows to add: one per (token, hour, outcome), duplicates summed, zero
    counts left out, sorted by that key. The sort makes writers from several instances
    lock rows in one order (no deadlocks); the summing lets PostgreSQL upsert the whole
    batch in one statement, which may touch each row only once.

    Raises ValueError for an outcome not in :data:`~authsvc.store.USAGE_OUTCOMES`, an hour
    that is not the start of an hour, or a negative count: a caller's bug, refused before
    anything is written rather than stored as counts nobody can read back."""
    summed: dict[tuple[str, int, str], int] = {}
    for each in counts:
        if each.outcome not in USAGE_OUTCOMES:
            raise ValueError(f"unknown usage outcome {each.outcome!r}")
        if each.hour % HOUR:
            raise ValueError(f"usage hour {each.hour} is not the start of an hour")
        if each.count < 0:
            raise ValueError(f"usage count {each.count} is negative")
        key = (each.token_id, each.hour, each.outcome)
        summed[key] = summed.get(key, 0) + each.count
    return [(*key, count) for key, count in sorted(summed.items()) if count]
