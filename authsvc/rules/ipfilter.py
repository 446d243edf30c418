"""IP filters (ordered allow/deny rules) and network sets, compiled to integers.

A filter is compiled once per configuration load: every rule becomes ``(network, mask,
rule)`` over plain integers, kept in one list per address family, so matching a client is
a short loop of ``value & mask == network`` with no object allocation; ``rule`` is the
prebuilt :class:`FilterRule` (allow or deny, and the text as written), so the answer also
says which rule decided (the explain call shows it) at no extra cost.

Decisions documented here (docs/configuration.md leaves them open):

- Rules are strict: a CIDR with host bits set, an IPv4 octet with leading zeros, a zone id,
  a netmask instead of a prefix length, a prefix length with a sign or leading zeros, or one
  out of range is an error that names the line.
- An IPv4-mapped IPv6 address or network (``::ffff:10.0.0.0/104``) in a rule is an error
  whose message gives the IPv4 spelling to use instead. Client addresses are always reduced
  to IPv4 before matching, so such a rule could never match; one spelling per network also
  keeps the rules shown by the admin API unambiguous. Wider IPv6 networks that merely
  contain the mapped range (``::/0``) are accepted; they match native IPv6 clients only.
- A filter with no rules is an error ("filter has no rules", reported on line 1): by the
  no-match rule it would deny everything, which is surely a mistake. Write ``deny all``.
- Verbs are lower case (``allow``, ``deny``); ``all`` is the only keyword target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address
from typing import TypeAlias

IPAddress: TypeAlias = IPv4Address | IPv6Address

_V4_BITS = 32
_V6_BITS = 128
_V4_ALL = (1 << _V4_BITS) - 1
_MAPPED_PREFIX = 0xFFFF  # the upper 96 bits of ::ffff:0:0/96
# The longest sane client address: a full IPv6 address with an embedded IPv4 tail (45)
# plus a zone id; anything longer is junk and is refused before parsing.
_MAX_CLIENT_IP_LENGTH = 100


@dataclass(frozen=True, slots=True)
class FilterRule:
    """One rule as it decides: allow or deny, and its text as written. Built once per
    configuration load, so reporting which rule decided costs the hot path nothing."""

    allow: bool
    text: str


#: What decides when no rule of a filter matches (and for a filter that no longer exists).
DEFAULT_DENY = FilterRule(allow=False, text="default deny")

# (network, mask, the rule) over one family's integers.
_Rule: TypeAlias = tuple[int, int, FilterRule]
# (mask, networks with that mask) over one family's integers.
_MaskGroup: TypeAlias = tuple[int, frozenset[int]]


# Clients repeat: remembering the last parses saves ~1.5 µs per request. Bounded, and only
# successful parses are kept (a ValueError is raised again each time).
@lru_cache(maxsize=16_384)
def parse_client_ip(text: str) -> IPAddress:
    """Parse a client address (``X-Real-IP``, the TCP peer); raise ValueError if invalid.

    A zone id (``fe80::1%eth0``) is dropped and an IPv4-mapped IPv6 address
    (``::ffff:10.1.2.3``) becomes its IPv4Address, so that filters see one spelling per
    client. Leading zeros in IPv4 octets are refused (Python's ipaddress does so since 3.9.5).
    """
    if len(text) > _MAX_CLIENT_IP_LENGTH:
        raise ValueError("address is too long")
    # Dispatching on ':' saves ip_address() a failed IPv4 attempt for every IPv6 client.
    if ":" not in text:
        return IPv4Address(text)
    ip = IPv6Address(text)
    mapped = ip.ipv4_mapped
    if mapped is not None:
        return mapped
    if ip.scope_id is not None:
        return IPv6Address(int(ip))
    return ip


class IpFilterError(ValueError):
    """A rule of a filter is invalid; ``line`` is 1-based within the filter's text."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(line, reason)
        self.line = line
        self.reason = reason

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


def _short(text: str, limit: int = 60) -> str:
    """``repr(text)``, cut so that error messages stay readable."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def _parse_prefix(text: str, bits: int, family: str) -> int:
    # isdigit() alone would accept other scripts' digits; a sign, a netmask or a leading
    # zero is refused so that every range has one spelling.
    if not (text.isascii() and text.isdigit()) or (len(text) > 1 and text[0] == "0"):
        raise ValueError(
            f"prefix length {_short(text)} must be a decimal number without leading zeros"
        )
    prefix = int(text)
    if prefix > bits:
        raise ValueError(f"prefix length /{prefix} is out of range for {family} (0-{bits})")
    return prefix


def _parse_network(text: str) -> tuple[int, int, int]:
    """Parse an address or CIDR strictly into ``(version, network, mask)``.

    Raise ValueError with a reason that an operator can act on.
    """
    if "%" in text:
        raise ValueError(f"zone ids are not allowed: {_short(text)}")
    address, slash, prefix_text = text.partition("/")
    if "/" in prefix_text:
        raise ValueError(f"more than one '/' in {_short(text)}")
    ip: IPAddress
    try:
        ip = IPv6Address(address) if ":" in address else IPv4Address(address)
    except ValueError as exc:
        raise ValueError(f"not an IP address or CIDR range: {exc}") from None
    bits = _V4_BITS if ip.version == 4 else _V6_BITS
    family = f"IPv{ip.version}"
    prefix = _parse_prefix(prefix_text, bits, family) if slash else bits
    value = int(ip)
    mask = ((1 << bits) - 1) ^ ((1 << (bits - prefix)) - 1)
    if value & ~mask:
        network = type(ip)(value & mask)
        raise ValueError(f"host bits are set in {_short(text)}; the network is {network}/{prefix}")
    if ip.version == 6 and prefix >= _V6_BITS - _V4_BITS and value >> _V4_BITS == _MAPPED_PREFIX:
        ipv4 = IPv4Address(value & _V4_ALL)
        spelling = str(ipv4) if not slash else f"{ipv4}/{prefix - (_V6_BITS - _V4_BITS)}"
        raise ValueError(
            f"{_short(text)} is an IPv4-mapped IPv6 address; write it as IPv4: {spelling}"
        )
    return ip.version, value, mask


def _to_family(ip: IPAddress) -> tuple[bool, int]:
    """``(is_ipv4, integer)`` for matching; a mapped IPv6 address counts as its IPv4."""
    if isinstance(ip, IPv4Address):
        return True, int(ip)
    mapped = ip.ipv4_mapped
    if mapped is not None:
        return True, int(mapped)
    return False, int(ip)


@dataclass(frozen=True, slots=True)
class IpFilter:
    """A named, compiled IP filter: the first matching rule decides; no match denies."""

    name: str
    rules: tuple[str, ...]  # each rule as written, without comments or surrounding blanks
    v4: tuple[_Rule, ...] = field(repr=False)
    v6: tuple[_Rule, ...] = field(repr=False)

    def rule_for(self, ip: IPAddress) -> FilterRule:
        """The rule that decides for ``ip``: the first that matches, else DEFAULT_DENY.

        An IPv6 client is only compared with IPv6 rules (and ``all``), so an IPv6 client
        against IPv4-only rules falls through to the default denial.
        """
        is_v4, value = _to_family(ip)
        for network, mask, rule in self.v4 if is_v4 else self.v6:
            if value & mask == network:
                return rule
        return DEFAULT_DENY

    def allows(self, ip: IPAddress) -> bool:
        """True when the rule that decides for ``ip`` is an ``allow``."""
        return self.rule_for(ip).allow


def compile_ip_filter(name: str, text: str) -> IpFilter:
    """Compile the rule text of filter ``name``; raise IpFilterError naming the line."""
    rules: list[str] = []
    v4: list[_Rule] = []
    v6: list[_Rule] = []
    # Once a family has a catch-all rule, later rules of that family can never decide.
    v4_closed = v6_closed = False
    # Split on "\n" only (not splitlines()) so that line numbers agree with the YAML file's.
    for number, raw_line in enumerate(text.split("\n"), start=1):
        rule = raw_line.partition("#")[0].strip()
        if not rule:
            continue
        words = rule.split()
        if words[0] not in ("allow", "deny"):
            raise IpFilterError(
                number, f"unknown verb {_short(words[0])}; expected 'allow' or 'deny'"
            )
        if len(words) != 2:
            raise IpFilterError(number, "expected '<allow|deny> <target>' (one target per line)")
        decides = FilterRule(allow=words[0] == "allow", text=rule)
        if words[1] == "all":
            if not v4_closed:
                v4.append((0, 0, decides))
            if not v6_closed:
                v6.append((0, 0, decides))
            v4_closed = v6_closed = True
        else:
            try:
                version, network, mask = _parse_network(words[1])
            except ValueError as exc:
                raise IpFilterError(number, str(exc)) from None
            if version == 4 and not v4_closed:
                v4.append((network, mask, decides))
                v4_closed = mask == 0
            elif version == 6 and not v6_closed:
                v6.append((network, mask, decides))
                v6_closed = mask == 0
        rules.append(rule)
    if not rules:
        raise IpFilterError(1, "filter has no rules (write 'deny all' to deny everyone)")
    return IpFilter(name=name, rules=tuple(rules), v4=tuple(v4), v6=tuple(v6))


def _group_by_mask(entries: list[tuple[int, int]]) -> tuple[_MaskGroup, ...]:
    groups: dict[int, set[int]] = {}
    for network, mask in entries:
        groups.setdefault(mask, set()).add(network)
    # Most specific first: in practice trusted proxies are single hosts.
    return tuple(
        (mask, frozenset(networks)) for mask, networks in sorted(groups.items(), reverse=True)
    )


@dataclass(frozen=True, slots=True)
class NetworkSet:
    """An unordered set of addresses and CIDR ranges (``trusted_proxies``)."""

    texts: tuple[str, ...]  # the entries as written
    v4: tuple[_MaskGroup, ...] = field(repr=False)
    v6: tuple[_MaskGroup, ...] = field(repr=False)

    @classmethod
    def compile(cls, entries: Sequence[str]) -> NetworkSet:
        """Compile ``entries`` with the strictness of filter rules; raise ValueError.

        The message names the bad entry: ``'10.0.0.1/8': host bits are set ...``.
        """
        if isinstance(entries, str):
            # A bare string is a Sequence[str] of characters: surely a caller's mistake.
            raise TypeError("entries must be a sequence of strings, not a string")
        v4: list[tuple[int, int]] = []
        v6: list[tuple[int, int]] = []
        for entry in entries:
            try:
                version, network, mask = _parse_network(entry)
            except ValueError as exc:
                raise ValueError(f"{_short(entry)}: {exc}") from None
            (v4 if version == 4 else v6).append((network, mask))
        return cls(texts=tuple(entries), v4=_group_by_mask(v4), v6=_group_by_mask(v6))

    def contains(self, ip: IPAddress) -> bool:
        """True when ``ip`` (a mapped IPv6 address counting as IPv4) is in the set."""
        is_v4, value = _to_family(ip)
        groups = self.v4 if is_v4 else self.v6
        return any(value & mask in networks for mask, networks in groups)


__all__ = [
    "DEFAULT_DENY",
    "FilterRule",
    "IPAddress",
    "IpFilter",
    "IpFilterError",
    "NetworkSet",
    "compile_ip_filter",
    "parse_client_ip",
]
