"""The contract through a real nginx running deploy/nginx/ in front of a real authsvc.

What a client of the protected API sees (status, challenge) and what the upstream receives
(or, for every refused request, that it receives nothing). SECURITY.md items 1-9 and the
fail-closed faults are checked here end to end.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from authsvc.rules.tokens import new_secret

if TYPE_CHECKING:
    from tests.e2e.conftest import NginxProxy, Stack
    from tests.e2e.upstream import EchoUpstream
    from tests.processes import AuthsvcServer, IssuedToken

pytestmark = pytest.mark.e2e

ITEMS = "/api/v1/items"
CHALLENGE = 'Bearer realm="authsvc"'
PROPAGATION_DEADLINE = 3.0  # seconds: cache.ttl is 1s in the e2e configuration


@pytest.fixture(scope="module")
def reader(authsvc_server: AuthsvcServer) -> IssuedToken:
    """A token allowed GET /api/v1/items and GET /api/v1/items/{id}."""
    return authsvc_server.create_token("Reader")


@pytest.fixture(scope="module")
def writer(authsvc_server: AuthsvcServer) -> IssuedToken:
    """A token allowed POST /api/v1/items and DELETE /api/v1/items/{id}."""
    return authsvc_server.create_token("Writer")


def _normalised(name: str) -> str:
    # How frameworks that fold `_` and `.` into `-` (CGI/WSGI-style) would read a header name.
    return name.lower().replace("_", "-").replace(".", "-")


class TestAllowedRequests:
    """A permitted request reaches the upstream, with identity and without the secret."""

    def test_upstream_receives_identity_set_by_authsvc(
        self, nginx_proxy: NginxProxy, upstream: EchoUpstream, reader: IssuedToken
    ) -> None:
        """GET with a Reader token is 200 and the upstream sees the token's id and name."""
        response = nginx_proxy.request("GET", ITEMS, [("Authorization", reader.bearer)])
        assert response.status == 200
        [received] = upstream.requests
        assert (received.method, received.target) == ("GET", ITEMS)
        assert received.header_values("X-Auth-Token-Id") == [reader.id]
        assert received.header_values("X-Auth-Token-Name") == [reader.name]

    def test_head_is_allowed_where_get_is(
        self, nginx_proxy: NginxProxy, upstream: EchoUpstream, reader: IssuedToken
    ) -> None:
        """HEAD on a path the token may GET is passed to the upstream as HEAD."""
        response = nginx_proxy.request("HEAD", f"{ITEMS}/42", [("Authorization", reader.bearer)])
        assert response.status == 200
        assert [(r.method, r.target) for r in upstream.requests] == [("HEAD", f"{ITEMS}/42")]

    def test_request_body_reaches_upstream(
        self, nginx_proxy: NginxProxy, upstream: EchoUpstream, writer: IssuedToken
    ) -> None:
        """The auth subrequest drops the body, the proxied request keeps it intact."""
        body = b'{"name": "widget"}'
        response = nginx_proxy.request("POST", ITEMS, [("Authorization", writer.bearer)], body)
        assert response.status == 200
        [received] = upstream.requests
        assert (received.method, received.body) == ("POST", body)

    def test_token_secret_is_not_forwarded(
        self, nginx_proxy: NginxProxy, upstream: EchoUpstream, reader: IssuedToken
    ) -> None:
        """The upstream never receives the Authorization header or the secret in any header."""
        assert nginx_proxy.request("GET", ITEMS, [("Authorization", reader.bearer)]).status == 200
        [received] = upstream.requests
        assert received.header_values("Authorization") == []
        assert not any(reader.secret in value for _, value in received.headers)

    @pytest.mark.parametrize(
        "target",
        [
            pytest.param(f"{ITEMS}?next=/api/v1/private&q=%2F..", id="query-untouched"),
            pytest.param(f"{ITEMS}/%41bc", id="unreserved-escape-kept-raw"),
        ],
    )
    def test_upstream_receives_the_target_that_was_checked(
        self, nginx_proxy: NginxProxy, upstream: EchoUpstream, reader: IssuedToken, target: str
    ) -> None:
        """nginx forwards the request target byte for byte as the client sent it."""
        response = nginx_proxy.request("GET", target, [("Authorization", reader.bearer)])
        assert response.status == 200
        assert [r.target for r in upstream.requests] == [target]


