"""The parts that bound what unknown tokens cost the store (SECURITY 27): the set of known
digests and the budget of lookups for the others."""

from __future__ import annotations

import hashlib

import pytest

from authsvc.service.lookups import KnownDigests, LookupBudget
from tests.factories import FrozenClock


def digest(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def prefixes(*labels: str) -> bytes:
    """What a store's digest_prefixes() answers for tokens with these digests."""
    return b"".join(sorted(digest(label)[:8] for label in labels))


class TestKnownDigests:
    """Membership by the first 8 bytes, from the store's sorted prefixes plus later news."""

    def test_loaded_digests_are_known_and_others_not(self) -> None:
        """Every loaded digest is known; other digests are not."""
        labels = [f"token {i}" for i in range(1000)]
        known = KnownDigests(prefixes(*labels))
        assert len(known) == 1000
        assert all(digest(label) in known for label in labels)
        assert not any(digest(f"stranger {i}") in known for i in range(1000))

    def test_empty(self) -> None:
        """An empty set knows nothing, including digests shorter than a prefix."""
        known = KnownDigests(b"")
        assert known.loaded
        assert digest("a") not in known
        assert b"" not in known
        assert len(known) == 0

    def test_not_loaded_until_replaced(self) -> None:
        """A set made without prefixes says it is not loaded yet; a load changes that."""
        known = KnownDigests()
        before = known.loaded
        known.replace(prefixes("a"))
        assert (before, known.loaded) == (False, True)
        assert digest("a") in known

    @pytest.mark.parametrize("first", ["\x00", "\xff"], ids=["lowest", "highest"])
    def test_edges_of_the_sorted_array(self, first: str) -> None:
        """Prefixes at either end of the range are found (big-endian order kept)."""
        low, high = b"\x00" * 8 + b"rest", b"\xff" * 8 + b"rest"
        known = KnownDigests(low[:8] + high[:8])
        assert (low if first == "\x00" else high) in known
        assert b"\x00" * 7 + b"\x01" + b"rest" not in known

    def test_added_then_forgotten(self) -> None:
        """add makes a digest known at once; forget unknows it, loaded or added."""
        known = KnownDigests(prefixes("loaded"))
        known.add(digest("new"))
        assert digest("new") in known
        known.forget(digest("new"))
        known.forget(digest("loaded"))
        assert digest("new") not in known
        assert digest("loaded") not in known
        known.add(digest("loaded"))
        assert digest("loaded") in known

    def test_the_count_is_exact(self) -> None:
        """A change feed re-adding what the load already holds counts it once, and
        forgetting what was never known changes nothing: the authsvc_known_tokens gauge
        (and a test waiting on it) can trust the count."""
        known = KnownDigests(prefixes("a", "b"))
        known.add(digest("a"))  # the change of a token the load already saw
        assert len(known) == 2
        known.forget(digest("stranger"))
        assert len(known) == 2
        known.forget(digest("a"))
        known.forget(digest("a"))
        assert len(known) == 1
        known.add(digest("a"))
        known.add(digest("c"))
        known.add(digest("c"))
        assert len(known) == 3
        assert [digest(x) in known for x in "abc"] == [True, True, True]

    def test_replace_starts_again(self) -> None:
        """A reload drops what was added and forgotten since."""
        known = KnownDigests(prefixes("a"))
        known.add(digest("b"))
        known.forget(digest("a"))
        known.replace(prefixes("c"))
        assert [digest(x) in known for x in "abc"] == [False, False, True]


class TestLookupBudget:
    """A token bucket of lookups per second, at most one second's worth saved up."""

    def test_spends_the_budget_then_refuses(self) -> None:
        """N lookups pass at once; the next one waits for the refill."""
        clock = FrozenClock(100.0)
        budget = LookupBudget(5, clock)
        assert [budget.take() for _ in range(6)] == [True] * 5 + [False]

    def test_refills_at_the_rate_and_saves_at_most_a_second(self) -> None:
        """0.2 s at 5/s gives one lookup; an idle minute gives no more than 5."""
        clock = FrozenClock(100.0)
        budget = LookupBudget(5, clock)
        while budget.take():
            pass
        clock.advance(0.2)
        assert [budget.take() for _ in range(2)] == [True, False]
        clock.advance(60)
        assert sum(budget.take() for _ in range(20)) == 5

    def test_refund_gives_back_a_lookup_that_found_a_token(self) -> None:
        """A refund restores one lookup, never above the saved maximum."""
        clock = FrozenClock(100.0)
        budget = LookupBudget(2, clock)
        assert budget.take()
        assert budget.take()
        budget.refund()
        assert budget.take()
        assert not budget.take()
        for _ in range(5):
            budget.refund()
        assert sum(budget.take() for _ in range(5)) == 2

    def test_resize_takes_a_reloaded_rate(self) -> None:
        """A smaller rate caps what is saved; a larger one refills faster."""
        clock = FrozenClock(100.0)
        budget = LookupBudget(50, clock)
        budget.resize(3)
        assert sum(budget.take() for _ in range(10)) == 3
        budget.resize(10)
        clock.advance(0.5)
        assert sum(budget.take() for _ in range(10)) == 5
