"""Headers the upstream could be fooled by never reach it (SECURITY 29).

Rails, Symfony, Express's method-override, Laminas and IIS URL rewriting read headers
such as ``X-HTTP-Method-Override: DELETE`` or ``X-Original-URL: /admin`` to change the
method or path they route on. authsvc judged the method and path nginx saw, so the
shipped protect snippet clears every such header before the request is proxied; the
upstream gets ``X-Real-IP`` from nginx, never from the client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.e2e.conftest import NginxProxy
    from tests.e2e.upstream import EchoUpstream
    from tests.processes import AuthsvcServer, IssuedToken

pytestmark = pytest.mark.e2e

ITEMS = "/api/v1/items"
#: (header, what a client would send to turn an allowed POST into something else)
OVERRIDES = (
    ("X-HTTP-Method-Override", "DELETE"),
    ("X-HTTP-Method", "DELETE"),
    ("X-Method-Override", "DELETE"),
    ("X-Original-URL", "/admin/users"),
    ("X-Rewrite-URL", "/admin/users"),
    ("X-Original-Method", "DELETE"),
    ("X-Original-URI", "/admin/users"),
)


@pytest.fixture(scope="module")
def writer(authsvc_server: AuthsvcServer) -> IssuedToken:
    """A token allowed POST /api/v1/items (and DELETE /api/v1/items/{id})."""
    return authsvc_server.create_token("Writer")


class TestOverrideHeaders:
    @pytest.mark.parametrize(("name", "value"), [pytest.param(*o, id=o[0]) for o in OVERRIDES])
    def test_override_header_is_cleared(
        self,
        nginx_proxy: NginxProxy,
        upstream: EchoUpstream,
        writer: IssuedToken,
        name: str,
        value: str,
    ) -> None:
        """An allowed POST arrives as a plain POST: the override header is gone."""
        headers = [("Authorization", writer.bearer), (name, value)]
        response = nginx_proxy.request("POST", ITEMS, headers, b"{}")
        assert response.status == 200
        [received] = upstream.requests
        assert (received.method, received.target) == ("POST", ITEMS)
        assert received.header_values(name) == []

    def test_all_at_once_in_any_letter_case(
        self, nginx_proxy: NginxProxy, upstream: EchoUpstream, writer: IssuedToken
    ) -> None:
        """Every override header, sent together in lower case, is cleared."""
        headers = [("Authorization", writer.bearer)]
        headers += [(name.lower(), value) for name, value in OVERRIDES]
        response = nginx_proxy.request("POST", ITEMS, headers, b"{}")
        assert response.status == 200
        [received] = upstream.requests
        names = {name.lower() for name in received.header_names()}
        assert names & {name.lower() for name, _ in OVERRIDES} == set()

    def test_x_real_ip_is_nginx_s_not_the_client_s(
        self, nginx_proxy: NginxProxy, upstream: EchoUpstream, writer: IssuedToken
    ) -> None:
        """The upstream gets one X-Real-IP: the address nginx saw, not the one claimed."""
        headers = [("Authorization", writer.bearer), ("X-Real-IP", "10.66.66.66")]
        response = nginx_proxy.request("POST", ITEMS, headers, b"{}")
        assert response.status == 200
        [received] = upstream.requests
        assert received.header_values("X-Real-IP") == ["127.0.0.1"]
