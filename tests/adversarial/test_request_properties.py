"""Property tests of authsvc.rules.request.describe() against a reference model of what an
upstream could read differently (SPEC §3; SECURITY 30).

Run longer: ``AUTHSVC_HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest -q
tests/adversarial/test_request_properties.py --hypothesis-show-statistics``.
"""

from __future__ import annotations

import ipaddress
import string

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from authsvc.rules.ipfilter import IPAddress, NetworkSet
from authsvc.rules.request import Described, Rejected, describe
from tests.adversarial.invariants import PATH_SAFE, UNRESERVED, check_described, reference_path

LOOPBACK = NetworkSet.compile(["127.0.0.1/32", "::1/128"])
NGINX = "127.0.0.1"
CLIENT = "203.0.113.5"

# The characters and escapes where readings of a path part ways.
_PIECES = [
    *"/.%25eEfF;#\\?~a",
    *("%2e", "%2E", "%2f", "%2F", "%25", "%5c", "%5C", "%23", "%3b", "%3B", "%3f", "%3F"),
    *("%00", "%0a", "%0D", "%09", "%7f", "%7F", "%20", "%41", "%7e", "%7E", "%2d", "%5f"),
    *("%c2%85", "%C2%A0", "%c0%af", "%C0%AE", "%e2%80%a8", "%ef%bc%8f", "%ff", "%80"),
    *("..", "./", "../", "//", "%252e", "%252f", "%25%32%46", "%25%32%65", "%%", "%2", "%g0"),
]
_hex = st.sampled_from(string.hexdigits)
_escape = st.builds(lambda a, b: f"%{a}{b}", _hex, _hex)
_piece = st.one_of(
    st.sampled_from(_PIECES), _escape, st.characters(min_codepoint=0x21, max_codepoint=0x7E)
)
_path = st.lists(_piece, max_size=24).map("".join)
# The hostile pieces alone, each likely enough to be tried in every position.
_HOSTILE = [
    *";#\\?%./",
    *("%2e", "%2F", "%5c", "%23", "%3B", "%25", "%00", "%1f", "%7F", "%c2%85", "%c0%af"),
    *("..", "//", "%252e", "%252F", "%25%32%46", "%2", "%ff", "/.", "/.."),
]
_spike = st.one_of(st.sampled_from(_HOSTILE), _escape)
# Pieces of paths that are mostly acceptable, so that accepted targets are common too.
_FRIENDLY = [
    *"aZ0-._~!$&'()*+,=:@",
    *("%41", "%7e", "%7E", "%2d", "%2e", "%20", "%22", "%3c", "%3C", "%3f", "%5B", "%25"),
    *("%c3%a9", "%C3%A9", "%e2%82%ac", "%F0%9F%98%80"),
]
_friendly_segment = st.lists(st.sampled_from(_FRIENDLY), min_size=1, max_size=6).map("".join)
FRIENDLY = st.builds(
    lambda segments, slash: "/" + "/".join(segments) + slash,
    st.lists(_friendly_segment, max_size=6),
    st.sampled_from(["", "/", "?", "?a=%2F..//"]),
)


@st.composite
def spiked(draw: st.DrawFn) -> str:
    """A mostly acceptable target with one to three hostile pieces put in anywhere, so
    that each hostile piece is often the only thing wrong."""
    target: str = draw(FRIENDLY)
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):
        at = draw(st.integers(0, len(target)))
        target = target[:at] + draw(_spike) + target[at:]
    return target


#: Request targets: mostly paths, some with a query, a few not starting with '/'.
TARGETS = st.one_of(
    FRIENDLY,
    spiked(),
    spiked(),
    spiked(),
    _path.map(lambda p: "/" + p),
    st.builds(lambda p, q: f"/{p}?{q}", _path, _path),
    _path,
    st.text(max_size=40),
)