def _bad_checksum() -> str:
    secret = new_secret()
    return secret[:-1] + ("A" if secret[-1] != "A" else "B")


class TestUnauthenticated:
    """No usable token: 401 with a Bearer challenge, and the upstream is never asked."""

    def test_missing_token_is_challenged(
        self, nginx_proxy: NginxProxy, upstream: EchoUpstream
    ) -> None:
        """Without Authorization nginx answers 401 with authsvc's WWW-Authenticate."""
        response = nginx_proxy.request("GET", ITEMS)
        assert response.status == 401
        assert response.header("WWW-Authenticate") == CHALLENGE
        assert upstream.requests == []

    @pytest.mark.parametrize(
        "authorization",
        [
            pytest.param("Bearer junk", id="junk"),
            pytest.param(f"Bearer {new_secret()}", id="unknown-valid-shape"),
            pytest.param(f"Bearer {_bad_checksum()}", id="bad-checksum"),
            pytest.param(f"Bearer ghp_{new_secret()[8:]}", id="wrong-prefix"),
            pytest.param(f"Bearer {new_secret()}x", id="too-long"),
        ],
    )
    def test_invalid_token_is_refused(
        self, nginx_proxy: NginxProxy, upstream: EchoUpstream, authorization: str
    ) -> None:
        """A presented token that is not a live token is 401 invalid_token."""
        response = nginx_proxy.request("GET", ITEMS, [("Authorization", authorization)])
        assert response.status == 401
        challenge = response.header("WWW-Authenticate") or ""
        assert challenge.startswith(CHALLENGE)
        assert 'error="invalid_token"' in challenge
        assert upstream.requests == []

    @pytest.mark.parametrize(
        "scheme", [pytest.param("Basic", id="basic"), pytest.param("Token", id="token")]
    )
    def test_only_the_bearer_scheme_is_accepted(
        self,
        nginx_proxy: NginxProxy,
        upstream: EchoUpstream,
        reader: IssuedToken,
        scheme: str,
    ) -> None:
        """A live secret under another scheme than Bearer is 401."""
        headers = [("Authorization", f"{scheme} {reader.secret}")]
        response = nginx_proxy.request("GET", ITEMS, headers)
        assert response.status == 401
        assert upstream.requests == []

    @pytest.mark.parametrize(
        ("where", "template"),
        [
            pytest.param("query", f"{ITEMS}?access_token={{}}", id="query-access_token"),
            pytest.param("query", f"{ITEMS}?token={{}}", id="query-token"),
            pytest.param("cookie", "access_token={}", id="cookie-access_token"),
            pytest.param("cookie", "authsvc={}; token={}", id="cookie-token"),
        ],
    )
    def test_token_outside_authorization_is_ignored(
        self,
        nginx_proxy: NginxProxy,
        upstream: EchoUpstream,
        reader: IssuedToken,
        where: str,
        template: str,
    ) -> None:
        """A live secret in the query string or a cookie does not authenticate."""
        value = template.format(reader.secret, reader.secret)
        if where == "query":
            response = nginx_proxy.request("GET", value)
        else:
            response = nginx_proxy.request("GET", ITEMS, [("Cookie", value)])
        assert response.status == 401
        assert upstream.requests == []

    @pytest.mark.parametrize(
        "live_first", [pytest.param(True, id="live-first"), pytest.param(False, id="live-last")]
    )
    def test_two_authorization_headers_are_refused(
        self,
        nginx_proxy: NginxProxy,
        upstream: EchoUpstream,
        reader: IssuedToken,
        live_first: bool,
    ) -> None:
        """Two Authorization headers never authenticate (nginx itself answers 400)."""
        pair = [("Authorization", reader.bearer), ("Authorization", "Bearer junk")]
        response = nginx_proxy.request("GET", ITEMS, pair if live_first else pair[::-1])
        assert response.status in (400, 401)
        assert upstream.requests == []

    def test_decision_reason_is_not_shown_to_clients(self, nginx_proxy: NginxProxy) -> None:
        """X-Auth-Reason stays between nginx and authsvc (no oracle for token probing)."""
        response = nginx_proxy.request("GET", ITEMS, [("Authorization", f"Bearer {new_secret()}")])
        assert response.status == 401
        assert response.header("X-Auth-Reason") is None


