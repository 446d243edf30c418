"""The shape of every /auth answer (SPEC §3): empty bodies, X-Auth-Token-Expires, and the
HTTP framing of the prepared answers (keep-alive, Connection, Date) on a real socket."""

from __future__ import annotations

import asyncio
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from authsvc.rules.durations import rfc3339
from authsvc.rules.tokens import new_secret
from authsvc.service.runtime import Runtime
from authsvc.web.answers import header_block
from tests.factories import FrozenClock, make_config
from tests.webapp import READ_ITEMS, Client, bearer, mint

DAY = 86_400.0


def asking(secret: str | None, **headers: str) -> dict[str, str]:
    return {**(bearer(secret) if secret else {}), **READ_ITEMS, **headers}


def _without_a_token(case: str) -> dict[str, str] | None:
    """The request headers leading to ``case`` without any token in the store, if any."""
    return {
        "missing_token": asking(None),
        "malformed_token": asking("not-a-token"),
        "invalid_token": asking(new_secret()),
        "bad_request": bearer(new_secret()),
        "bad_path": asking(new_secret(), **{"X-Original-URI": "/api/v1/items/../admin"}),
    }.get(case)


async def outcome_headers(case: str, runtime: Runtime, tmp_path: Path) -> dict[str, str]:
    """The request headers that lead to ``case`` (an X-Auth-Reason)."""
    headers = _without_a_token(case)
    if headers is not None:
        return headers
    if case == "tokens_disabled":
        _, secret = await mint(runtime, "Reader")
        runtime.live.current = make_config(tmp_path, security_policy={"tokens_enabled": False})
        return asking(secret)
    permissions = "Writer" if case == "permission_denied" else "Reader"
    ip_filter = "office" if case == "ip_not_allowed" else None
    _, secret = await mint(runtime, permissions, ip_filter=ip_filter)
    return asking(secret, **{"X-Real-IP": "192.0.2.9"})


OUTCOMES = {
    "ok": 200,
    "missing_token": 401,
    "malformed_token": 401,
    "invalid_token": 401,
    "tokens_disabled": 401,
    "ip_not_allowed": 403,
    "permission_denied": 403,
    "bad_request": 403,
    "bad_path": 403,
}


class TestEmptyBodies:
    @pytest.mark.parametrize("method", ["GET", "HEAD"])
    @pytest.mark.parametrize("case", OUTCOMES)
    async def test_every_answer_is_body_less(
        self, auth_client: Client, runtime: Runtime, tmp_path: Path, case: str, method: str
    ) -> None:
        """Content-Length 0 and no bytes after the headers, for GET and HEAD alike: nginx
        keeps its connection only when it knows no body follows."""
        status = OUTCOMES[case]
        headers = await outcome_headers(case, runtime, tmp_path)
        response = await auth_client.request(method, "/auth", headers=headers)
        assert (response.status, response.headers["X-Auth-Reason"]) == (status, case)
        assert response.headers["Content-Length"] == "0"
        assert "Content-Type" not in response.headers
        assert await response.read() == b""

    async def test_wrong_checksum_of_an_issued_secret_is_malformed(
        self, auth_client: Client, runtime: Runtime
    ) -> None:
        """The checksum is checked after the cache: a cached token with one character
        changed is still malformed, never the cached token."""
        _, secret = await mint(runtime, "Reader")
        assert (await auth_client.get("/auth", headers=asking(secret))).status == 200
        last = "A" if secret[-1] != "A" else "B"
        response = await auth_client.get("/auth", headers=asking(secret[:-1] + last))
        assert response.status == 401
        assert response.headers["X-Auth-Reason"] == "malformed_token"


class TestTokenExpiresHeader:
    async def test_own_expiry(self, auth_client: Client, runtime: Runtime) -> None:
        record, secret = await mint(runtime, "Reader", expires_in="30d")
        assert record.expires_at is not None
        response = await auth_client.get("/auth", headers=asking(secret))
        assert response.headers["X-Auth-Token-Expires"] == rfc3339(record.expires_at)

    async def test_absent_without_an_effective_expiry(
        self, auth_client: Client, runtime: Runtime
    ) -> None:
        _, secret = await mint(runtime, "Reader")
        response = await auth_client.get("/auth", headers=asking(secret))
        assert response.status == 200
        assert "X-Auth-Token-Expires" not in response.headers

    async def test_policy_maximum_counts_and_a_reload_changes_it(
        self, auth_client: Client, runtime: Runtime, tmp_path: Path
    ) -> None:
        """The earlier of expires_at and created_at + max_lifetime; a reload that changes
        the policy changes the header at once (answers are prepared per configuration)."""
        record, secret = await mint(runtime, "Reader", expires_in="30d")
        first = await auth_client.get("/auth", headers=asking(secret))
        assert first.headers["X-Auth-Token-Expires"] == rfc3339(record.created_at + 30 * DAY)
        runtime.live.current = make_config(tmp_path, security_policy={"max_lifetime": "7d"})
        second = await auth_client.get("/auth", headers=asking(secret))
        assert second.headers["X-Auth-Token-Expires"] == rfc3339(record.created_at + 7 * DAY)

    async def test_never_on_a_denial(
        self, auth_client: Client, runtime: Runtime, clock: FrozenClock
    ) -> None:
        record, secret = await mint(runtime, "Reader", expires_in="1h")
        assert record.expires_at is not None
        denied = await auth_client.get(
            "/auth", headers=asking(secret, **{"X-Original-URI": "/api/v1/admin"})
        )
        assert denied.status == 403
        assert "X-Auth-Token-Expires" not in denied.headers
        clock.now = record.expires_at
        expired = await auth_client.get("/auth", headers=asking(secret))
        assert expired.headers["X-Auth-Reason"] == "expired"
        assert "X-Auth-Token-Expires" not in expired.headers