_CLEAN_CHARS = "".join(sorted(UNRESERVED | PATH_SAFE))
_clean_segment = st.text(alphabet=_CLEAN_CHARS, min_size=1, max_size=12).filter(
    lambda s: s not in (".", "..")
)
CLEAN_PATHS = st.builds(
    lambda segments, slash: "/" + "/".join(segments) + ("/" if slash and segments else ""),
    st.lists(_clean_segment, max_size=8),
    st.booleans(),
)
QUERIES = st.one_of(
    st.just(""), st.text(alphabet=string.printable[:94], max_size=30).map("?".__add__)
)


def _describe(target: str) -> Described | Rejected:
    return describe("GET", target, CLIENT, NGINX, LOOPBACK)


def _agrees_with_reference(target: str) -> None:
    result = _describe(target)
    expected = reference_path(target)
    if expected is None:
        assert isinstance(result, Rejected), (target, result)
        # An empty X-Original-URI is a missing one.
        assert result.reason == ("bad_path" if target else "bad_request"), (target, result)
    else:
        assert isinstance(result, Described), (target, result)
        assert (result.path, result.segments) == expected, (target, result)


class TestPath:
    @given(TARGETS)
    @example("/%25%32%46")
    @example("/a/%2e%2E/b")
    @example("/%C0%AE%C0%AE/")
    def test_accepted_targets_read_the_same_upstream(self, target: str) -> None:
        """An accepted target decodes, once or twice, to no dot or empty segment, no '\\',
        ';', '#' or control character, and to the describer's canonical segments."""
        result = _describe(target)
        if isinstance(result, Described):
            check_described(target, result)

    @given(TARGETS)
    def test_agrees_with_the_reference_model(self, target: str) -> None:
        """describe() accepts exactly what the reference model accepts, with the same
        canonical path (unreserved escapes decoded, other escapes upper-case)."""
        _agrees_with_reference(target)

    @pytest.mark.parametrize("spike", [pytest.param(p, id=repr(p)) for p in _HOSTILE])
    @settings(max_examples=max(20, settings().max_examples // 6))
    @given(FRIENDLY, st.integers(min_value=0))
    def test_each_hostile_piece_anywhere(self, spike: str, target: str, position: int) -> None:
        """Each hostile piece, put anywhere into a target, leaves describe() agreeing with
        the reference model and any accepted target reading the same upstream."""
        at = position % (len(target) + 1)
        spiked_target = target[:at] + spike + target[at:]
        _agrees_with_reference(spiked_target)
        result = _describe(spiked_target)
        if isinstance(result, Described):
            check_described(spiked_target, result)

    @given(CLEAN_PATHS, QUERIES)
    def test_clean_paths_are_accepted_unchanged(self, path: str, query: str) -> None:
        """A clean path (unreserved and sub-delimiters, no escapes, no dot or empty
        segments) is accepted exactly as written, whatever its query."""
        result = _describe(path + query)
        assert isinstance(result, Described), (path + query, result)
        assert result.path == path
        assert result.segments == tuple(path[1:].split("/"))

    @given(FRIENDLY)
    def test_canonical_path_is_a_fixed_point(self, target: str) -> None:
        """Describing an accepted request's canonical path again changes nothing."""
        result = _describe(target)
        if not isinstance(result, Described):
            return
        again = _describe(result.path)
        assert isinstance(again, Described), (target, again)
        assert (again.path, again.segments) == (result.path, result.segments)


def _reference_method(method: str) -> bool:
    upper = string.ascii_uppercase
    return (
        0 < len(method) <= 32
        and method[0] in upper
        and all(c in upper + string.digits + "_-" for c in method)
    )


class TestMethodAndHeaders:
    @given(st.one_of(st.text(max_size=40), st.text(alphabet="GETHADPOS-_1 a\x00", max_size=40)))
    def test_method_is_an_upper_case_token(self, method: str) -> None:
        """A method is accepted, unchanged, exactly when it is an upper-case token of at
        most 32 characters; anything else is bad_request."""
        result = describe(method, "/a", CLIENT, NGINX, LOOPBACK)
        if _reference_method(method):
            assert isinstance(result, Described), (method, result)
            assert result.method == method
        else:
            assert isinstance(result, Rejected), (method, result)
            assert result.reason == "bad_request"

    @given(
        st.sampled_from([None, ""]),
        st.one_of(st.none(), TARGETS),
        st.sampled_from([None, "", "GET"]),
        st.booleans(),
    )
    def test_a_missing_header_is_bad_request(
        self, missing: str | None, uri: str | None, method: str | None, method_missing: bool
    ) -> None:
        """Without X-Original-Method or X-Original-URI the answer is bad_request, never a
        description built from something else."""
        if method_missing:
            result = describe(missing, uri, CLIENT, NGINX, LOOPBACK)
        else:
            result = describe(method or "GET", missing, CLIENT, NGINX, LOOPBACK)
        assert isinstance(result, Rejected)
        assert result.reason == "bad_request"


def _v4(value: int) -> str:
    return str(ipaddress.IPv4Address(value))


_v4_text = st.integers(0, 2**32 - 1).map(_v4)
_v6_text = st.integers(0, 2**128 - 1).map(lambda v: str(ipaddress.IPv6Address(v)))
_mapped_text = st.integers(0, 2**32 - 1).map(lambda v: f"::ffff:{_v4(v)}")
ADDRESSES = st.one_of(_v4_text, _v6_text, _mapped_text, st.sampled_from(["127.0.0.1", "::1"]))
GARBAGE = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["010.0.0.1", "1.2.3", "::ffff:1.2.3.4.5", "fe80::1%", "a" * 101, "1.2.3.4 "]),
)
_networks = st.one_of(
    st.builds(
        lambda a, p: str(ipaddress.ip_network((a, p), strict=False)), _v4_text, st.integers(0, 32)
    ),
    st.builds(
        lambda a, p: str(ipaddress.ip_network((a, p), strict=False)), _v6_text, st.integers(0, 128)
    ),
    st.sampled_from(["127.0.0.1/32", "::1/128", "10.0.0.0/8"]),
).filter(lambda n: not _is_mapped_network(n))


