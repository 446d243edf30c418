"""Per-token rate limits (SPEC §12) through a real nginx running the shipped deploy/nginx/.

authsvc refuses a token over its limit with 403 ``rate_limited``; the shipped snippets
(``error_page 403 = @authsvc_forbidden`` in authsvc-auth.conf, the ``auth_request_set``
lines of authsvc-protect.conf) must turn exactly that refusal into 429 with authsvc's
``Retry-After`` and ``X-RateLimit-*``, and leave every other refusal as it was. The same
holds with the optional micro-cache, which must never answer for a limited token: every
request is counted. On each store kind, like every e2e test.

The limits are counted in real time (a "5/s" bucket refills one request every 0.2 s), so
bounds on how many requests pass allow for what refills while a burst runs.
"""

from __future__ import annotations

import math
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.e2e.conftest import NginxProxy, Response
from tests.e2e.test_microcache import microcache_stack
from tests.processes import free_port

if TYPE_CHECKING:
    from tests.e2e.upstream import EchoUpstream
    from tests.processes import AuthsvcServer, IssuedToken

pytestmark = pytest.mark.e2e

ITEMS = "/api/v1/items"
CHALLENGE = 'Bearer realm="authsvc"'
LIMIT = "5/s"
COUNT = 5  # the burst a fresh "5/s" bucket allows
REFILL_PER_SECOND = 5.0
LIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
BURST = 20  # requests sent back to back: well past the limit


def get(nginx: NginxProxy, token: IssuedToken, method: str = "GET") -> Response:
    return nginx.request(method, ITEMS, [("Authorization", token.bearer)])


def burst(
    nginx: NginxProxy, token: IssuedToken, times: int = BURST
) -> tuple[list[Response], float]:
    """``times`` requests of ``token`` back to back; the responses and the seconds taken."""
    started = time.monotonic()
    responses = [get(nginx, token) for _ in range(times)]
    return responses, time.monotonic() - started


def refilled(seconds: float, buckets: int = 1) -> int:
    """Requests that ``buckets`` "5/s" buckets may have regained within ``seconds``."""
    return buckets * math.floor(seconds * REFILL_PER_SECOND)


def whole_seconds(value: str | None) -> int:
    assert value is not None
    assert value.isdigit(), f"not a whole number of seconds: {value!r}"
    return int(value)


def assert_rate_limited(response: Response) -> None:
    """A 429 as the shipped snippets make it: Retry-After of at least 1 s and the counts
    of a spent "5/s" bucket, and nothing of authsvc's internals."""
    assert response.status == 429
    assert whole_seconds(response.header("Retry-After")) >= 1
    assert response.header("X-RateLimit-Limit") == str(COUNT)
    assert response.header("X-RateLimit-Remaining") == "0"
    assert whole_seconds(response.header("X-RateLimit-Reset")) >= 1
    assert response.header("X-Auth-Reason") is None


@pytest.fixture
def limited(authsvc_server: AuthsvcServer) -> IssuedToken:
    """A fresh Reader token limited to 5 requests a second (a full bucket)."""
    return authsvc_server.create_token("Reader", rate_limit=LIMIT)


@pytest.fixture
def slow_refill(authsvc_server: AuthsvcServer) -> IssuedToken:
    """A fresh Reader token limited to 5 requests a minute: nothing refills within a test
    (one request every 12 s), so counts are exact."""
    return authsvc_server.create_token("Reader", rate_limit=f"{COUNT}/m")


@pytest.fixture(scope="module")
def unlimited(authsvc_server: AuthsvcServer) -> IssuedToken:
    """A Reader token without a limit (the e2e policy has no max_rate_limit)."""
    return authsvc_server.create_token("Reader")


class TestOverTheLimit:
    def test_limit_then_429(
        self, nginx_proxy: NginxProxy, upstream: EchoUpstream, limited: IssuedToken
    ) -> None:
        """A "5/s" token: 5 allows, then 429 with Retry-After and X-RateLimit-* within the
        same second; only the allowed requests reach the upstream."""
        responses, seconds = burst(nginx_proxy, limited)
        statuses = [r.status for r in responses]
        assert seconds < 1.0, "the burst was too slow to show the limit"
        assert statuses[:COUNT] == [200] * COUNT
        assert set(statuses) == {200, 429}
        assert statuses.count(200) <= COUNT + refilled(seconds)
        for response in responses:
            if response.status == 429:
                assert_rate_limited(response)
        assert len(upstream.requests) == statuses.count(200)
        assert {r.header_values("X-Auth-Token-Id")[0] for r in upstream.requests} == {limited.id}

    def test_works_again_after_retry_after(
        self, nginx_proxy: NginxProxy, limited: IssuedToken
    ) -> None:
        """A client that waits as long as Retry-After says is allowed again."""
        responses, _ = burst(nginx_proxy, limited)
        refused = next(r for r in responses if r.status == 429)
        time.sleep(whole_seconds(refused.header("Retry-After")))
        assert get(nginx_proxy, limited).status == 200

    def test_head_is_limited_too(self, nginx_proxy: NginxProxy, slow_refill: IssuedToken) -> None:
        """HEAD counts like GET and is refused with the same 429 headers (no body)."""
        statuses = [get(nginx_proxy, slow_refill, "HEAD").status for _ in range(COUNT)]
        assert statuses == [200] * COUNT
        assert_rate_limited(get(nginx_proxy, slow_refill, "HEAD"))

    def test_other_tokens_are_not_affected(
        self, nginx_proxy: NginxProxy, authsvc_server: AuthsvcServer, slow_refill: IssuedToken
    ) -> None:
        """Each token has a bucket of its own: a spent one does not refuse another."""
        responses, _ = burst(nginx_proxy, slow_refill, times=COUNT + 1)
        assert [r.status for r in responses] == [200] * COUNT + [429]
        other = authsvc_server.create_token("Reader", rate_limit=f"{COUNT}/m")
        assert get(nginx_proxy, other).status == 200
        assert get(nginx_proxy, slow_refill).status == 429