class TestForbidden:
    """A live token used outside its permissions or IP filter: 403, upstream never asked."""

    @pytest.mark.parametrize(
        ("method", "target"),
        [
            pytest.param("POST", ITEMS, id="method-not-granted"),
            pytest.param("DELETE", f"{ITEMS}/1", id="delete-not-granted"),
            pytest.param("GET", "/api/v1/private", id="other-path"),
            pytest.param("GET", "/api/v1/itemsx", id="prefix-trick"),
            pytest.param("GET", "/api/v1/Items", id="case-trick"),
            pytest.param("GET", f"{ITEMS}/", id="trailing-slash"),
            pytest.param("GET", f"{ITEMS}/1/2", id="extra-segment"),
        ],
    )
    def test_permission_denied(
        self,
        nginx_proxy: NginxProxy,
        upstream: EchoUpstream,
        reader: IssuedToken,
        method: str,
        target: str,
    ) -> None:
        """A Reader token outside GET /api/v1/items[/{id}] is 403."""
        response = nginx_proxy.request(method, target, [("Authorization", reader.bearer)])
        assert response.status == 403
        assert upstream.requests == []

    def test_ip_filter_denies_other_addresses(
        self, nginx_proxy: NginxProxy, upstream: EchoUpstream, authsvc_server: AuthsvcServer
    ) -> None:
        """A token limited to 10.0.0.0/8 is 403 from 127.0.0.1."""
        token = authsvc_server.create_token("Reader", ip_filter="elsewhere")
        response = nginx_proxy.request("GET", ITEMS, [("Authorization", token.bearer)])
        assert response.status == 403
        assert upstream.requests == []

    def test_ip_filter_allows_its_addresses(
        self, nginx_proxy: NginxProxy, upstream: EchoUpstream, authsvc_server: AuthsvcServer
    ) -> None:
        """A token limited to loopback works from 127.0.0.1."""
        token = authsvc_server.create_token("Reader", ip_filter="localhost")
        response = nginx_proxy.request("GET", ITEMS, [("Authorization", token.bearer)])
        assert response.status == 200
        assert len(upstream.requests) == 1

    def test_client_cannot_claim_another_address(
        self, nginx_proxy: NginxProxy, upstream: EchoUpstream, authsvc_server: AuthsvcServer
    ) -> None:
        """X-Real-IP, X-Forwarded-For or Forwarded from the client do not satisfy a filter."""
        token = authsvc_server.create_token("Reader", ip_filter="elsewhere")
        forged = [
            ("Authorization", token.bearer),
            ("X-Real-IP", "10.1.2.3"),
            ("X-Forwarded-For", "10.1.2.3"),
            ("Forwarded", "for=10.1.2.3"),
        ]
        assert nginx_proxy.request("GET", ITEMS, forged).status == 403
        assert upstream.requests == []

    @pytest.mark.parametrize(
        ("request_line", "forged"),
        [
            pytest.param(f"POST {ITEMS}", [("X-Original-Method", "GET")], id="forged-method"),
            pytest.param("GET /api/v1/private", [("X-Original-URI", ITEMS)], id="forged-uri"),
            pytest.param(
                "GET /api/v1/private",
                [("X-Debug", "1"), ("User-Agent", "authsvc-health")],
                id="debug-headers",
            ),
        ],
    )
    def test_client_cannot_describe_its_own_request(
        self,
        nginx_proxy: NginxProxy,
        upstream: EchoUpstream,
        reader: IssuedToken,
        request_line: str,
        forged: list[tuple[str, str]],
    ) -> None:
        """Headers a client adds never change the decision on its real method and target."""
        method, target = request_line.split(" ")
        headers = [("Authorization", reader.bearer), *forged]
        assert nginx_proxy.request(method, target, headers).status == 403
        assert upstream.requests == []


