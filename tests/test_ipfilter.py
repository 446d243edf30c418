"""Tests for authsvc.rules.ipfilter: client address parsing, filter rules, network sets."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

from authsvc.rules.ipfilter import (
    IPAddress,
    IpFilterError,
    NetworkSet,
    compile_ip_filter,
    parse_client_ip,
)


class TestParseClientIp:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            pytest.param("10.1.2.3", IPv4Address("10.1.2.3"), id="ipv4"),
            pytest.param("2001:db8::1", IPv6Address("2001:db8::1"), id="ipv6"),
            pytest.param("2001:DB8::1", IPv6Address("2001:db8::1"), id="ipv6-upper-case"),
            pytest.param("::1", IPv6Address("::1"), id="ipv6-loopback"),
            pytest.param("::ffff:10.1.2.3", IPv4Address("10.1.2.3"), id="mapped-dotted"),
            pytest.param("::ffff:a01:203", IPv4Address("10.1.2.3"), id="mapped-hex"),
            pytest.param("::FFFF:10.1.2.3", IPv4Address("10.1.2.3"), id="mapped-upper-case"),
            pytest.param("fe80::1%eth0", IPv6Address("fe80::1"), id="zone-dropped"),
            pytest.param("::ffff:10.1.2.3%eth0", IPv4Address("10.1.2.3"), id="mapped-with-zone"),
        ],
    )
    def test_valid(self, text: str, expected: IPAddress) -> None:
        """Client addresses parse to one spelling: mapped → IPv4, zone ids dropped."""
        ip = parse_client_ip(text)
        assert ip == expected
        assert type(ip) is type(expected)
        if isinstance(ip, IPv6Address):
            assert ip.scope_id is None

    @pytest.mark.parametrize(
        "text",
        [
            pytest.param("", id="empty"),
            pytest.param("garbage", id="garbage"),
            pytest.param("010.0.0.1", id="leading-zeros"),
            pytest.param("10.0.0.01", id="leading-zeros-last-octet"),
            pytest.param("::ffff:010.1.2.3", id="leading-zeros-in-mapped"),
            pytest.param("256.1.1.1", id="octet-out-of-range"),
            pytest.param("10.1.2", id="three-octets"),
            pytest.param("167772161", id="integer"),
            pytest.param("10.1.2.3%eth0", id="ipv4-with-zone"),
            pytest.param("fe80::1%", id="empty-zone"),
            pytest.param("10.0.0.0/8", id="cidr"),
            pytest.param(" 10.1.2.3", id="leading-space"),
            pytest.param("10.1.2.3, 10.4.5.6", id="list"),
            pytest.param("10.1.2.3:8080", id="with-port"),
            pytest.param("[::1]", id="bracketed"),
            pytest.param("unix:", id="nginx-unix-peer"),
            pytest.param("\u0661\u0660.1.2.3", id="non-ascii-digits"),
            pytest.param("1:" * 200, id="too-long"),
        ],
    )
    def test_invalid(self, text: str) -> None:
        """Anything but a single IPv4 or IPv6 address raises ValueError."""
        with pytest.raises(ValueError, match=r"."):
            parse_client_ip(text)


class TestCompile:
    def test_rules_as_written(self) -> None:
        """Rules keep their text; comments, blank lines and surrounding blanks go."""
        text = (
            "# office networks\n"
            "\n"
            "  allow 10.0.0.0/8   # the LAN\n"
            "allow 2001:DB8::/32\n"
            "\t\n"
            "deny   all\n"
        )
        ip_filter = compile_ip_filter("office", text)
        assert ip_filter.name == "office"
        assert ip_filter.rules == ("allow 10.0.0.0/8", "allow 2001:DB8::/32", "deny   all")

    def test_comment_without_space(self) -> None:
        """A '#' directly after the target starts a comment."""
        ip_filter = compile_ip_filter("f", "allow 10.0.0.1#vpn gateway")
        assert ip_filter.rules == ("allow 10.0.0.1",)
        assert ip_filter.allows(IPv4Address("10.0.0.1"))

    def test_windows_line_endings(self) -> None:
        """CRLF line endings are accepted."""
        ip_filter = compile_ip_filter("f", "deny 10.0.0.1\r\nallow all\r\n")
        assert ip_filter.rules == ("deny 10.0.0.1", "allow all")
        assert not ip_filter.allows(IPv4Address("10.0.0.1"))


class TestCompileErrors:
    @pytest.mark.parametrize(
        ("text", "line", "fragment"),
        [
            pytest.param("allow 10.0.0.1/8", 1, "host bits", id="host-bits-ipv4"),
            pytest.param("allow 2001:db8::1/32", 1, "host bits", id="host-bits-ipv6"),
            pytest.param("allow 010.0.0.1", 1, "Leading zeros", id="leading-zeros"),
            pytest.param("allow 010.0.0.0/8", 1, "Leading zeros", id="leading-zeros-cidr"),
            pytest.param("allow ::ffff:010.0.0.1", 1, "Leading zeros", id="leading-zeros-v6"),
            pytest.param("allow 10.0.0.0/08", 1, "leading zeros", id="leading-zero-prefix"),
            pytest.param("allow fe80::1%eth0", 1, "zone", id="zone-id"),
            pytest.param("allow fe80::%eth0/64", 1, "zone", id="zone-id-cidr"),
            pytest.param("allow 10.0.0.0/33", 1, "out of range", id="prefix-33"),
            pytest.param("allow 2001:db8::/129", 1, "out of range", id="prefix-129"),
            pytest.param("allow 10.0.0.0/-1", 1, "decimal number", id="prefix-negative"),
            pytest.param("allow 10.0.0.0/+8", 1, "decimal number", id="prefix-plus"),
            pytest.param("allow 10.0.0.0/", 1, "decimal number", id="prefix-empty"),
            pytest.param("allow 10.0.0.0/255.0.0.0", 1, "decimal number", id="netmask"),
            pytest.param("allow 10.0.0.0/8/8", 1, "more than one", id="two-slashes"),
            pytest.param("allow 10.0.0", 1, "not an IP address", id="short-address"),
            pytest.param("allow office", 1, "not an IP address", id="word"),
            pytest.param("allow ALL", 1, "not an IP address", id="upper-case-all"),
            pytest.param("permit 10.0.0.1", 1, "unknown verb", id="unknown-verb"),
            pytest.param("Allow 10.0.0.1", 1, "unknown verb", id="upper-case-verb"),
            pytest.param("allow", 1, "expected", id="missing-target"),
            pytest.param("allow 10.0.0.1 10.0.0.2", 1, "expected", id="two-targets"),
            pytest.param("deny all please", 1, "expected", id="extra-word"),
            pytest.param("allow ::ffff:10.0.0.1", 1, "10.0.0.1", id="mapped-address"),
            pytest.param("allow ::ffff:10.0.0.0/104", 1, "10.0.0.0/8", id="mapped-cidr"),
            pytest.param("allow ::ffff:0:0/96", 1, "0.0.0.0/0", id="mapped-range"),
            pytest.param("", 1, "no rules", id="empty"),
            pytest.param("# nothing yet\n\n", 1, "no rules", id="comments-only"),
            pytest.param(
                "# office\n\nallow 10.0.0.0/8\ndeny 10.0.0.1/8\n", 4, "10.0.0.0/8", id="line-4"
            ),
        ],
    )
    def test_rejected(self, text: str, line: int, fragment: str) -> None:
        """Bad rules are configuration errors that name the line and the problem."""
        with pytest.raises(IpFilterError) as caught:
            compile_ip_filter("office", text)
        assert caught.value.line == line
        assert fragment in caught.value.reason
        assert str(caught.value) == f"line {line}: {caught.value.reason}"

    def test_error_is_value_error(self) -> None:
        """IpFilterError can be handled as a ValueError by callers."""
        with pytest.raises(ValueError, match=r"^line 2: host bits are set"):
            compile_ip_filter("f", "allow all\ndeny 192.168.1.1/24")


class TestMatching:
    @pytest.mark.parametrize(
        ("rules", "client", "allowed"),
        [
            pytest.param("deny 10.1.0.0/16\nallow 10.0.0.0/8", "10.1.2.3", False, id="first-deny"),
            pytest.param("deny 10.1.0.0/16\nallow 10.0.0.0/8", "10.2.3.4", True, id="then-allow"),
            pytest.param("allow 10.0.0.0/8\ndeny 10.1.0.0/16", "10.1.2.3", True, id="first-allow"),
            pytest.param("allow 10.0.0.0/8", "11.0.0.1", False, id="no-match-denied"),
            pytest.param("allow 10.0.0.0/8", "10.255.255.255", True, id="last-in-range"),
            pytest.param("allow 10.0.0.0/8", "9.255.255.255", False, id="just-below-range"),
            pytest.param("allow 10.0.0.1", "10.0.0.1", True, id="single-address"),
            pytest.param("allow 10.0.0.1", "10.0.0.2", False, id="single-address-other"),
            pytest.param("allow all", "203.0.113.9", True, id="allow-all-v4"),
            pytest.param("allow all", "2001:db8::9", True, id="allow-all-v6"),
            pytest.param("deny all\nallow 10.0.0.1", "10.0.0.1", False, id="deny-all-first"),
            pytest.param("allow all\ndeny 10.0.0.1", "10.0.0.1", True, id="rule-after-all"),
            pytest.param("allow 0.0.0.0/0", "198.51.100.1", True, id="ipv4-slash-0"),
            pytest.param("allow 0.0.0.0/0", "2001:db8::1", False, id="ipv4-slash-0-v6-client"),
            pytest.param("allow ::/0", "198.51.100.1", False, id="ipv6-slash-0-v4-client"),
            pytest.param("allow 2001:db8::/32", "2001:db8:ffff::1", True, id="ipv6-cidr"),
            pytest.param("allow 2001:db8::/32", "2001:db9::1", False, id="ipv6-cidr-outside"),
            pytest.param("allow 10.0.0.0/8", "2001:db8::1", False, id="v6-client-v4-rules"),
            pytest.param("deny 10.0.0.0/8", "2001:db8::1", False, id="v6-client-v4-deny"),
            pytest.param("allow 2001:db8::/32", "10.0.0.1", False, id="v4-client-v6-rules"),
            pytest.param(
                "deny 2001:db8::/32\nallow 10.0.0.0/8\ndeny all\n",
                "10.9.9.9",
                True,
                id="mixed-families-order",
            ),
        ],
    )
    def test_first_match_decides(self, rules: str, client: str, allowed: bool) -> None:
        """The first matching rule decides; no match means denied, never an error."""
        ip_filter = compile_ip_filter("f", rules)
        assert ip_filter.allows(parse_client_ip(client)) is allowed

    @pytest.mark.parametrize(
        ("rules", "allowed"),
        [
            pytest.param("allow 10.0.0.0/8", True, id="allow-v4-rule"),
            pytest.param("deny 10.0.0.1\nallow all", False, id="deny-v4-rule"),
            pytest.param("allow ::/0\ndeny all", False, id="not-an-ipv6-client"),
        ],
    )
    def test_mapped_address_matches_as_ipv4(self, rules: str, allowed: bool) -> None:
        """An IPv4-mapped IPv6Address given to allows() is matched as its IPv4 address."""
        ip_filter = compile_ip_filter("f", rules)
        assert ip_filter.allows(IPv6Address("::ffff:10.0.0.1")) is allowed

    def test_zone_id_ignored_when_matching(self) -> None:
        """An IPv6Address that still carries a zone id matches by its address."""
        ip_filter = compile_ip_filter("f", "allow fe80::/10")
        assert ip_filter.allows(IPv6Address("fe80::1%eth0"))


class TestNetworkSet:
    @pytest.fixture
    def proxies(self) -> NetworkSet:
        """The shipped default plus a proxy subnet."""
        return NetworkSet.compile(["127.0.0.1/32", "::1/128", "192.0.2.0/24", "10.0.0.7"])

    @pytest.mark.parametrize(
        ("client", "contained"),
        [
            pytest.param("127.0.0.1", True, id="loopback-v4"),
            pytest.param("127.0.0.2", False, id="other-loopback"),
            pytest.param("::1", True, id="loopback-v6"),
            pytest.param("192.0.2.200", True, id="in-subnet"),
            pytest.param("192.0.3.1", False, id="outside-subnet"),
            pytest.param("10.0.0.7", True, id="bare-address"),
            pytest.param("10.0.0.8", False, id="next-address"),
            pytest.param("2001:db8::1", False, id="other-v6"),
        ],
    )
    def test_contains(self, proxies: NetworkSet, client: str, contained: bool) -> None:
        """Membership is by address or range, per family."""
        assert proxies.contains(parse_client_ip(client)) is contained

    def test_mapped_address(self, proxies: NetworkSet) -> None:
        """An IPv4-mapped IPv6Address counts as its IPv4 address."""
        assert proxies.contains(IPv6Address("::ffff:127.0.0.1"))

    def test_texts_as_written(self, proxies: NetworkSet) -> None:
        """The entries are kept as written, in order."""
        assert proxies.texts == ("127.0.0.1/32", "::1/128", "192.0.2.0/24", "10.0.0.7")

    def test_empty_trusts_nobody(self) -> None:
        """An empty set contains no address."""
        empty = NetworkSet.compile([])
        assert not empty.contains(IPv4Address("127.0.0.1"))
        assert not empty.contains(IPv6Address("::1"))

    @pytest.mark.parametrize(
        ("entry", "fragment"),
        [
            pytest.param("127.0.0.1/8", "host bits", id="host-bits"),
            pytest.param("127.000.0.1", "Leading zeros", id="leading-zeros"),
            pytest.param("fe80::1%lo", "zone", id="zone-id"),
            pytest.param("10.0.0.0/33", "out of range", id="prefix-out-of-range"),
            pytest.param("all", "not an IP address", id="all-keyword"),
            pytest.param("::ffff:127.0.0.1", "127.0.0.1", id="mapped"),
            pytest.param("", "not an IP address", id="empty"),
        ],
    )
    def test_rejected(self, entry: str, fragment: str) -> None:
        """Bad entries raise ValueError naming the entry and the problem."""
        with pytest.raises(ValueError, match=r".") as caught:
            NetworkSet.compile(["::1/128", entry])
        message = str(caught.value)
        assert message.startswith(repr(entry) + ": ")
        assert fragment in message

    def test_bare_string_refused(self) -> None:
        """A single string (not a list) is refused instead of read character by character."""
        with pytest.raises(TypeError, match="sequence of strings"):
            NetworkSet.compile("127.0.0.1/32")
