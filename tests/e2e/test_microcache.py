"""The optional nginx micro-cache (deploy/nginx/microcache/) with a real nginx and authsvc.

nginx runs the shipped example site with ``authsvc-auth-microcache.conf`` included instead
of ``authsvc-auth.conf``, and the zone of ``authsvc-microcache-zone.conf`` in a private
directory instead of /run; nothing else is substituted (as in conftest.py, every pattern
must match). Whether nginx reused an answer or authsvc decided afresh is read from
authsvc's ``authsvc_decisions_total`` on /metrics: the tests run one at a time, so the
counter moves only with their own requests.
"""

from __future__ import annotations

import contextlib
import http.client
import math
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from authsvc.rules.tokens import new_secret
from tests.e2e.conftest import NGINX_DIR, NginxProxy, Response, running_stack
from tests.e2e.upstream import EchoUpstream
from tests.processes import AuthsvcServer, IssuedToken

pytestmark = pytest.mark.e2e

MICROCACHE_DIR = NGINX_DIR / "microcache"
ZONE_SNIPPET = "microcache/authsvc-microcache-zone.conf"
AUTH_SNIPPET = MICROCACHE_DIR / "authsvc-auth-microcache.conf"
ITEMS = "/api/v1/items"
OTHER_CLIENT = "127.0.0.2"  # a second loopback address, so nginx sees another $remote_addr
# nginx keeps an answer with X-Accel-Expires: 1 until the end of the next whole second of
# its clock: less than 2 s after storing it.
REUSE_LIMIT = 2.0
CACHE_TTL = 1.0  # cache.ttl of the e2e configuration: authsvc's own propagation bound
SLACK = 2.0  # for slow machines; the bound itself is CACHE_TTL + REUSE_LIMIT


class MicrocacheProxy(NginxProxy):
    """nginx running the shipped files, with the micro-cache variant of the auth location."""

    @property
    def cache_dir(self) -> Path:
        """Where the rendered zone keeps its files (the tmpfs /run/... in production)."""
        return self.prefix / "cache"

    def write_config(self) -> Path:
        """The base configuration, with the site re-rendered around the micro-cache snippet
        and the zone declared at http level."""
        conf = super().write_config()
        (self.prefix / "microcache").mkdir(exist_ok=True)
        zone = self._render(
            ZONE_SNIPPET,
            [(r"proxy_cache_path /run/authsvc-microcache ", f"proxy_cache_path {self.cache_dir} ")],
        )
        self._render(
            "example-site.conf",
            [
                (r"listen 8080;", f"listen 127.0.0.1:{self.port};"),
                (r"server 127\.0\.0\.1:8000;", f"server 127.0.0.1:{self._upstream_port};"),
                (r"include /etc/nginx/snippets/authsvc-auth\.conf;", f"include {AUTH_SNIPPET};"),
                (r"include /etc/nginx/snippets/", f"include {NGINX_DIR}/"),
            ],
        )
        text, count = re.subn(r"\nhttp \{\n", f"\nhttp {{\n    include {zone};\n", conf.read_text())
        assert count == 1, "conftest.NginxProxy no longer writes an http block"
        conf.write_text(text)
        return conf

    def request_from(
        self, source: str, method: str, target: str, headers: Sequence[tuple[str, str]] = ()
    ) -> Response:
        """Like :meth:`request`, from the loopback address ``source`` (nginx's $remote_addr)."""
        self._source = source
        try:
            return self.request(method, target, headers)
        finally:
            self._source = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class McStack:
    """authsvc, nginx with the micro-cache in front of it, and the upstream it protects."""

    authsvc: AuthsvcServer
    nginx: MicrocacheProxy
    upstream: EchoUpstream

    def decisions(self, reason: str = "ok") -> int:
        """authsvc's ``authsvc_decisions_total`` for ``reason`` so far."""
        connection = http.client.HTTPConnection("127.0.0.1", self.authsvc.admin_port, timeout=10)
        try:
            connection.request("GET", "/metrics")
            text = connection.getresponse().read().decode()
        finally:
            connection.close()
        match = re.search(rf'^authsvc_decisions_total{{reason="{reason}"}} (\S+)$', text, re.M)
        assert match is not None, f"no decision counter for {reason!r} in /metrics"
        return int(float(match.group(1)))


@contextlib.contextmanager
def microcache_stack(nginx_binary: str, workdir: Path) -> Iterator[McStack]:
    """Start authsvc, the upstream and the micro-cache nginx; stop them all afterwards."""
    with running_stack(nginx_binary, workdir, MicrocacheProxy) as stack:
        assert isinstance(stack.nginx, MicrocacheProxy)
        yield McStack(authsvc=stack.authsvc, nginx=stack.nginx, upstream=stack.upstream)


