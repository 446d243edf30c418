"""Durations as written by people (``30d``, ``5s``) ⇄ whole seconds, and instants as the
API writes them (RFC 3339, UTC).

A duration is a positive whole number in ASCII digits, without sign, leading zeros,
spaces or fraction, directly followed by one unit letter: ``s`` (seconds), ``m``
(minutes), ``h`` (hours) or ``d`` (days). Leading zeros (``07d``) are refused rather than
guessed at, as IP addresses with leading zeros are. Values longer than 100 years are
refused so that date arithmetic on them can never overflow.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: The longest duration accepted anywhere: 100 years (of 365 days).
MAX_SECONDS = 36500 * 86400

# At most 12 digits: enough for 100 years in seconds, and keeps int() on tiny inputs.
_SHAPE = re.compile(r"([0-9]{1,12})([a-z])", re.ASCII)


def _unit_list(units: str) -> str:
    return ", ".join(units)


def _show(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    shown = repr(value)
    # The value may come from an 8 KiB request body; keep error messages short.
    return shown if len(shown) <= 40 else shown[:40] + "..."


def parse_duration(text: str, *, units: str = "smhd") -> int:
    """Return the number of seconds in ``text`` (e.g. ``"30d"`` → 2592000).

    ``units`` lists the unit letters accepted here (a subset of ``"smhd"``). Raise
    ValueError with a sentence a person can act on when ``text`` is not such a duration,
    including when it is not a string at all (a YAML or JSON number, a bool, null).
    """
    if not units or any(unit not in UNIT_SECONDS for unit in units):
        raise ValueError(f"units must be letters from 'smhd', not {units!r}")
    advice = f"use a positive whole number followed by one of {_unit_list(units)}"
    value: object = text  # callers pass values straight from YAML or JSON
    if not isinstance(value, str):
        raise ValueError(f"{_show(value)} is not a duration: {advice}, e.g. '30{units[-1]}'")
    match = _SHAPE.fullmatch(text)
    shown = _show(text)
    if match is None or match.group(2) not in UNIT_SECONDS:
        raise ValueError(f"{shown} is not a duration: {advice}")
    digits, unit = match.groups()
    if unit not in units:
        raise ValueError(f"{shown} uses the unit {unit!r}, which is not allowed here: {advice}")
    if digits.startswith("0"):
        if int(digits) == 0:
            raise ValueError(f"{shown} is not a duration: {advice}")
        raise ValueError(f"{shown} is not a duration: write the number without leading zeros")
    seconds = int(digits) * UNIT_SECONDS[unit]
    if seconds > MAX_SECONDS:
        raise ValueError(
            f"{shown} is too long: the longest duration allowed is {MAX_SECONDS // 86400}d"
            " (100 years)"
        )
    return seconds


def format_duration(seconds: int) -> str:
    """Write ``seconds`` with the largest unit that divides it exactly (3600 → ``"1h"``)."""
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds <= 0:
        raise ValueError(f"{seconds!r} is not a positive whole number of seconds")
    for unit in ("d", "h", "m"):
        size = UNIT_SECONDS[unit]
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def rfc3339(epoch: float) -> str:
    """An instant as the admin API, the CLI and the audit log write it: UTC, second
    precision, with ``Z``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