class TestOtherAnswersUnchanged:
    def test_unlimited_token_is_never_limited(
        self, nginx_proxy: NginxProxy, upstream: EchoUpstream, unlimited: IssuedToken
    ) -> None:
        """A token without a limit passes every request of a burst, with no limit headers."""
        responses, _ = burst(nginx_proxy, unlimited, times=4 * BURST)
        assert {r.status for r in responses} == {200}
        assert len(upstream.requests) == 4 * BURST
        for response in responses:
            assert all(response.header(name) is None for name in LIMIT_HEADERS)

    @pytest.mark.parametrize("which", ["limited", "unlimited"])
    def test_permission_denied_stays_403(
        self,
        nginx_proxy: NginxProxy,
        upstream: EchoUpstream,
        request: pytest.FixtureRequest,
        which: str,
    ) -> None:
        """A request the token may not make is a plain 403, limited token or not, however
        often it comes; the refusals take nothing from the bucket."""
        token: IssuedToken = request.getfixturevalue(which)
        refusals = [get(nginx_proxy, token, "POST") for _ in range(2 * COUNT)]
        assert {r.status for r in refusals} == {403}
        for response in refusals:
            assert response.header("Retry-After") is None
            assert all(response.header(name) is None for name in LIMIT_HEADERS)
        allowed = [get(nginx_proxy, token).status for _ in range(COUNT)]
        assert allowed == [200] * COUNT
        assert [r.method for r in upstream.requests] == ["GET"] * COUNT

    def test_ip_filter_denial_stays_403(
        self, nginx_proxy: NginxProxy, authsvc_server: AuthsvcServer
    ) -> None:
        """An IP filter refusal of a limited token is a plain 403."""
        token = authsvc_server.create_token("Reader", ip_filter="elsewhere", rate_limit=LIMIT)
        statuses = [get(nginx_proxy, token).status for _ in range(2 * COUNT)]
        assert statuses == [403] * (2 * COUNT)

    @pytest.mark.parametrize(
        "authorization",
        [pytest.param(None, id="missing"), pytest.param("Bearer junk", id="junk")],
    )
    def test_unauthenticated_keeps_401_and_its_challenge(
        self, nginx_proxy: NginxProxy, authorization: str | None
    ) -> None:
        """401 still carries authsvc's WWW-Authenticate, untouched by the 403 handling."""
        headers = [] if authorization is None else [("Authorization", authorization)]
        response = nginx_proxy.request("GET", ITEMS, headers)
        assert response.status == 401
        assert (response.header("WWW-Authenticate") or "").startswith(CHALLENGE)
        assert response.header("Retry-After") is None


class TestMicrocache:
    """With deploy/nginx/microcache/, a limited token's allows are never reused: every
    request is decided, and counted, by authsvc."""

    def test_every_request_is_counted(self, nginx_binary: str, tmp_path: Path) -> None:
        """5 identical requests of a "5/m" token (no refill within the test) are 5
        decisions, and the next one is 429; a token without a limit is still served from
        the cache, so the cache was working."""
        with microcache_stack(nginx_binary, tmp_path) as stack:
            token = stack.authsvc.create_token("Reader", rate_limit=f"{COUNT}/m")
            before = stack.decisions()
            statuses = [get(stack.nginx, token).status for _ in range(COUNT)]
            assert statuses == [200] * COUNT
            assert stack.decisions() - before == COUNT
            assert_rate_limited(get(stack.nginx, token))
            assert stack.decisions("rate_limited") == 1
            assert len(stack.upstream.requests) == COUNT
            unlimited = stack.authsvc.create_token("Reader")
            before = stack.decisions()
            assert [get(stack.nginx, unlimited).status for _ in range(3)] == [200] * 3
            assert stack.decisions() - before < 3


class TestShippedConfiguration:
    def test_nginx_t_accepts_the_example_site(self, nginx_binary: str, tmp_path: Path) -> None:
        """``nginx -t`` accepts example-site.conf with the shipped snippets."""
        proxy = NginxProxy(
            nginx_binary,
            tmp_path,
            listen_port=free_port(),
            auth_port=free_port(),
            upstream_port=free_port(),
        )
        conf = proxy.write_config()
        command = [nginx_binary, "-t", "-p", f"{tmp_path}/", "-c", str(conf)]
        error_log = ["-e", str(tmp_path / "error.log")]
        result = subprocess.run(
            [*command, *error_log], capture_output=True, text=True, timeout=30, check=False
        )
        assert result.returncode == 0, result.stderr
        assert "test is successful" in result.stderr
