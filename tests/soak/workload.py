"""What the soak sends: the configuration variants it reloads between, and the mix of
/auth requests (valid, denied, unknown, retired and malformed tokens; the catalog's
endpoints and others; several client addresses; a few unusable descriptions)."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from authsvc.rules.durations import parse_duration
from authsvc.rules.tokens import TokenRecord, new_secret
from tests.factories import full_policy

LOOPBACK = ["127.0.0.1/32", "::1/128"]
OFFICE = "allow 10.0.0.0/8\nallow 2001:db8::/32\ndeny all\n"
OFFICE_CARVED = "deny 10.9.0.0/16\n" + OFFICE
LAB = "allow 192.168.0.0/16\ndeny all\n"
LOCALHOST = "allow 127.0.0.1\nallow ::1\ndeny all\n"


@dataclass(frozen=True, slots=True)
class Knobs:
    """One configuration variant: each field is something a reload may change."""

    reader_narrow: bool = False  # Reader loses GET /api/v1/items/{id}
    reader_history: bool = False  # Reader gains GET /api/v1/items/{id}/history
    extra: bool = True  # the Extra permission is in the catalog
    office_carved: bool = False  # office denies 10.9.0.0/16 before allowing 10.0.0.0/8
    lab: bool = True  # the lab filter exists (tokens holding it are denied when it doesn't)
    trust_loopback: bool = True  # trusted_proxies is loopback (else [], X-Real-IP ignored)
    max_lifetime: str | None = None
    enforce: str | None = None  # security_policy.enforce_ip_filter
    updates: bool = True  # security_policy.allow_permission_updates
    enabled: bool = True  # security_policy.tokens_enabled


def catalog(knobs: Knobs) -> dict[str, Any]:
    """The ``permissions`` section."""
    reader = ["GET /api/v1/items"]
    if not knobs.reader_narrow:
        reader.append("GET /api/v1/items/{id}")
    if knobs.reader_history:
        reader.append("GET /api/v1/items/{id}/history")
    sections: dict[str, Any] = {
        "Reader": {"description": "Read items", "endpoints": reader},
        "Writer": {"endpoints": ["POST /api/v1/items", "DELETE /api/v1/items/{id}"]},
        "Files": {"endpoints": ["GET /api/v1/files/{path...}", "PUT /api/v1/files/{path...}"]},
        "Misc": {"endpoints": ["* /api/v1/misc/{id}"]},
    }
    if knobs.extra:
        sections["Extra"] = {"endpoints": ["GET /api/v1/extra"]}
    return sections


def filters(knobs: Knobs) -> dict[str, str]:
    """The ``ip_filters`` section."""
    named = {"office": OFFICE_CARVED if knobs.office_carved else OFFICE, "localhost": LOCALHOST}
    if knobs.lab:
        named["lab"] = LAB
    return named


def document(knobs: Knobs, folder: Path, store: str, ports: tuple[int, int]) -> dict[str, Any]:
    """The whole configuration file for ``knobs``: every section that must be written out,
    a small cache (so that a full one cannot explain memory growth) with a 1 s TTL (the
    CLI's changes reach the server within it)."""
    return {
        "listen": {"auth": f"127.0.0.1:{ports[0]}", "admin": f"127.0.0.1:{ports[1]}"},
        "trusted_proxies": LOOPBACK if knobs.trust_loopback else [],
        "admin_trusted_proxies": LOOPBACK,
        "store": store,
        "secret_key_file": str(folder / "authsvc.key"),
        "audit_log": str(folder / "audit.log"),
        "cache": {"ttl": "1s", "max_entries": CACHE_ENTRIES},
        "permissions": catalog(knobs),
        "ip_filters": filters(knobs),
        "security_policy": full_policy(
            tokens_enabled=knobs.enabled,
            max_lifetime=knobs.max_lifetime,
            enforce_ip_filter=knobs.enforce,
            allow_permission_updates=knobs.updates,
        ),
    }


#: Cache entries: a full cache of records (well under 1 KiB each) is a few tens of KiB.
CACHE_ENTRIES = 64

#: The first reloads, in order, so that even a short run covers each kind of change;
#: random single changes follow.
SCRIPT: tuple[dict[str, Any], ...] = (
    {"max_lifetime": "1m"},
    {"office_carved": True, "reader_narrow": True},
    {"enforce": "localhost"},
    {"lab": False, "extra": False},
    {"enabled": False},
    {"enabled": True, "trust_loopback": False, "reader_history": True},
    {"enforce": None, "updates": False, "max_lifetime": None},
    {"trust_loopback": True, "enforce": "office", "lab": True},
)


def generator(seed: int) -> random.Random:
    """The soak's random choices: reproducible from the seed (nothing secret here)."""
    return random.Random(seed)  # noqa: S311 - a workload, not a secret


def next_knobs(knobs: Knobs, reload_index: int, rng: random.Random) -> Knobs:
    """The variant of the next reload: the script's, then one random change at a time
    (always a change). Tokens are switched off for one reload at most (the admin API is
    locked out then)."""
    if reload_index < len(SCRIPT):
        return replace(knobs, **SCRIPT[reload_index])
    if not knobs.enabled:
        return replace(knobs, enabled=True)
    if rng.random() < 0.1:
        return replace(knobs, enabled=False)
    changed = knobs
    while changed == knobs:
        changed = _one_change(knobs, rng)
    return changed


def _one_change(knobs: Knobs, rng: random.Random) -> Knobs:
    choice = rng.choice(
        ["narrow", "history", "extra", "carved", "lab", "trust", "lifetime", "enforce", "updates"]
    )
    options: dict[str, dict[str, Any]] = {
        "narrow": {"reader_narrow": not knobs.reader_narrow},
        "history": {"reader_history": not knobs.reader_history},
        "extra": {"extra": not knobs.extra},
        "carved": {"office_carved": not knobs.office_carved},
        "lab": {"lab": not knobs.lab},
        "lifetime": {"max_lifetime": rng.choice([None, "90d", "1m", "2m"])},
        "enforce": {"enforce": rng.choice([None, "office", "localhost"])},
        "updates": {"updates": not knobs.updates},
        "trust": {"trust_loopback": not knobs.trust_loopback},
    }
    changed = replace(knobs, **options[choice])
    if changed.enforce == "office":
        # The admin client proves an office address through X-Real-IP, so loopback stays
        # trusted while office is enforced on every token (the admin token included).
        changed = replace(changed, trust_loopback=True)
    return changed


def grantable(knobs: Knobs) -> list[str]:
    """The catalog's permission names under ``knobs`` (the reserved ones left out)."""
    return sorted(catalog(knobs))


def filter_names(knobs: Knobs) -> list[str]:
    """The IP filter names under ``knobs``."""
    return sorted(filters(knobs))


EXPIRIES = (("1m", 60), ("1h", 3600), ("30d", 30 * 86400), (None, None))


def expiry_choices(knobs: Knobs, actor: TokenRecord | None, now: float) -> list[str | None]:
    """``expires_in`` values the policy accepts and, for an admin actor with an expiry of
    its own, that do not outlive it (the delegation bound)."""
    limit = None if knobs.max_lifetime is None else parse_duration(knobs.max_lifetime)
    choices: list[str | None] = []
    for text, seconds in EXPIRIES:
        if limit is not None and (seconds is None or seconds > limit):
            continue
        ceiling = None if actor is None else actor.expires_at
        if ceiling is not None and (seconds is None or now + seconds > ceiling - 2):
            continue
        choices.append(text)
    return choices


@dataclass(frozen=True, slots=True)
class Probe:
    """One /auth request: its Authorization header values, nginx's description headers
    (None: not sent) and whether it is a HEAD subrequest."""

    kind: str  # live, retired, unknown, malformed
    authorization: tuple[str, ...]
    method: str | None
    uri: str | None
    real_ip: str | None
    head: bool = False


#: (X-Original-Method, X-Original-URI): the catalog's endpoints, neighbours the rules tell
#: apart (case, prefix, trailing slash, query), and a few unusable descriptions.
TARGETS: tuple[tuple[str | None, str | None], ...] = (
    *(("GET", "/api/v1/items"),) * 3,
    *(("GET", "/api/v1/items/42"),) * 3,
    ("HEAD", "/api/v1/items/42"),
    ("GET", "/api/v1/items/42/history"),
    ("POST", "/api/v1/items"),
    ("DELETE", "/api/v1/items/7"),
    ("GET", "/api/v1/files/a/b/c"),
    ("PUT", "/api/v1/files/report.pdf"),
    ("GET", "/api/v1/files/"),
    ("PATCH", "/api/v1/misc/9"),
    ("M-SEARCH", "/api/v1/misc/9"),
    ("GET", "/api/v1/extra"),
    ("GET", "/api/v1/items?limit=5&next=/api/v1/extra"),
    ("GET", "/api/v1/%69tems/42"),
    ("GET", "/api/v1/items/"),
    ("GET", "/api/v1/Items"),
    ("GET", "/api/v1/itemsx"),
    ("POST", "/api/v1/items/42"),
    ("GET", "/api/v1/other"),
    ("GET", "/api/v1/items/../extra"),
    ("GET", "/api/v1/items%2F42"),
    ("GET", "/api/v1//items"),
    ("GET", "/api/v1/items/%252F"),
    ("get", "/api/v1/items"),
    (None, "/api/v1/items"),
    ("GET", None),
)
#: X-Real-IP values (None: not sent, the client is the peer, 127.0.0.1).
ADDRESSES: tuple[str | None, ...] = (
    *(None,) * 3,
    "127.0.0.1",
    "::1",
    "10.1.2.3",
    "10.9.0.5",
    "::ffff:10.9.0.5",
    "2001:db8::7",
    "192.168.1.7",
    "203.0.113.9",
    "not-an-ip",
)


def _malformed(rng: random.Random, sample: str) -> tuple[str, ...]:
    """Authorization values the rules refuse before any lookup (or no header at all)."""
    flipped = sample[:-1] + ("A" if sample[-1] != "A" else "B")
    return rng.choice(
        [
            (),
            ("Basic dXNlcjpwYXNz",),
            (f"Bearer {flipped}",),  # a checksum that does not match
            ("Bearer authsvc_short",),
            (f"Bearer {sample}", f"Bearer {sample}"),  # two headers
            (f"Bearer {sample} extra",),
            (f"Token {sample}",),
        ]
    )


#: Requests each permission can grant (under some variant), and addresses each filter
#: can allow: half the requests of a live token aim at what it may be allowed.
AIMED: dict[str, tuple[tuple[str, str], ...]] = {
    "Reader": (("GET", "/api/v1/items"), ("GET", "/api/v1/items/42"), ("HEAD", "/api/v1/items/7")),
    "Writer": (("POST", "/api/v1/items"), ("DELETE", "/api/v1/items/42")),
    "Files": (("GET", "/api/v1/files/a/b"), ("PUT", "/api/v1/files/x")),
    "Misc": (("PATCH", "/api/v1/misc/1"), ("GET", "/api/v1/misc/2")),
    "Extra": (("GET", "/api/v1/extra"),),
}
AIMED_ADDRESSES: dict[str | None, tuple[str | None, ...]] = {
    None: (None, "127.0.0.1", "10.1.2.3"),
    "office": ("10.1.2.3", "10.9.0.5", "2001:db8::7"),
    "localhost": (None, "127.0.0.1", "::1"),
    "lab": ("192.168.1.7", "192.168.200.1"),
}


def _aimed(rng: random.Random, record: TokenRecord) -> tuple[str, str, str | None]:
    names = sorted(record.permissions & AIMED.keys()) or ["Reader"]
    method, uri = rng.choice(AIMED[rng.choice(names)])
    return method, uri, rng.choice(AIMED_ADDRESSES.get(record.ip_filter, (None,)))


def probe(
    rng: random.Random, live: list[TokenRecord], secrets: list[str], retired: list[str]
) -> Probe:
    """The next request: mostly live tokens (``live[i]`` holds ``secrets[i]``), allowed or
    denied by the rules, some retired (deleted or rotated-away) secrets, unknown
    well-formed ones and junk."""
    method, uri = rng.choice(TARGETS)
    real_ip = rng.choice(ADDRESSES)
    head = rng.random() < 0.1
    roll = rng.random()
    if live and roll < 0.72:
        index = rng.randrange(len(live))
        if roll < 0.36:
            method, uri, real_ip = _aimed(rng, live[index])
        scheme = "bearer  " if roll < 0.03 else "Bearer "  # scheme case, extra space: valid
        return Probe("live", (scheme + secrets[index],), method, uri, real_ip, head)
    if retired and roll < 0.8:
        return Probe("retired", ("Bearer " + rng.choice(retired),), method, uri, real_ip, head)
    if roll < 0.88:
        return Probe("unknown", ("Bearer " + new_secret(),), method, uri, real_ip, head)
    sample = rng.choice(secrets) if secrets else new_secret()
    return Probe("malformed", _malformed(rng, sample), method, uri, real_ip, head)