def test_a_header_value_with_a_line_break_is_refused() -> None:
    """The prepared blocks are raw bytes: a value must never end its line early."""
    for value in ("a\r\nX-Auth-Token-Id: tok_0", "a\nb", "a\rb", "a\0b"):
        with pytest.raises(ValueError, match="line break"):
            header_block([("X-Auth-Token-Name", value)])


async def exchange(client: Client, raw: bytes, answers: int) -> tuple[list[bytes], bool]:
    """Send ``raw`` on one new connection; the header blocks of ``answers`` answers, and
    whether the server closed the connection after them."""
    assert client.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    try:
        writer.write(raw)
        heads = [await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) for _ in range(answers)]
        try:
            rest = await asyncio.wait_for(reader.read(1), 0.5)
            closed = rest == b""
            assert rest == b"", "bytes after the last answer: a body was sent"
        except TimeoutError:
            closed = False
        return heads, closed
    finally:
        writer.close()


def request_bytes(version: str, *extra: str) -> bytes:
    lines = [
        f"GET /auth {version}",
        "Host: authsvc",
        "X-Original-Method: GET",
        "X-Original-URI: /api/v1/items/42",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def header_lines(head: bytes) -> list[str]:
    return head.decode("latin-1").split("\r\n")


class TestFraming:
    async def test_pipelined_requests_share_one_connection(self, auth_client: Client) -> None:
        heads, closed = await exchange(auth_client, request_bytes("HTTP/1.1") * 3, 3)
        assert all(header_lines(h)[0] == "HTTP/1.1 401 Unauthorized" for h in heads)
        assert not closed

    async def test_connection_close_is_honoured(self, auth_client: Client) -> None:
        heads, closed = await exchange(
            auth_client, request_bytes("HTTP/1.1", "Connection: close"), 1
        )
        assert "Connection: close" in header_lines(heads[0])
        assert closed

    async def test_http_1_0_closes_unless_asked_to_keep_alive(self, auth_client: Client) -> None:
        heads, closed = await exchange(auth_client, request_bytes("HTTP/1.0"), 1)
        assert header_lines(heads[0])[0] == "HTTP/1.0 401 Unauthorized"
        assert closed
        heads, closed = await exchange(
            auth_client, request_bytes("HTTP/1.0", "Connection: keep-alive"), 1
        )
        assert "Connection: keep-alive" in header_lines(heads[0])
        assert not closed

    async def test_date_and_anonymous_server(self, auth_client: Client) -> None:
        response = await auth_client.get("/auth", headers=READ_ITEMS)
        assert parsedate_to_datetime(response.headers["Date"]).tzinfo is not None
        assert response.headers["Server"] == ""


async def test_prepared_allows_are_bounded_and_stay_right(
    auth_client: Client, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The memo of allow headers is capped (memory: docs/performance-notes.md); past the
    cap every token still gets its own identity."""
    monkeypatch.setattr("authsvc.web.auth.MAX_PREPARED_ALLOWS", 3)
    minted = [await mint(runtime, "Reader") for _ in range(7)]
    for _ in range(2):
        for record, secret in minted:
            response = await auth_client.get("/auth", headers=asking(secret))
            assert response.headers["X-Auth-Token-Id"] == record.id
    handler = auth_client.server.runner.server.request_handler.__self__  # type: ignore[union-attr]
    assert 0 < len(handler._allows) <= 3


@pytest.mark.parametrize(
    "description",
    [
        pytest.param({"X-Original-URI": "/api/v1/items/../admin"}, id="bad-path"),
        pytest.param({"X-Original-Method": "get"}, id="bad-method"),
        pytest.param({"X-Original-URI": ""}, id="no-target"),
    ],
)
async def test_a_malformed_secret_is_refused_before_the_request_description(
    auth_client: Client, runtime: Runtime, description: dict[str, str]
) -> None:
    """Rule 2 (a well-formed secret) comes before rule 3 (a usable description), also now
    that the checksum is verified after the cache: a token-shaped secret with a wrong
    checksum is 401 malformed_token whatever the description holds."""
    _, secret = await mint(runtime, "Reader")
    wrong = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    response = await auth_client.get("/auth", headers=asking(wrong, **description))
    assert (response.status, response.headers["X-Auth-Reason"]) == (401, "malformed_token")
