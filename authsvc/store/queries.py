"""SQL fragments both stores build their listings from: the token columns, ORDER BY, LIKE.

Both backends list tokens the same way: ``name_contains`` matches the case-folded name
(``str.lower``) with a LIKE pattern in which ``%``, ``_`` and ``\\`` are literal, and the
orderings below sort on the folded name, then the name itself. Each backend says how it
spells the folded name in SQL (SQLite calls ``authsvc_fold(name)``, PostgreSQL stores
``name_fold``).
"""

from __future__ import annotations

from typing import Final

#: The columns of a token record, in the order the stores read them back.
COLUMNS: Final = (
    "id, name, permissions, ip_filter, created_at, expires_at, created_by,"
    " last_used_at, last_used_ip"
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