class TestRequestTargets:
    """Targets that nginx and the upstream could read differently never reach the upstream.

    Most of these would be ALLOWED for a Reader token if they were normalised or decoded,
    so a test fails if anything on the way starts normalising. nginx answers some of them
    with 400 before asking authsvc; either way it must be a 4xx and the upstream sees nothing.
    """

    @pytest.mark.parametrize(
        "target",
        [
            pytest.param(f"{ITEMS}/../admin", id="dot-dot"),
            pytest.param(f"{ITEMS}/x/../1", id="dot-dot-to-allowed"),
            pytest.param(f"{ITEMS}/%2e%2e/x", id="encoded-dot-dot"),
            pytest.param(f"{ITEMS}/x/%2E%2E/1", id="encoded-dot-dot-upper"),
            pytest.param(f"{ITEMS}/./1", id="dot"),
            pytest.param(f"{ITEMS}/%2e/1", id="encoded-dot"),
            pytest.param(f"{ITEMS}%2Fx", id="encoded-slash"),
            pytest.param(f"{ITEMS}%2f1", id="encoded-slash-lower"),
            pytest.param(f"{ITEMS}\\1", id="backslash"),
            pytest.param(f"{ITEMS}%5C1", id="encoded-backslash"),
            pytest.param(f"{ITEMS}/a%00", id="encoded-nul"),
            pytest.param(f"{ITEMS}/a%09", id="encoded-control"),
            pytest.param("/api/v1//items", id="empty-segment"),
            pytest.param(f"{ITEMS}//1", id="empty-segment-to-allowed"),
            pytest.param(f"{ITEMS};x", id="semicolon"),
            pytest.param(f"{ITEMS}/1;jsessionid=x", id="path-parameter"),
            pytest.param(f"{ITEMS}/1%3Bx", id="encoded-semicolon"),
            pytest.param(f"{ITEMS}/1#x", id="fragment"),
            pytest.param(f"{ITEMS}/1%23x", id="encoded-fragment"),
            pytest.param(f"{ITEMS}/%zz", id="malformed-escape"),
            pytest.param(f"{ITEMS}/%C0%AF", id="invalid-utf8"),
        ],
    )
    def test_ambiguous_target_is_refused(
        self, nginx_proxy: NginxProxy, upstream: EchoUpstream, reader: IssuedToken, target: str
    ) -> None:
        """The target is refused with a 4xx and never proxied."""
        response = nginx_proxy.request("GET", target, [("Authorization", reader.bearer)])
        assert response.status in (400, 403)
        assert upstream.requests == []

    def test_query_string_does_not_take_part_in_matching(
        self, nginx_proxy: NginxProxy, upstream: EchoUpstream, reader: IssuedToken
    ) -> None:
        """A permitted path in the query string does not open another path."""
        response = nginx_proxy.request(
            "GET", f"/api/v1/private?x={ITEMS}", [("Authorization", reader.bearer)]
        )
        assert response.status == 403
        assert upstream.requests == []

    @pytest.mark.parametrize(
        "target",
        [pytest.param("/_authsvc", id="direct"), pytest.param("/api/../_authsvc", id="dot-dot")],
    )
    def test_auth_location_is_internal(
        self, nginx_proxy: NginxProxy, upstream: EchoUpstream, reader: IssuedToken, target: str
    ) -> None:
        """Clients cannot call the internal /_authsvc location."""
        response = nginx_proxy.request("GET", target, [("Authorization", reader.bearer)])
        assert response.status == 404
        assert upstream.requests == []


