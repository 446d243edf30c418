"""Rate limits as written on a token or in the policy: ``"<count>/<unit>"`` (SPEC §12).

A limit is a token bucket of capacity ``count`` refilled at ``count`` per unit; two limits
compare by their rate in requests per second (``120/m`` equals ``2/s``). Pure, and
imports nothing of the project (the configuration's model uses it): the policy's rules
on limits are in :mod:`authsvc.rules.policy`, the buckets in :mod:`authsvc.service.ratelimit`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import overload

#: Seconds per unit of a written limit.
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}
#: A count beyond this is a typo, not a limit (and keeps the bucket arithmetic exact).
MAX_COUNT = 10**9
_SHAPE = re.compile(r"([1-9][0-9]{0,9})/([smh])", re.ASCII)
SYNTAX = "a limit such as 600/m: a count from 1, '/', and a unit s, m or h"


@dataclass(frozen=True, slots=True)
class RateLimit:
    """``count`` requests per ``per`` seconds, as ``text`` was written."""

    count: int
    per: int  # seconds: 1, 60 or 3600
    text: str

    @property
    def rate(self) -> Fraction:
        """Requests per second, exact (so ``120/m`` and ``2/s`` compare equal)."""
        return Fraction(self.count, self.per)

    def above(self, other: RateLimit) -> bool:
        """Whether this limit allows more requests per second than ``other``: the same
        exact comparison as :attr:`rate`, in integers (it runs on every limited /auth)."""
        return self.count * other.per > other.count * self.per


def parse_rate_limit(text: str) -> RateLimit:
    """The limit ``text`` writes; ValueError naming what is wrong."""
    match = _SHAPE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not {SYNTAX}")
    count = int(match[1])
    if count > MAX_COUNT:
        raise ValueError(f"{text!r}: the count may be at most {MAX_COUNT:,}")
    return RateLimit(count, UNIT_SECONDS[match[2]], text)


@overload
def stricter(first: RateLimit, second: RateLimit | None) -> RateLimit: ...
@overload
def stricter(first: RateLimit | None, second: RateLimit | None) -> RateLimit | None: ...
def stricter(first: RateLimit | None, second: RateLimit | None) -> RateLimit | None:
    """The lower of two limits (None is no limit); on a tie, ``first``."""
    if first is None:
        return second
    if second is None or not first.above(second):
        return first
    return second