def _is_mapped_network(text: str) -> bool:
    network = ipaddress.ip_network(text)
    return (
        network.version == 6
        and network.prefixlen >= 96
        and network.network_address.ipv4_mapped is not None
    )


def _as_client(text: str) -> IPAddress:
    """What the client address must be: mapped IPv6 as IPv4, no zone id."""
    address = ipaddress.ip_address(text)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        return ipaddress.IPv6Address(int(address))
    return address


def _trusts(networks: list[str], peer: str) -> bool:
    address = _as_client(peer)
    return any(address in ipaddress.ip_network(n) for n in networks)


class TestClientAddress:
    @given(
        st.lists(_networks, max_size=4),
        st.one_of(st.none(), ADDRESSES),
        st.one_of(st.none(), ADDRESSES, GARBAGE),
    )
    def test_x_real_ip_is_believed_only_from_a_trusted_peer(
        self, networks: list[str], peer: str | None, real_ip: str | None
    ) -> None:
        """X-Real-IP is the client from a trusted TCP peer or a unix socket (where it is
        required), and ignored, even when garbage, from any other peer; mapped IPv6
        addresses count as IPv4."""
        trusted = NetworkSet.compile(networks)
        result = describe("GET", "/a", real_ip, peer, trusted)
        if peer is not None and not _trusts(networks, peer):
            expected: IPAddress | None = _as_client(peer)
        elif real_ip is None:
            expected = None if peer is None else _as_client(peer)
        else:
            try:
                expected = _as_client(real_ip) if len(real_ip) <= 100 else None
            except ValueError:
                expected = None
        if expected is None:
            assert isinstance(result, Rejected), (networks, peer, real_ip, result)
            assert result.reason == "bad_request"
        else:
            assert isinstance(result, Described), (networks, peer, real_ip, result)
            assert result.client_ip == expected
