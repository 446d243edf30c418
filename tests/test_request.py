"""Tests for authsvc.rules.request: method, path and client address rules (SECURITY 1-6, 15-17)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

from authsvc.rules.ipfilter import IPAddress, NetworkSet
from authsvc.rules.request import MAX_TARGET_LENGTH, Described, Rejected, client_ip, describe

LOOPBACK = NetworkSet.compile(["127.0.0.1/32", "::1/128"])


def described(
    method: str = "GET",
    uri: str = "/",
    real_ip: str | None = "203.0.113.5",
    peer: str | None = "127.0.0.1",
) -> Described:
    """describe() with a trusted nginx on loopback, which must succeed."""
    result = describe(method, uri, real_ip, peer, LOOPBACK)
    assert isinstance(result, Described), result
    return result


def rejected(
    method: str | None = "GET",
    uri: str | None = "/",
    real_ip: str | None = "203.0.113.5",
    peer: str | None = "127.0.0.1",
    trusted: NetworkSet = LOOPBACK,
) -> Rejected:
    """describe() that must refuse the request."""
    result = describe(method, uri, real_ip, peer, trusted)
    assert isinstance(result, Rejected), result
    return result


class TestMethod:
    @pytest.mark.parametrize(
        "method",
        [
            pytest.param("GET", id="get"),
            pytest.param("HEAD", id="head"),
            pytest.param("POST", id="post"),
            pytest.param("DELETE", id="delete"),
            pytest.param("PROPFIND", id="webdav"),
            pytest.param("VERSION-CONTROL", id="with-dash"),
            pytest.param("X_CUSTOM2", id="underscore-and-digit"),
            pytest.param("A" * 32, id="32-characters"),
        ],
    )
    def test_accepted(self, method: str) -> None:
        """Upper-case method tokens are kept exactly, HEAD included."""
        assert described(method=method).method == method

    @pytest.mark.parametrize(
        "method",
        [
            pytest.param(None, id="missing"),
            pytest.param("", id="empty"),
            pytest.param("get", id="lower-case"),
            pytest.param("Get", id="mixed-case"),
            pytest.param(" GET", id="leading-space"),
            pytest.param("GET ", id="trailing-space"),
            pytest.param("GET\n", id="trailing-newline"),
            pytest.param("G ET", id="inner-space"),
            pytest.param("GET,POST", id="list"),
            pytest.param("*", id="wildcard"),
            pytest.param("1GET", id="leading-digit"),
            pytest.param("-GET", id="leading-dash"),
            pytest.param("G\u00c9T", id="non-ascii"),
            pytest.param("A" * 33, id="33-characters"),
        ],
    )
    def test_rejected(self, method: str | None) -> None:
        """A missing or odd X-Original-Method is bad_request, never defaulted to GET."""
        assert rejected(method=method).reason == "bad_request"


class TestTarget:
    @pytest.mark.parametrize(
        "uri", [pytest.param(None, id="missing"), pytest.param("", id="empty")]
    )
    def test_missing_uri(self, uri: str | None) -> None:
        """A missing X-Original-URI is bad_request (never the subrequest's own /auth)."""
        assert rejected(uri=uri).reason == "bad_request"

    @pytest.mark.parametrize(
        ("uri", "path", "segments"),
        [
            pytest.param("/", "/", ("",), id="root"),
            pytest.param("/api/v1/x", "/api/v1/x", ("api", "v1", "x"), id="plain"),
            pytest.param("/a/b/", "/a/b/", ("a", "b", ""), id="trailing-slash-kept"),
            pytest.param("/Admin", "/Admin", ("Admin",), id="case-kept"),
            pytest.param("/admin?x=/public", "/admin", ("admin",), id="query-excluded"),
            pytest.param("/admin?x=/../%zz;#", "/admin", ("admin",), id="query-not-checked"),
            pytest.param("/a?", "/a", ("a",), id="empty-query"),
            pytest.param("/api/%761", "/api/v1", ("api", "v1"), id="unreserved-decoded"),
            pytest.param("/a/%7E", "/a/~", ("a", "~"), id="tilde-decoded"),
            pytest.param("/a/%7e", "/a/~", ("a", "~"), id="tilde-lower-hex"),
            pytest.param("/%41%2d%2E%5f", "/A-._", ("A-._",), id="unreserved-mix"),
            pytest.param("/a%20b", "/a%20b", ("a%20b",), id="space-kept-encoded"),
            pytest.param("/a%3fb", "/a%3Fb", ("a%3Fb",), id="hex-upper-cased"),
            pytest.param("/a%25", "/a%25", ("a%25",), id="lone-encoded-percent-kept"),
            pytest.param("/a%25zz", "/a%25zz", ("a%25zz",), id="encoded-percent-not-an-escape"),
            pytest.param("/%e2%82%ac", "/%E2%82%AC", ("%E2%82%AC",), id="utf8-kept-encoded"),
            pytest.param("/a/.../b", "/a/.../b", ("a", "...", "b"), id="three-dots"),
            pytest.param("/.well-known/x", "/.well-known/x", (".well-known", "x"), id="dot-start"),
            pytest.param("/a..", "/a..", ("a..",), id="dots-in-segment"),
            pytest.param("/a/%2e%2ex", "/a/..x", ("a", "..x"), id="encoded-dots-in-segment"),
            pytest.param("/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,=", ("a:b@c!$&'()*+,=",), id="pchar"),
            pytest.param("/a/{id}", "/a/{id}", ("a", "{id}"), id="visible-ascii"),
        ],
    )
    def test_canonical_path(self, uri: str, path: str, segments: tuple[str, ...]) -> None:
        """The path is the target before '?', with unreserved escapes decoded."""
        result = described(uri=uri)
        assert result.path == path
        assert result.segments == segments

    @pytest.mark.parametrize(
        ("plain", "encoded"),
        [
            pytest.param("/api/v1/queries/running", "/api/v1/queries/runnin%67", id="last-char"),
            pytest.param("/a/b/", "/%61/b/", id="trailing-slash"),
            pytest.param("/x.y~z-_", "/x%2Ey%7Ez%2D%5F", id="punctuation"),
            pytest.param("/api/v1?q=1", "/api/%76%31?q=1", id="with-query"),
        ],
    )
    def test_encoding_unreserved_changes_nothing(self, plain: str, encoded: str) -> None:
        """Escaping unreserved characters yields the very same description."""
        assert described(uri=encoded) == described(uri=plain)

    def test_length_limit(self) -> None:
        """A target of 8 KiB is described; one character more is bad_path."""
        longest = "/" + "a" * (MAX_TARGET_LENGTH - 1)
        assert described(uri=longest).path == longest
        assert rejected(uri=longest + "a").reason == "bad_path"
        assert rejected(uri="/%61" + "a" * MAX_TARGET_LENGTH).reason == "bad_path"


class TestBadPath:
    @pytest.mark.parametrize(
        "uri",
        [
            # SECURITY 1: dot segments, raw and encoded, any case and mix.
            pytest.param("/a/../b", id="dotdot"),
            pytest.param("/a/./b", id="dot"),
            pytest.param("/..", id="dotdot-only"),
            pytest.param("/.", id="dot-only"),
            pytest.param("/a/..", id="dotdot-last"),
            pytest.param("/a/../", id="dotdot-trailing-slash"),
            pytest.param("/a/..?x=1", id="dotdot-before-query"),
            pytest.param("/a/%2e%2e/b", id="encoded-dotdot"),
            pytest.param("/a/%2E%2E/b", id="encoded-dotdot-upper"),
            pytest.param("/a/%2e%2E/b", id="encoded-dotdot-mixed-case"),
            pytest.param("/a/.%2e/b", id="half-encoded-dotdot"),
            pytest.param("/a/%2e./b", id="half-encoded-dotdot-2"),
            pytest.param("/a/%2e/b", id="encoded-dot"),
            # SECURITY 1: encoded separators, backslash, NUL, parameters.
            pytest.param("/a%2Fb", id="encoded-slash"),
            pytest.param("/a%2fb", id="encoded-slash-lower"),
            pytest.param("/a\\b", id="backslash"),
            pytest.param("/a%5Cb", id="encoded-backslash"),
            pytest.param("/a%5cb", id="encoded-backslash-lower"),
            pytest.param("/a%00", id="encoded-nul"),
            pytest.param("/a\x00", id="raw-nul"),
            pytest.param("/a;param", id="semicolon"),
            pytest.param("/a/b;jsessionid=1/c", id="semicolon-mid"),
            pytest.param("/a%3Bparam", id="encoded-semicolon"),
            pytest.param("/a%3bparam", id="encoded-semicolon-lower"),
            pytest.param("//b", id="leading-double-slash"),
            pytest.param("/a//b", id="empty-segment"),
            pytest.param("/a/b//", id="double-trailing-slash"),
            pytest.param("//", id="double-slash-only"),
            # SECURITY 30: double encoding, which an upstream decoding twice would resolve.
            pytest.param("/a%2561", id="double-encoded-letter"),
            pytest.param("/q/..%252F..%252Fusers", id="double-encoded-slash-traversal"),
            pytest.param("/a%252f", id="double-encoded-slash-lower"),
            pytest.param("/a%252e%252e", id="double-encoded-dots"),
            pytest.param("/a%25%32%46", id="double-encoding-hidden-in-unreserved-escapes"),
            pytest.param("/a%25%32f", id="double-encoding-half-hidden"),
            pytest.param("/a%2500", id="double-encoded-nul"),
            # SECURITY 2: a fragment taking part in matching.
            pytest.param("/admin#/x", id="fragment"),
            pytest.param("/a%23x", id="encoded-hash"),
            # Not an origin-form path.
            pytest.param("admin", id="relative"),
            pytest.param("?x=1", id="query-only"),
            pytest.param("http://evil.example/admin", id="absolute-form"),
            pytest.param("*", id="asterisk-form"),
            # Control characters, raw and encoded.
            pytest.param("/a\tb", id="raw-tab"),
            pytest.param("/a%09b", id="encoded-tab"),
            pytest.param("/a%0d%0aX-Injected:%201", id="encoded-crlf"),
            pytest.param("/a\x7f", id="raw-del"),
            pytest.param("/a%7F", id="encoded-del"),
            pytest.param("/a%c2%85", id="encoded-c1-control"),
            # Malformed escapes and bad UTF-8.
            pytest.param("/a%", id="lone-percent"),
            pytest.param("/a%4", id="one-hex-digit"),
            pytest.param("/a%zz", id="non-hex"),
            pytest.param("/a%%41", id="double-percent"),
            pytest.param("/a%FF", id="invalid-utf8"),
            pytest.param("/a%C0%AE", id="overlong-utf8-dot"),
            pytest.param("/a%ED%A0%80", id="utf8-surrogate"),
            pytest.param("/a%E2%82", id="truncated-utf8"),
            # Raw bytes nginx never sends in $request_uri.
            pytest.param("/a b", id="raw-space"),
            pytest.param("/caf\u00e9", id="raw-non-ascii"),
            pytest.param("/a?x=\x00", id="control-in-query"),
            pytest.param("/a?x= y", id="space-in-query"),
        ],
    )
    def test_denied_not_normalised(self, uri: str) -> None:
        """Paths that the upstream could read differently are refused as bad_path."""
        assert rejected(uri=uri).reason == "bad_path"

    def test_detail_does_not_echo_input(self) -> None:
        """The detail is a short sentence that does not repeat the attacker's input."""
        detail = rejected(uri="/" + "attacker" * 100 + "/../x").detail
        assert len(detail) <= 100
        assert "attacker" not in detail


class TestClientIp:
    @pytest.mark.parametrize(
        ("real_ip", "peer", "client"),
        [
            pytest.param("203.0.113.5", "127.0.0.1", IPv4Address("203.0.113.5"), id="trusted-v4"),
            pytest.param("2001:db8::5", "::1", IPv6Address("2001:db8::5"), id="trusted-v6"),
            pytest.param(
                "203.0.113.5", "::ffff:127.0.0.1", IPv4Address("203.0.113.5"), id="mapped-peer"
            ),
            pytest.param(None, "127.0.0.1", IPv4Address("127.0.0.1"), id="trusted-no-header"),
            pytest.param("203.0.113.5", None, IPv4Address("203.0.113.5"), id="unix-peer"),
            pytest.param(
                "203.0.113.5", "198.51.100.7", IPv4Address("198.51.100.7"), id="untrusted-ignored"
            ),
            pytest.param(
                "garbage", "198.51.100.7", IPv4Address("198.51.100.7"), id="untrusted-garbage"
            ),
            pytest.param(
                "127.0.0.1", "2001:db8::7", IPv6Address("2001:db8::7"), id="untrusted-v6-peer"
            ),
            pytest.param(
                "::ffff:10.1.2.3", "127.0.0.1", IPv4Address("10.1.2.3"), id="mapped-client"
            ),
            pytest.param(
                "fe80::1%eth0", "127.0.0.1", IPv6Address("fe80::1"), id="zone-dropped-header"
            ),
            pytest.param(
                None, "::ffff:198.51.100.7", IPv4Address("198.51.100.7"), id="mapped-untrusted"
            ),
        ],
    )
    def test_client_address(self, real_ip: str | None, peer: str | None, client: IPAddress) -> None:
        """X-Real-IP is believed only from trusted or unix peers; else the peer is the client."""
        result = described(real_ip=real_ip, peer=peer)
        assert result.client_ip == client
        assert type(result.client_ip) is type(client)

    def test_nobody_trusted(self) -> None:
        """With no trusted proxies, loopback's X-Real-IP is ignored too."""
        result = describe("GET", "/", "203.0.113.5", "127.0.0.1", NetworkSet.compile([]))
        assert isinstance(result, Described)
        assert result.client_ip == IPv4Address("127.0.0.1")

    @pytest.mark.parametrize(
        ("real_ip", "peer"),
        [
            pytest.param("", "127.0.0.1", id="empty-header"),
            pytest.param("garbage", "127.0.0.1", id="garbage-header"),
            pytest.param("203.0.113.5, 10.0.0.1", "127.0.0.1", id="list-header"),
            pytest.param("010.0.0.1", "127.0.0.1", id="leading-zeros-header"),
            pytest.param("203.0.113.5:443", "127.0.0.1", id="port-header"),
            pytest.param("unix:", "127.0.0.1", id="nginx-unix-client"),
            pytest.param("garbage", None, id="garbage-from-unix-peer"),
            pytest.param(None, None, id="unix-peer-without-header"),
            pytest.param("203.0.113.5", "not-an-address", id="garbage-peer"),
            pytest.param("203.0.113.5", "", id="empty-peer"),
        ],
    )
    def test_rejected(self, real_ip: str | None, peer: str | None) -> None:
        """An unusable client address from a trusted source is bad_request, not a guess."""
        assert rejected(real_ip=real_ip, peer=peer).reason == "bad_request"

    def test_client_ip_alone(self) -> None:
        """client_ip() applies the same trust rules without a method or path."""
        assert client_ip("203.0.113.5", "127.0.0.1", LOOPBACK) == IPv4Address("203.0.113.5")
        assert client_ip("203.0.113.5", "198.51.100.7", LOOPBACK) == IPv4Address("198.51.100.7")
        refused = client_ip(None, None, LOOPBACK)
        assert isinstance(refused, Rejected)
        assert refused.reason == "bad_request"