class TestIdentityHeaders:
    """Identity headers reach the upstream only as set by nginx from authsvc's answer."""

    @pytest.mark.parametrize(
        "name",
        [
            pytest.param("X-Auth-Token-Id", id="exact"),
            pytest.param("x-auth-token-id", id="lower"),
            pytest.param("X-AUTH-TOKEN-ID", id="upper"),
            pytest.param("X_Auth_Token_Id", id="underscores"),
            pytest.param("x_auth_token_id", id="underscores-lower"),
            pytest.param("X-Auth_Token-Id", id="mixed"),
            pytest.param("X.Auth.Token.Id", id="dots"),
            pytest.param("X-Auth-Token-Name", id="name"),
            pytest.param("X_Auth_Token_Name", id="name-underscores"),
        ],
    )
    def test_forged_identity_is_replaced(
        self, nginx_proxy: NginxProxy, upstream: EchoUpstream, reader: IssuedToken, name: str
    ) -> None:
        """The upstream sees exactly authsvc's identity, whatever the client sent."""
        headers = [(name, "tok_forged"), (name, "tok_forged2"), ("Authorization", reader.bearer)]
        assert nginx_proxy.request("GET", ITEMS, headers).status == 200
        [received] = upstream.requests
        identity = [
            (_normalised(key), value)
            for key, value in received.headers
            if _normalised(key) in ("x-auth-token-id", "x-auth-token-name")
        ]
        expected = [("x-auth-token-id", reader.id), ("x-auth-token-name", reader.name)]
        assert sorted(identity) == expected
        assert not any("forged" in value for _, value in received.headers)

    def test_forged_identity_without_token_is_refused(
        self, nginx_proxy: NginxProxy, upstream: EchoUpstream, reader: IssuedToken
    ) -> None:
        """Claiming a token id without presenting its secret is 401."""
        response = nginx_proxy.request(
            "GET", ITEMS, [("X-Auth-Token-Id", reader.id), ("X-Auth-Token-Name", reader.name)]
        )
        assert response.status == 401
        assert upstream.requests == []


class TestPropagation:
    """Changes made with the CLI reach the running service within cache.ttl."""

    def test_deleted_token_stops_working(
        self, nginx_proxy: NginxProxy, upstream: EchoUpstream, authsvc_server: AuthsvcServer
    ) -> None:
        """A token deleted through the CLI is refused within the propagation deadline."""
        token = authsvc_server.create_token("Reader")
        headers = [("Authorization", token.bearer)]
        assert nginx_proxy.request("GET", ITEMS, headers).status == 200
        authsvc_server.delete_token(token.id)
        deadline = time.monotonic() + PROPAGATION_DEADLINE
        status = nginx_proxy.request("GET", ITEMS, headers).status
        while status == 200 and time.monotonic() < deadline:
            time.sleep(0.1)
            status = nginx_proxy.request("GET", ITEMS, headers).status
        assert status == 401


class TestFailClosed:
    """When authsvc cannot decide, nginx refuses (500) instead of letting requests through."""

    def test_stopped_authsvc_means_500(self, isolated_stack: Stack) -> None:
        """With authsvc stopped a previously working token gets 500 and nothing is proxied."""
        token = isolated_stack.authsvc.create_token("Reader")
        headers = [("Authorization", token.bearer)]
        assert isolated_stack.nginx.request("GET", ITEMS, headers).status == 200
        assert isolated_stack.authsvc.stop() == 0  # SIGTERM is a clean shutdown
        isolated_stack.upstream.clear()
        assert isolated_stack.nginx.request("GET", ITEMS, headers).status == 500
        assert isolated_stack.upstream.requests == []

    def test_hung_authsvc_means_500(self, isolated_stack: Stack) -> None:
        """A frozen authsvc hits the nginx read timeout: 500, and 200 again once it runs."""
        token = isolated_stack.authsvc.create_token("Reader")
        headers = [("Authorization", token.bearer)]
        isolated_stack.authsvc.pause()
        try:
            assert isolated_stack.nginx.request("GET", ITEMS, headers).status == 500
        finally:
            isolated_stack.authsvc.resume()
        assert isolated_stack.upstream.requests == []
        assert isolated_stack.nginx.request("GET", ITEMS, headers).status == 200
