"""Token secrets: their format, checksum and keyed digest, and the stored token record.

A secret looks like ``authsvc_<43 base62 chars of randomness><6 base62 chars of CRC32>``.
The recognisable prefix lets secret scanners find leaked tokens; the checksum lets us
reject typos and junk without touching the cache or the store. Only
``HMAC-SHA256(secret_key, secret)`` is ever stored.
"""

from __future__ import annotations

import hmac
import re
import secrets
import sys
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from authsvc.rules.durations import parse_duration
from authsvc.rules.policy import Refused

PREFIX = "authsvc_"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_LENGTH = 43  # 43 * log2(62) = 256.03 bits
CHECKSUM_LENGTH = 6  # 62**6 > 2**32, so every CRC32 fits
SECRET_LENGTH = len(PREFIX) + RANDOM_LENGTH + CHECKSUM_LENGTH
#: The pattern documented for secret scanners.
SECRET_PATTERN = re.compile(r"authsvc_[0-9A-Za-z]{49}")
_SHAPE = re.compile(r"\Aauthsvc_[0-9A-Za-z]{49}\Z", re.ASCII)

TOKEN_ID_PREFIX = "tok_"
_TOKEN_ID_SHAPE = re.compile(r"\Atok_[0-9a-f]{16}\Z", re.ASCII)

# A whole secret or a cut-short one: no human-chosen text has 20 base62 characters in a
# row right after the prefix. '_' is taken too, so that two secrets pasted back to back
# ("authsvc_…authsvc_…") go as one: over-redacting a name is harmless, leaking is not.
_SECRET_LIKE = re.compile(re.escape(PREFIX) + "[0-9A-Za-z_]{20,}", re.ASCII)
REDACTED = PREFIX + "[redacted]"


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        chars.append(ALPHABET[digit])
    return "".join(reversed(chars))


def checksum(body: str) -> str:
    """The 6-character base62 CRC32 of ``body`` (prefix and randomness)."""
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


def new_secret() -> str:
    """A fresh token secret with at least 256 bits from the OS CSPRNG."""
    body = PREFIX + "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LENGTH))
    return body + checksum(body)


def has_token_shape(secret: str) -> bool:
    """True when ``secret`` has our prefix, length and alphabet (the checksum unchecked)."""
    return len(secret) == SECRET_LENGTH and _SHAPE.match(secret) is not None


def has_valid_checksum(secret: str) -> bool:
    """True when the last characters of a token-shaped ``secret`` are its checksum."""
    body = secret[:-CHECKSUM_LENGTH]
    return hmac.compare_digest(checksum(body), secret[-CHECKSUM_LENGTH:])


def is_well_formed(secret: str) -> bool:
    """True when ``secret`` has our prefix, length, alphabet and a correct checksum.

    Pure string work: this runs before any store lookup, so junk never costs I/O.
    """
    if not has_token_shape(secret):
        return False
    body = secret[:-CHECKSUM_LENGTH]
    return hmac.compare_digest(checksum(body), secret[-CHECKSUM_LENGTH:])


def digest(key: bytes, secret: str) -> bytes:
    """The keyed hash under which a secret is stored and cached."""
    return hmac.digest(key, secret.encode("ascii"), "sha256")  # one-shot: OpenSSL, no objects


def new_token_id() -> str:
    """A stable, non-secret public id (64 random bits; the store refuses a duplicate)."""
    return TOKEN_ID_PREFIX + secrets.token_hex(8)


def is_token_id(text: str) -> bool:
    """True when ``text`` has the shape of a public token id."""
    return _TOKEN_ID_SHAPE.match(text) is not None


_SHARED_SETS: dict[frozenset[str], frozenset[str]] = {}
_MAX_SHARED_SETS = 10_000


def shared_permissions(names: Iterable[str]) -> frozenset[str]:
    """One frozenset object per distinct set of permission names.

    Tokens share few distinct sets; with 100,000 cached records, sharing saves a frozenset
    (~200 bytes) per record. Bounded: a pathological variety just stops being shared.
    """
    key = frozenset(sys.intern(name) for name in names)
    shared = _SHARED_SETS.get(key)
    if shared is None:
        if len(_SHARED_SETS) >= _MAX_SHARED_SETS:
            return key
        _SHARED_SETS[key] = shared = key
    return shared


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A stored token, without its secret. Times are UTC epoch seconds.

    After a rotation with a grace period the token has two secrets: ``grace_ends_at`` is
    when the previous one stops by itself (None: no previous secret). The record found by
    the previous secret's digest has ``via_previous`` set; the one found by the current
    secret, by id or in a listing has not.

    ``rate_limit`` is the token's own limit as written (SPEC §12), None for none; the
    policy's ``max_rate_limit`` may lower it at use.
    """

    id: str
    name: str
    permissions: frozenset[str]
    ip_filter: str | None
    created_at: float
    expires_at: float | None
    created_by: str
    last_used_at: float | None = None
    last_used_ip: str | None = None
    grace_ends_at: float | None = None
    via_previous: bool = False
    rate_limit: str | None = None  # as written, e.g. "600/m" (rules.ratelimit parses it)


#: The longest grace period a rotation may give the previous secret.
MAX_GRACE_SECONDS = 7 * 86400
_NO_GRACE = re.compile(r"0[mhd]", re.ASCII)


def check_grace(value: object) -> int | None:
    """The grace period of a rotation in seconds, or None for none (absent, null or a zero
    like ``"0m"``). Units ``m``, ``h``, ``d``; at most 7 days. Raises :class:`Refused`
    (``invalid_grace`` / ``grace_too_long``, field ``grace``)."""
    if value is None or (isinstance(value, str) and _NO_GRACE.fullmatch(value)):
        return None
    try:
        seconds = parse_duration(cast(str, value), units="mhd")
    except ValueError as error:
        raise Refused("invalid_grace", f"grace: {error}.", field="grace") from None
    if seconds > MAX_GRACE_SECONDS:
        raise Refused(
            "grace_too_long",
            f"grace {value!r} is longer than the 7d a previous secret may be kept.",
            field="grace",
        )
    return seconds


def previous_secret_ends_at(record: TokenRecord, expiry: float | None) -> float | None:
    """When the previous secret stops: the earlier of the grace's end and ``expiry`` (the
    token's effective expiry), or None when there is no previous secret."""
    grace = record.grace_ends_at
    if grace is None:
        return None
    return grace if expiry is None or grace <= expiry else expiry


def secret_ended(record: TokenRecord, now: float) -> bool:
    """Whether ``record`` was found by a previous secret whose grace is over: that secret
    then matches nothing, as if it were unknown."""
    grace = record.grace_ends_at
    return record.via_previous and grace is not None and now >= grace


def redact_secrets(text: str) -> str:
    """``text`` with everything shaped like a secret, whole or cut short, replaced by
    ``authsvc_[redacted]``: for logs and messages that may echo what a client sent."""
    return _SECRET_LIKE.sub(REDACTED, text) if PREFIX in text else text
