"""Property tests of authsvc.rules.ipfilter against Python's ipaddress module: the first
matching rule decides, no match denies, an IPv4-mapped IPv6 client counts as IPv4.

Run longer: ``AUTHSVC_HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest -q
tests/adversarial/test_ipfilter_properties.py --hypothesis-show-statistics``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authsvc.rules.ipfilter import IpFilterError, NetworkSet, compile_ip_filter, parse_client_ip

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Rule:
    """One rule as the reference model reads it; ``network`` None is ``all``."""

    allow: bool
    network: Network | None

    @property
    def text(self) -> str:
        return f"{'allow' if self.allow else 'deny'} {self.network or 'all'}"


def _is_mapped(network: Network) -> bool:
    return (
        network.version == 6
        and network.prefixlen >= 96
        and network.network_address.ipv4_mapped is not None
    )


# A few fixed networks that nest and overlap, so that rules shadow each other, plus random
# ones of every prefix length.
_FIXED = [
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.1.2.3/32",
    "0.0.0.0/0",
    "127.0.0.1/32",
    "2001:db8::/32",
    "2001:db8:1::/48",
    "::/0",
    "::1/128",
    "::/96",
    "::fffe:0:0/95",
]
_v4_network = st.builds(
    lambda a, p: ipaddress.IPv4Network((a, p), strict=False),
    st.integers(0, 2**32 - 1),
    st.integers(0, 32),
)
_v6_network = st.builds(
    lambda a, p: ipaddress.IPv6Network((a, p), strict=False),
    st.integers(0, 2**128 - 1),
    st.integers(0, 128),
)
NETWORKS = st.one_of(
    st.sampled_from(_FIXED).map(ipaddress.ip_network), _v4_network, _v6_network
).filter(lambda n: not _is_mapped(n))
RULES = st.lists(
    st.builds(Rule, st.booleans(), st.one_of(st.none(), NETWORKS, NETWORKS)), min_size=1, max_size=8
)


def _host_in(network: Network, offset: int) -> Address:
    return network.network_address + offset % network.num_addresses


def _client_texts(draw: st.DrawFn, rules: list[Rule]) -> str:
    """A client address: often inside one of the rules' networks, in every spelling."""
    networks = [r.network for r in rules if r.network is not None]
    choices = [
        st.integers(0, 2**32 - 1).map(lambda v: str(ipaddress.IPv4Address(v))),
        st.integers(0, 2**128 - 1).map(lambda v: str(ipaddress.IPv6Address(v))),
        st.integers(0, 2**32 - 1).map(lambda v: f"::ffff:{ipaddress.IPv4Address(v)}"),
    ]
    if networks:
        inside = st.builds(_host_in, st.sampled_from(networks), st.integers(0, 2**128))
        choices += [inside.map(str), inside.map(_mapped_spelling)]
    return draw(st.one_of(choices))


def _mapped_spelling(address: Address) -> str:
    """An IPv4 address written as IPv4-mapped IPv6; other addresses as they are."""
    return f"::ffff:{address}" if address.version == 4 else str(address)


@st.composite
def filters_and_clients(draw: st.DrawFn) -> tuple[list[Rule], str]:
    rules = draw(RULES)
    return rules, _client_texts(draw, rules)


