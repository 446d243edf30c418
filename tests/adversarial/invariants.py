"""What the request describer must guarantee, written independently of it: a reference
model of the path rules (SPEC §3 "Request description rules") and the readings of a
careless upstream. Shared by the property tests and the fuzz target.

The reference model is deliberately naive (one character at a time, no regular
expressions for the rules themselves), so that it and ``authsvc.rules.request`` are
unlikely to share a mistake.
"""

from __future__ import annotations

import string
import unicodedata
from urllib.parse import unquote

from authsvc.rules.request import Described

MAX_TARGET = 8192
UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
HEX = frozenset(string.hexdigits)
# Sub-delimiters and ':' '@' that a path segment may hold; ';' is a sub-delimiter too, but
# the rules refuse it (matrix parameters).
PATH_SAFE = frozenset("!$&'()*+,=:@")
_ENCODED_FORBIDDEN = frozenset({0x2F, 0x5C, 0x23, 0x3B})  # / \ # ;


def _has_double_escape(canonical: str) -> bool:
    """``%25`` followed by two hex digits, anywhere in ``canonical``."""
    return any(
        canonical[i : i + 3] == "%25"
        and len(canonical) >= i + 5
        and set(canonical[i + 3 : i + 5]) <= HEX
        for i in range(len(canonical))
    )


def _segments_ok(segments: list[str]) -> bool:
    """No ``.``/``..`` segment and no empty segment except a trailing slash's."""
    last = len(segments) - 1
    return all(s not in (".", "..") and (s or i == last) for i, s in enumerate(segments))


def _raw_path(target: str) -> str | None:
    """The path of ``target`` if the raw-text rules pass it, else None."""
    if len(target) > MAX_TARGET or any(not 0x21 <= ord(c) <= 0x7E for c in target):
        return None
    path = target.split("?", 1)[0]
    if not path.startswith("/") or any(c in path for c in "#\\;"):
        return None
    return path


def _canonical(path: str) -> str | None:
    """``path`` with unreserved escapes decoded and others upper-cased; None for a
    malformed or forbidden escape, invalid UTF-8 or a control character."""
    canonical: list[str] = []
    decoded = bytearray()
    i = 0
    while i < len(path):
        if path[i] != "%":
            canonical.append(path[i])
            decoded += path[i].encode("ascii")
            i += 1
            continue
        digits = path[i + 1 : i + 3]
        if len(digits) != 2 or not set(digits) <= HEX:
            return None  # malformed escape
        byte = int(digits, 16)
        if byte in _ENCODED_FORBIDDEN:
            return None
        character = chr(byte)
        canonical.append(character if character in UNRESERVED else "%" + digits.upper())
        decoded.append(byte)
        i += 3
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(unicodedata.category(c) == "Cc" for c in text):  # C0, DEL and C1
        return None
    return "".join(canonical)


def reference_path(target: str) -> tuple[str, tuple[str, ...]] | None:
    """(canonical path, segments) the rules make of ``target``; None if they refuse it."""
    path = _raw_path(target)
    canonical = None if path is None else _canonical(path)
    if canonical is None:
        return None
    segments = canonical[1:].split("/")
    if _has_double_escape(canonical) or not _segments_ok(segments):
        return None
    return canonical, tuple(segments)


def is_clean(path: str) -> bool:
    """The common case: unreserved and harmless sub-delimiters only, no escapes, no dot
    segments, no empty segment but a trailing slash's."""
    if not path.startswith("/"):
        return False
    if not set(path[1:]) <= UNRESERVED | PATH_SAFE | {"/"}:
        return False
    return _segments_ok(path[1:].split("/"))


def _decode(text: str) -> str | None:
    """One careless percent-decoding pass (UTF-8; None where it would not decode)."""
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        return None


def upstream_problems(raw_path: str) -> list[str]:
    """What an upstream that percent-decodes ``raw_path`` once or twice could read
    differently from the describer: empty list when nothing."""
    problems: list[str] = []
    once = _decode(raw_path)
    twice = None if once is None else _decode(once)
    for label, reading in (("once", once), ("twice", twice)):
        if reading is None:
            continue
        segments = reading[1:].split("/")
        if not _segments_ok(segments):
            problems.append(f"decoded {label}: a dot or empty segment in {reading!r}")
        for character in "\\;#":
            if character in reading:
                problems.append(f"decoded {label}: {character!r} in {reading!r}")
        if any(unicodedata.category(c) == "Cc" for c in reading):
            problems.append(f"decoded {label}: a control character in {reading!r}")
    return problems


def check_described(target: str, described: Described) -> None:
    """Assert every upstream-reading guarantee for a target that describe() accepted."""
    raw_path = target.split("?", 1)[0]
    problems = upstream_problems(raw_path)
    assert not problems, f"{target!r} accepted, but {problems}"
    once = _decode(raw_path)
    assert once is not None, f"{target!r} accepted, but it does not decode as UTF-8"
    # The canonical path only decodes unreserved escapes: fully decoded, it and the raw
    # path are the same text, segment for segment.
    assert _decode(described.path) == once, (target, described.path)
    assert tuple(unquote(s) for s in described.segments) == tuple(once[1:].split("/")), (
        target,
        described.segments,
    )
    assert described.segments == tuple(described.path[1:].split("/")), described