@pytest.fixture(scope="module")
def shared_stack(nginx_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[McStack]:
    """One micro-cache stack for the module's tests that break nothing."""
    with microcache_stack(nginx_binary, tmp_path_factory.mktemp("microcache")) as stack:
        yield stack


@pytest.fixture
def mc(shared_stack: McStack) -> McStack:
    """The shared stack, its upstream log emptied for this test."""
    shared_stack.upstream.clear()
    return shared_stack


def _wait_past_reuse(answered_at: float) -> None:
    # An answer that reached the client at `answered_at` was stored by nginx in that whole
    # second or an earlier one, so it is stale once the second after next begins.
    time.sleep(max(0.0, math.floor(answered_at) + REUSE_LIMIT + 0.05 - time.time()))


def _get(mc: McStack, token: IssuedToken, target: str = ITEMS) -> Response:
    return mc.nginx.request("GET", target, [("Authorization", token.bearer)])


class TestAllowsAreReused:
    """Identical allowed requests share one decision for a moment; both reach the upstream."""

    def test_identical_requests_share_one_decision(self, mc: McStack) -> None:
        """Two identical allowed requests in quick succession cost authsvc one decision."""
        token = mc.authsvc.create_token("Reader")
        before = mc.decisions()
        statuses = [_get(mc, token).status, _get(mc, token).status]
        assert statuses == [200, 200]
        assert mc.decisions() - before == 1
        assert len(mc.upstream.requests) == 2
        for received in mc.upstream.requests:
            assert received.header_values("X-Auth-Token-Id") == [token.id]
            assert received.header_values("X-Auth-Token-Name") == [token.name]
            assert received.header_values("Authorization") == []

    def test_new_decision_once_the_answer_is_stale(self, mc: McStack) -> None:
        """After the reuse window (under 2 s) the same request is decided again."""
        token = mc.authsvc.create_token("Reader")
        before = mc.decisions()
        assert _get(mc, token).status == 200
        _wait_past_reuse(time.time())
        assert _get(mc, token).status == 200
        assert mc.decisions() - before == 2


class TestKeyedPerRequest:
    """An answer is reused only for the same token, method, target and client address."""

    @pytest.mark.parametrize(
        ("source", "method", "target", "other_token"),
        [
            pytest.param("127.0.0.1", "GET", f"{ITEMS}/1", False, id="other-path"),
            pytest.param("127.0.0.1", "HEAD", ITEMS, False, id="other-method"),
            pytest.param("127.0.0.1", "GET", f"{ITEMS}?page=2", False, id="other-query"),
            pytest.param(OTHER_CLIENT, "GET", ITEMS, False, id="other-client"),
            pytest.param("127.0.0.1", "GET", ITEMS, True, id="other-token"),
        ],
    )
    def test_other_request_shape_gets_its_own_decision(
        self, mc: McStack, source: str, method: str, target: str, other_token: bool
    ) -> None:
        """A request that differs in one part of the key is decided by authsvc again."""
        first = mc.authsvc.create_token("Reader")
        second = mc.authsvc.create_token("Reader") if other_token else first
        before = mc.decisions()
        assert _get(mc, first).status == 200
        headers = [("Authorization", second.bearer)]
        assert mc.nginx.request_from(source, method, target, headers).status == 200
        assert mc.decisions() - before == 2
        identities = [r.header_values("X-Auth-Token-Id") for r in mc.upstream.requests]
        assert identities == [[first.id], [second.id]]

    @pytest.mark.parametrize(
        ("method", "target"),
        [
            pytest.param("POST", ITEMS, id="method-not-granted"),
            pytest.param("GET", f"{ITEMS}/1/2", id="path-not-granted"),
            pytest.param("GET", f"{ITEMS}?q=\xe9", id="query-refused"),
            # nginx's $uri would be /api/v1/items/1, which the token may GET.
            pytest.param("GET", f"{ITEMS}/x/../1", id="dot-segment"),
        ],
    )
    def test_cached_allow_is_not_given_to_a_refused_request(
        self, mc: McStack, method: str, target: str
    ) -> None:
        """Right after an allow, the same token on a request it may not make gets authsvc's 403."""
        token = mc.authsvc.create_token("Reader")
        assert _get(mc, token).status == 200
        response = mc.nginx.request(method, target, [("Authorization", token.bearer)])
        assert response.status == 403
        assert [r.target for r in mc.upstream.requests] == [ITEMS]

    def test_ip_filter_is_decided_per_client_address(self, mc: McStack) -> None:
        """A loopback-only token allowed from 127.0.0.1 is refused from 127.0.0.2 at once."""
        token = mc.authsvc.create_token("Reader", ip_filter="localhost")
        headers = [("Authorization", token.bearer)]
        assert mc.nginx.request_from("127.0.0.1", "GET", ITEMS, headers).status == 200
        assert mc.nginx.request_from(OTHER_CLIENT, "GET", ITEMS, headers).status == 403
        assert mc.nginx.request_from("127.0.0.1", "GET", ITEMS, headers).status == 200
        assert len(mc.upstream.requests) == 2


def _authorization(authsvc: AuthsvcServer, kind: str) -> str | None:
    if kind == "junk":
        return "Bearer junk"
    if kind == "unknown":
        return f"Bearer {new_secret()}"
    if kind == "reader":
        return authsvc.create_token("Reader").bearer
    if kind == "elsewhere":
        return authsvc.create_token("Reader", ip_filter="elsewhere").bearer
    return None


class TestDenialsAreNeverReused:
    """authsvc says X-Accel-Expires: 0 on every denial, and nginx asks again every time."""

    @pytest.mark.parametrize(
        ("kind", "method", "status", "reason"),
        [
            pytest.param("none", "GET", 401, "missing_token", id="missing"),
            pytest.param("junk", "GET", 401, "malformed_token", id="junk"),
            pytest.param("unknown", "GET", 401, "invalid_token", id="unknown"),
            pytest.param("reader", "POST", 403, "permission_denied", id="permission"),
            pytest.param("elsewhere", "GET", 403, "ip_not_allowed", id="ip-filter"),
        ],
    )
    def test_every_repeat_is_decided(
        self, mc: McStack, kind: str, method: str, status: int, reason: str
    ) -> None:
        """Three identical refused requests are three decisions and three refusals."""
        authorization = _authorization(mc.authsvc, kind)
        headers = [] if authorization is None else [("Authorization", authorization)]
        before = mc.decisions(reason)
        statuses = [mc.nginx.request(method, ITEMS, headers).status for _ in range(3)]
        assert statuses == [status] * 3
        assert mc.decisions(reason) - before == 3
        assert mc.upstream.requests == []


class TestRevocation:
    """The micro-cache lengthens the revocation bound by less than REUSE_LIMIT, no more."""

    def test_deleted_token_stops_working(self, mc: McStack) -> None:
        """A token deleted through the CLI is refused within cache.ttl + the reuse window."""
        token = mc.authsvc.create_token("Reader")
        assert _get(mc, token).status == 200
        assert _get(mc, token).status == 200  # now answered from nginx's cache
        mc.authsvc.delete_token(token.id)
        deleted_at = time.monotonic()
        deadline = deleted_at + CACHE_TTL + REUSE_LIMIT + SLACK
        status = _get(mc, token).status
        while status == 200 and time.monotonic() < deadline:
            time.sleep(0.05)
            status = _get(mc, token).status
        print(f"\nmicro-cache: deleted token refused after {time.monotonic() - deleted_at:.2f} s")
        assert status == 401


class TestFailClosed:
    """No stale answer is ever used: when authsvc is gone, nginx refuses after the window."""

    def test_stopped_authsvc_means_500_after_the_window(
        self, nginx_binary: str, tmp_path: Path
    ) -> None:
        """With authsvc stopped, a token that was just allowed gets 500 once its answer is stale."""
        with microcache_stack(nginx_binary, tmp_path) as stack:
            token = stack.authsvc.create_token("Reader")
            assert _get(stack, token).status == 200
            answered_at = time.time()
            assert stack.authsvc.stop() == 0
            stack.upstream.clear()
            _wait_past_reuse(answered_at)
            assert _get(stack, token).status == 500
            assert stack.upstream.requests == []


def _directives(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _is_cache_directive(directive: str) -> bool:
    name = directive.split(maxsplit=1)[0]
    return name.startswith("proxy_cache") or name == "proxy_ignore_headers"


class TestShippedFiles:
    """The variant stays the shipped auth location plus caching, and its cache is private."""

    def test_variant_asks_exactly_like_the_shipped_location(self) -> None:
        """Apart from the cache directives, the variant's directives are authsvc-auth.conf's."""
        shipped = _directives(NGINX_DIR / "authsvc-auth.conf")
        variant = _directives(AUTH_SNIPPET)
        assert "proxy_cache off;" in shipped
        assert [d for d in variant if not _is_cache_directive(d)] == [
            d for d in shipped if not _is_cache_directive(d)
        ]

    def test_cache_directory_is_private(self, mc: McStack) -> None:
        """nginx creates the cache directory 0700 and its files 0600: they hold tokens."""
        token = mc.authsvc.create_token("Reader")
        assert _get(mc, token).status == 200
        paths = [mc.nginx.cache_dir, *mc.nginx.cache_dir.rglob("*")]
        assert any(path.is_file() for path in paths)
        for path in paths:
            assert path.stat().st_mode & 0o777 == (0o600 if path.is_file() else 0o700), path