def _as_ipv4_if_mapped(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def reference_allows(rules: list[Rule], client: str) -> bool:
    """The first rule whose network holds the client decides; none denies."""
    address = _as_ipv4_if_mapped(ipaddress.ip_address(client))
    for rule in rules:
        if rule.network is None or (
            rule.network.version == address.version and address in rule.network
        ):
            return rule.allow
    return False


def _filter_text(rules: list[Rule], styles: list[tuple[str, str]]) -> str:
    """The rules one per line, each in a style (``{}`` is the rule), after an optional
    blank or comment line."""
    lines: list[str] = []
    for rule, (before, style) in zip(rules, styles + [("", "{}")] * len(rules), strict=False):
        if before:
            lines.append(before)
        lines.append(style.format(rule.text))
    return "\n".join(lines)


STYLES = st.lists(
    st.tuples(
        st.sampled_from(["", "# a comment", "   ", "#allow all"]),
        st.sampled_from(["{}", "  {}  ", "{} # why", "\t{}", "{}#"]),
    ),
    max_size=8,
)


class TestIpFilter:
    @given(filters_and_clients(), STYLES)
    def test_first_matching_rule_decides(
        self, case: tuple[list[Rule], str], styles: list[tuple[str, str]]
    ) -> None:
        """allows() equals the reference (first match decides, default deny, mapped IPv6
        as IPv4), for the parsed client and for the ipaddress object alike."""
        rules, client = case
        compiled = compile_ip_filter("f", _filter_text(rules, styles))
        expected = reference_allows(rules, client)
        assert compiled.allows(parse_client_ip(client)) is expected, (compiled.rules, client)
        assert compiled.allows(ipaddress.ip_address(client)) is expected, (compiled.rules, client)

    @given(filters_and_clients())
    def test_rules_are_kept_as_written(self, case: tuple[list[Rule], str]) -> None:
        """The compiled filter lists its rules exactly as written, in order."""
        rules, _ = case
        assert compile_ip_filter("f", _filter_text(rules, [])).rules == tuple(r.text for r in rules)


class TestNetworkSet:
    @given(filters_and_clients())
    def test_contains_equals_ipaddress_membership(self, case: tuple[list[Rule], str]) -> None:
        """NetworkSet.contains() is plain membership in any entry (mapped IPv6 as IPv4)."""
        rules, client = case
        networks = [r.network for r in rules if r.network is not None]
        address = _as_ipv4_if_mapped(ipaddress.ip_address(client))
        expected = any(n.version == address.version and address in n for n in networks)
        compiled = NetworkSet.compile([str(n) for n in networks])
        assert compiled.contains(parse_client_ip(client)) is expected, (networks, client)
        assert compiled.contains(ipaddress.ip_address(client)) is expected, (networks, client)


def _host_bits_set(draw: st.DrawFn) -> str:
    network = draw(st.one_of(_v4_network, _v6_network).filter(lambda n: n.num_addresses > 1))
    host = _host_in(network, draw(st.integers(1, network.num_addresses - 1)))
    return f"{host}/{network.prefixlen}"


@st.composite
def bad_targets(draw: st.DrawFn) -> str:
    """Targets the rules refuse: host bits set, leading zeros, zone ids, mapped networks,
    prefixes out of range or oddly written."""
    v4 = str(draw(st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)))
    kind = draw(st.sampled_from(["host-bits", "zeros", "zone", "mapped", "range", "prefix"]))
    if kind == "host-bits":
        return _host_bits_set(draw)
    if kind == "zeros":
        octets = v4.split(".")
        index = draw(st.integers(0, 3))
        octets[index] = "0" + octets[index]
        return ".".join(octets)
    if kind == "zone":
        return (
            f"fe80::{draw(st.integers(1, 0xFFFF)):x}%{draw(st.sampled_from(['eth0', '1', 'lo']))}"
        )
    if kind == "mapped":
        return f"::ffff:{v4}" + draw(st.sampled_from(["", "/128", "/120"]))
    if kind == "range":
        return f"{v4}/{draw(st.integers(33, 999))}"
    return f"0.0.0.0/{draw(st.sampled_from(['+0', '00', '08', '255.0.0.0', ' 8', '8/8', '']))}"


class TestRefusals:
    @given(bad_targets(), st.sampled_from(["allow", "deny"]), st.integers(0, 3))
    def test_bad_targets_name_their_line(self, target: str, verb: str, blank_lines: int) -> None:
        """Every malformed target is an IpFilterError naming its line, never a filter."""
        text = "\n" * blank_lines + f"{verb} {target}\ndeny all\n"
        with pytest.raises(IpFilterError) as caught:
            compile_ip_filter("f", text)
        assert caught.value.line == blank_lines + 1

    @given(st.text(max_size=60))
    def test_arbitrary_text_compiles_or_is_an_ip_filter_error(self, text: str) -> None:
        """Any text is a filter or an IpFilterError; nothing else escapes."""
        with contextlib.suppress(IpFilterError):
            compile_ip_filter("f", text)

    @given(st.lists(NETWORKS.map(str), max_size=3), bad_targets(), st.integers(0, 3))
    def test_network_set_refuses_a_bad_entry(self, good: list[str], bad: str, at: int) -> None:
        """A network set with one malformed entry is a ValueError naming that entry."""
        entries = [*good[:at], bad, *good[at:]]
        with pytest.raises(ValueError, match="^" + re.escape(repr(bad)[:60])):
            NetworkSet.compile(entries)

    @given(st.lists(st.text(max_size=20), min_size=1, max_size=3))
    def test_network_set_of_junk_is_a_value_error(self, entries: list[str]) -> None:
        """Any list of strings is a network set or a ValueError; nothing else escapes."""
        with contextlib.suppress(ValueError):
            NetworkSet.compile(entries)
