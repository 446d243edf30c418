"""What nginx tells us about the original request → a described request, or a rejection.

nginx decides on the string it sends us, the upstream routes on its own reading of the
same bytes; every place where the two readings could differ (dot segments, encoded
separators, ``;`` parameters, backslashes, fragments, odd bytes) is refused here rather
than normalised (docs/auth-endpoint.md; docs/security-model.md). Pure: no aiohttp, no I/O.

Decisions documented here:

- The method must match ``[A-Z][A-Z0-9_-]{0,31}``: upper case, as nginx sends it, and no
  longer than any real method. ``HEAD`` is kept as ``HEAD``; treating it like ``GET`` is
  the endpoint matcher's business.
- The whole target (query included) must be visible ASCII: nginx passes ``$request_uri``
  raw and rejects spaces and control characters in the request line, so anything else
  did not come from nginx. The target is at most 8 KiB (nginx's default header buffer).
- Escapes of unreserved characters are decoded; every other escape is kept, with upper-case
  hex digits, so ``%20`` stays ``%20``. Encoded C0/C1 control characters, ``/``, ``\\``,
  ``#`` and ``;`` are refused, and so is an encoded ``%`` that forms an escape (``%25`` and
  two hex digits, found after the unreserved escapes are decoded, so ``%25%32%46`` too):
  an upstream that decodes twice would otherwise see ``..%2F..`` become ``../..``.
- Problems are reported in this order: method, missing target, path, client address.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote_to_bytes

from authsvc.rules.ipfilter import IPAddress, NetworkSet, parse_client_ip

MAX_TARGET_LENGTH = 8192

_METHOD = re.compile(r"[A-Z][A-Z0-9_-]{0,31}")
# A segment of the common case: unreserved and harmless sub-delimiter characters only (no
# '%', ';'), and not a dot segment. The lookahead keeps '.' and '..' out.
_SEGMENT = r"(?!\.\.?(?:[/?]|\Z))[A-Za-z0-9._~!$&'()*+,=:@-]+"
# The common case in one regex: a clean path with no empty segment, then any visible query.
_CLEAN_TARGET = re.compile(rf"/(?:{_SEGMENT}(?:/{_SEGMENT})*/?)?(?:\?[\x21-\x7e]*)?")
_NOT_VISIBLE_ASCII = re.compile(r"[^\x21-\x7e]")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_MALFORMED_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Double encoding, on the canonical path (escapes upper-cased, unreserved ones decoded).
_DOUBLE_ESCAPE = re.compile(r"%25[0-9A-Fa-f]{2}")
# C0 and C1 controls and DEL, checked on the decoded path (raw ones never get this far).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_RAW_FORBIDDEN = (("#", "a '#'"), ("\\", "a backslash"), (";", "a ';'"))
_ENCODED_FORBIDDEN = {0x2F: "'/'", 0x5C: "backslash", 0x23: "'#'", 0x3B: "';'"}


@dataclass(frozen=True, slots=True)
class Described:
    """A usable description of the original request."""

    method: str
    path: str  # canonical: unreserved escapes decoded, other escapes with upper-case hex
    segments: tuple[str, ...]  # path[1:].split("/"): "/a/b/" -> ("a", "b", "")
    client_ip: IPAddress


@dataclass(frozen=True, slots=True)
class Rejected:
    """The description is unusable; ``detail`` is a short sentence that echoes no input."""

    reason: Literal["bad_request", "bad_path"]
    detail: str


def _bad_path(detail: str) -> Rejected:
    return Rejected("bad_path", detail)


def _decode_escapes(path: str) -> str | Rejected:
    """Canonicalise the escapes of ``path`` (visible ASCII), or refuse it."""
    if _MALFORMED_ESCAPE.search(path):
        return _bad_path("The path contains a malformed percent-escape.")
    pieces: list[str] = []
    position = 0
    for match in _ESCAPE.finditer(path):
        hex_digits = match.group(1).upper()
        byte = int(hex_digits, 16)
        if byte in _ENCODED_FORBIDDEN:
            return _bad_path(
                f"The path contains an encoded {_ENCODED_FORBIDDEN[byte]} (%{hex_digits})."
            )
        pieces.append(path[position : match.start()])
        character = chr(byte)
        pieces.append(character if character in _UNRESERVED else "%" + hex_digits)
        position = match.end()
    pieces.append(path[position:])
    try:
        decoded = unquote_to_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        return _bad_path("The path's percent-escapes do not decode to valid UTF-8.")
    if _CONTROL.search(decoded):
        return _bad_path("The path contains an encoded control character or NUL.")
    canonical = "".join(pieces)
    if _DOUBLE_ESCAPE.search(canonical):
        return _bad_path("The path contains a double-encoded escape (%25 and two hex digits).")
    return canonical


def _raw_problem(target: str, path: str) -> str | None:
    """What is wrong with the raw target, before any decoding; None if nothing."""
    if len(target) > MAX_TARGET_LENGTH:
        return f"The request target is longer than {MAX_TARGET_LENGTH} characters."
    if _NOT_VISIBLE_ASCII.search(target):
        return "The request target contains a space, a control character or a non-ASCII character."
    if not path.startswith("/"):
        return "The path does not start with '/'."
    for character, name in _RAW_FORBIDDEN:
        if character in path:
            return f"The path contains {name}."
    return None


def _segment_problem(segments: list[str]) -> str | None:
    """What is wrong with the decoded segments; None if nothing."""
    last = len(segments) - 1
    for index, segment in enumerate(segments):
        # Checked after decoding, so '%2e', '.%2E' and friends are caught too.
        if segment in (".", ".."):
            return "The path has a '.' or '..' segment."
        if not segment and index != last:
            return "The path has an empty segment ('//')."
    return None


def _careful_path(target: str) -> tuple[str, tuple[str, ...]] | Rejected:
    """Check every request description rule on ``target``; the authority behind the fast
    check (docs/auth-endpoint.md lists the rules)."""
    path = target.partition("?")[0]
    problem = _raw_problem(target, path)
    if problem is None:
        if "%" in path:
            canonical = _decode_escapes(path)
            if isinstance(canonical, Rejected):
                return canonical
            path = canonical
        segments = path[1:].split("/")
        problem = _segment_problem(segments)
        if problem is None:
            return path, tuple(segments)
    return _bad_path(problem)


def client_ip(
    real_ip: str | None, peer: str | None, trusted_proxies: NetworkSet
) -> IPAddress | Rejected:
    """The client address: X-Real-IP from a trusted (or unix-socket) peer, else the peer.

    ``peer`` is None for a unix-socket peer; its X-Real-IP is required and believed. From
    an untrusted TCP peer X-Real-IP is ignored entirely, even when it is garbage. Shared by
    the auth endpoint (through describe()) and the admin API.
    """
    peer_ip: IPAddress | None = None
    if peer is not None:
        try:
            peer_ip = parse_client_ip(peer)
        except ValueError:
            return Rejected("bad_request", "The peer address is not an IP address.")
        if not trusted_proxies.contains(peer_ip):
            # An untrusted peer could write anything into X-Real-IP: ignore it entirely.
            return peer_ip
    if real_ip is None:
        if peer_ip is None:
            return Rejected("bad_request", "X-Real-IP is missing on a unix-socket connection.")
        return peer_ip
    try:
        return parse_client_ip(real_ip)
    except ValueError:
        return Rejected("bad_request", "X-Real-IP is not an IP address.")


def describe(
    method: str | None,
    uri: str | None,
    real_ip: str | None,
    peer: str | None,
    trusted_proxies: NetworkSet,
) -> Described | Rejected:
    """Describe the original request from nginx's headers, or say why it is unusable.

    ``method``, ``uri`` and ``real_ip`` are the X-Original-Method, X-Original-URI and
    X-Real-IP headers (None when absent); ``peer`` is the TCP peer's address, None for a
    unix-socket peer, whose X-Real-IP is always believed (only local processes can connect).
    """
    if not method:
        return Rejected("bad_request", "X-Original-Method is missing.")
    if not _METHOD.fullmatch(method):
        return Rejected("bad_request", "X-Original-Method is not an upper-case HTTP method.")
    if not uri:
        return Rejected("bad_request", "X-Original-URI is missing.")
    if len(uri) <= MAX_TARGET_LENGTH and _CLEAN_TARGET.fullmatch(uri):
        path = uri.partition("?")[0]
        segments = tuple(path[1:].split("/"))
    else:
        checked = _careful_path(uri)
        if isinstance(checked, Rejected):
            return checked
        path, segments = checked
    address = client_ip(real_ip, peer, trusted_proxies)
    if isinstance(address, Rejected):
        return address
    return Described(method=method, path=path, segments=segments, client_ip=address)


__all__ = ["MAX_TARGET_LENGTH", "Described", "Rejected", "client_ip", "describe"]
