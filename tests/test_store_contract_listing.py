"""TokenStore contract, listing: list_tokens filters, sorts, pages and counts the same way on
every backend, and all_tokens is ordered by name (``store`` from tests/stores.py runs each
test on each STORE_KINDS)."""

from __future__ import annotations

import pytest

from authsvc.store import ListQuery, TokenStore
from tests.stores import add, names

LISTED = [
    "50 percent",
    "50%_off",
    "a_b",
    "ab",
    "alpha",
    "back\\slash",
    "Beta",
    "Gamma",
    "gamma",
    "Ärger",
    "ärmel",
]


@pytest.fixture
async def listed(store: TokenStore) -> TokenStore:
    """A store holding the LISTED names, inserted in scrambled order."""
    for name in reversed(LISTED):
        await add(store, name)
    return store


class TestFilter:
    """name_contains: a case-insensitive literal substring."""

    @pytest.mark.parametrize(
        ("needle", "expected"),
        [
            pytest.param("ALPHA", ["alpha"], id="ascii-case-insensitive"),
            pytest.param("ÄR", ["Ärger", "ärmel"], id="unicode-case-insensitive"),
            pytest.param("%", ["50%_off"], id="percent-is-literal"),
            pytest.param("_", ["50%_off", "a_b"], id="underscore-is-literal"),
            pytest.param("a_", ["a_b"], id="underscore-is-no-wildcard"),
            pytest.param("\\", ["back\\slash"], id="backslash-is-literal"),
            pytest.param("0 p", ["50 percent"], id="substring-with-space"),
            pytest.param("", LISTED, id="empty-matches-all"),
            pytest.param("zzz", [], id="no-match"),
        ],
    )
    async def test_name_filter(self, listed: TokenStore, needle: str, expected: list[str]) -> None:
        """name_contains is a case-insensitive literal substring match."""
        total, page = await listed.list_tokens(ListQuery(name_contains=needle, limit=500))
        assert (total, names(page)) == (len(expected), expected)


class TestOrder:
    """sort and order, and the order of all_tokens."""

    async def test_sort_by_name(self, listed: TokenStore) -> None:
        """Names sort case-insensitively, case-only twins by code point; desc is the mirror."""
        _, ascending = await listed.list_tokens(ListQuery(sort="name", order="asc"))
        _, descending = await listed.list_tokens(ListQuery(sort="name", order="desc"))
        assert names(ascending) == LISTED
        assert names(descending) == LISTED[::-1]
        assert names(await listed.all_tokens()) == LISTED

    async def test_sort_by_expiry(self, store: TokenStore) -> None:
        """Never-expiring tokens come last ascending, first descending; ties go by name."""
        for name, expires_at in [
            ("e", None),
            ("a", 200.0),
            ("d", 100.0),
            ("c", None),
            ("b", 100.0),
        ]:
            await add(store, name, expires_at=expires_at)
        _, ascending = await store.list_tokens(ListQuery(sort="expires_at", order="asc"))
        _, descending = await store.list_tokens(ListQuery(sort="expires_at", order="desc"))
        assert names(ascending) == ["b", "d", "a", "c", "e"]
        assert names(descending) == ["e", "c", "a", "d", "b"]

    async def test_bad_ordering_is_rejected(self, store: TokenStore) -> None:
        """An ordering outside the documented ones is a ValueError, not a silent default."""
        with pytest.raises(ValueError, match="sideways"):
            await store.list_tokens(ListQuery(order="sideways"))  # type: ignore[arg-type]  # deliberately invalid


class TestPaging:
    """limit and offset, and the total of every match."""

    @pytest.mark.parametrize(
        ("query", "total", "expected"),
        [
            pytest.param(ListQuery(limit=3), 11, LISTED[:3], id="first-page"),
            pytest.param(ListQuery(limit=3, offset=9), 11, LISTED[9:], id="short-last-page"),
            pytest.param(ListQuery(limit=3, offset=50), 11, [], id="beyond-the-end"),
            pytest.param(
                ListQuery(name_contains="a", limit=2, offset=1),
                7,
                ["ab", "alpha"],
                id="filtered-page",
            ),
        ],
    )
    async def test_paging_and_total(
        self, listed: TokenStore, query: ListQuery, total: int, expected: list[str]
    ) -> None:
        """limit and offset cut the page; total counts every match."""
        got_total, page = await listed.list_tokens(query)
        assert (got_total, names(page)) == (total, expected)
