"""Property: explaining a decision never disagrees with the decision (docs/admin-api.md,
``POST /admin/v1/explain``).

Two levels. On the pure rules, for generated records, policies, filters, requests and
addresses, ``explain()`` reports the reason ``describe()`` + ``decide()`` give. Through both
listeners (aiohttp test clients, each store kind), for generated secrets (real, deleted,
expired, unknown, mistyped, junk), methods, targets and client addresses under changing
configurations, ``POST /admin/v1/explain`` answers the status and reason that ``GET /auth``
answers for the same request.

Run longer: ``AUTHSVC_HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest -q
tests/adversarial/test_explain_agrees.py --hypothesis-show-statistics``.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from authsvc.config import Config
from authsvc.rules.decision import AUTH_STATUS, Reason, decide
from authsvc.rules.explain import TokenFound, explain
from authsvc.rules.ipfilter import parse_client_ip
from authsvc.rules.request import Rejected, describe
from authsvc.rules.tokens import TokenRecord, new_secret
from authsvc.service.runtime import Runtime
from tests.adversarial.test_request_properties import TARGETS
from tests.factories import FrozenClock, make_config, make_record
from tests.webapp import Client, bearer, mint

NOW = 2_000_000.0
HOUR = 3600.0
PERMISSIONS = ("Reader", "Writer", "Retired", "ViewOrganizationTokens")
FILTERS = {
    "office": "allow 10.0.0.0/8\nallow 2001:db8::/32\ndeny all\n",
    "localhost": "allow 127.0.0.1\nallow ::1\ndeny all\n",
    "partial": "deny 10.9.0.0/16\nallow 10.0.0.0/8\n",  # no catch-all: default deny
}
ADDRESSES = [
    "10.1.2.3",
    "10.9.0.1",
    "127.0.0.1",
    "192.0.2.7",
    "::1",
    "2001:db8::5",
    "2001:db9::5",
    "::ffff:10.1.2.3",
    "::ffff:192.0.2.7",
    "fe80::1%eth0",
]
_VISIBLE = string.ascii_letters + string.digits + string.punctuation + " "


def mostly(common: st.SearchStrategy[str], rare: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """``common`` about four times in five, else ``rare`` (one_of alone draws its branches
    about evenly, and rare inputs would crowd out the requests that reach the token)."""
    return st.integers(0, 4).flatmap(lambda n: rare if n == 0 else common)


#: Mostly real methods, so that most requests get past the description to the token.
METHODS = mostly(
    st.sampled_from(["GET", "HEAD", "POST", "DELETE", "PUT"]),
    st.one_of(
        st.sampled_from(["get", "", "G-1", "X" * 33]), st.text(alphabet=_VISIBLE, max_size=12)
    ),
)
#: Targets a protected API sees, hostile ones included; printable ASCII only, without
#: surrounding blanks, since they travel in a header (nginx never sends anything else).
_API_PATHS = st.sampled_from(
    ["/api/v1/items", "/api/v1/items/42", "/api/v1/items/42/", "/api/%761/items/7?x=%2F"]
)
API_TARGETS = mostly(_API_PATHS, TARGETS).map(
    lambda target: "".join(c for c in target if " " <= c <= "~").strip()
)

POLICIES: list[dict[str, Any]] = [
    {},
    {"tokens_enabled": False},
    {"max_lifetime": "1h"},
    {"enforce_ip_filter": "office"},
    {"enforce_ip_filter": "partial"},
]
CATALOGS: list[dict[str, Any]] = [
    {},  # the test catalog: Reader and Writer
    {"permissions": {"Reader": {"description": "r", "endpoints": ["* /api/v1/{rest...}"]}}},
]


def _config(policy: dict[str, Any], catalog: dict[str, Any]) -> Config:
    return make_config(ip_filters=FILTERS, security_policy=policy, **catalog)


CONFIGS = [_config(policy, catalog) for policy in POLICIES for catalog in CATALOGS]

RECORDS = st.builds(
    lambda permissions, ip_filter, age, lifetime: make_record(
        permissions=frozenset(permissions),
        ip_filter=ip_filter,
        created_at=NOW - age,
        expires_at=None if lifetime is None else NOW - age + lifetime,
    ),
    st.sets(st.sampled_from(PERMISSIONS), min_size=1),
    st.sampled_from([None, "office", "localhost", "partial", "vanished"]),
    st.sampled_from([0.0, 60.0, HOUR, 2 * HOUR]),
    st.sampled_from([None, 1.0, 60.0, HOUR, HOUR + 60.0, 3 * HOUR]),
)


class TestPureRules:
    @given(
        RECORDS,
        st.sampled_from(CONFIGS),
        METHODS,
        API_TARGETS,
        st.sampled_from([None, *ADDRESSES]),
    )
    def test_explain_reports_the_decision(
        self,
        record: TokenRecord,
        config: Config,
        method: str,
        uri: str,
        address: str | None,
    ) -> None:
        """explain() answers what describe() and decide() answer, for any record, policy,
        filter, request and address; with no address, exactly as if no filter passed."""
        client = None if address is None else parse_client_ip(address)
        explanation = explain(
            TokenFound(record, "given"),
            method=method,
            uri=uri,
            client_ip=client,
            config=config,
            now=NOW,
        )
        described = describe(
            method, uri, address or "192.0.2.1", "127.0.0.1", config.trusted_proxies
        )
        if isinstance(described, Rejected):
            assert explanation.reason.value == described.reason
        elif address is not None:
            assert explanation.reason is decide(record, described, config, NOW)
        else:
            # no address: the same as an address that every filter denies
            filter_name = config.policy.enforce_ip_filter or record.ip_filter
            fenced = decide(record, described, config, NOW)
            if filter_name is not None and fenced in (Reason.OK, Reason.PERMISSION_DENIED):
                fenced = Reason.IP_NOT_ALLOWED
            assert explanation.reason is fenced
        assert explanation.status == AUTH_STATUS[explanation.reason]
        event(f"reason: {explanation.reason.value}")
        failed = [check for check in explanation.checks if not check.passed]
        assert (explanation.reason is Reason.OK) == (not failed)


@dataclass(frozen=True, slots=True)
class Population:
    """Tokens of every kind on one runtime, and the secrets that name none."""

    by_secret: dict[str, str | None]  # secret → the token id explained alike, or None
    configs: list[Config]


@pytest.fixture
async def population(runtime: Runtime, clock: FrozenClock, tmp_path: Path) -> Population:
    """Live, expiring, expired, deleted and rotated tokens, and configurations to switch
    between (each keeps the admin client, 127.0.0.1, able to ask)."""
    configs = [
        make_config(tmp_path, **{"ip_filters": FILTERS, **override})
        for override in (
            {},
            {"security_policy": {"enforce_ip_filter": "localhost"}},
            {"ip_filters": {"localhost": FILTERS["localhost"], "partial": FILTERS["partial"]}},
            {"permissions": {"Writer": {"description": "w", "endpoints": ["GET /api/v1/{x...}"]}}},
        )
    ]
    runtime.live.current = configs[0]
    made: dict[str, str | None] = {}
    for permissions, ip_filter, expires_in in [
        (("Reader",), None, None),
        (("Writer",), "office", None),
        (("Reader", "Writer"), "localhost", "1h"),
        (("Reader",), "partial", "1m"),  # expired once the clock moves on
    ]:
        record, secret = await mint(
            runtime, *permissions, ip_filter=ip_filter, expires_in=expires_in
        )
        made[secret] = record.id
    record, secret = await mint(runtime, "Reader")
    await runtime.service.delete(actor="cli", client=None, token_id=record.id)
    made[secret] = None
    # rotated with a grace: the previous secret works until the grace ends or the new
    # secret is first used (which the examples do, in some order)
    for grace in ("1h", "1m"):  # the second one is over once the clock moves on
        record, previous = await mint(runtime, "Reader", "Writer")
        _, current = await runtime.service.rotate(
            actor="cli", client=None, token_id=record.id, grace=grace
        )
        made[current] = record.id
        made[previous] = None  # by id, the token is explained, not this secret of it
    clock.advance(120)
    good = new_secret()
    made[good[:-6] + ("000000" if good[-6:] != "000000" else "000001")] = None  # checksum
    made[new_secret()] = None  # well formed, unknown
    return Population(made, configs)


@dataclass(frozen=True, slots=True)
class Rig:
    runtime: Runtime
    admin: Client
    auth: Client
    admin_secret: str


@pytest.fixture
def rig(runtime: Runtime, admin_client: Client, auth_client: Client, admin_secret: str) -> Rig:
    return Rig(runtime, admin_client, auth_client, admin_secret)


JUNK_SECRETS = st.one_of(
    st.sampled_from(["", "junk", "authsvc_", "Bearer", new_secret()[:-1]]),
    st.text(alphabet=string.ascii_letters + string.digits + "_-.", max_size=60),
)


class TestThroughBothListeners:
    @settings(
        max_examples=max(30, settings().max_examples // 3),
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(data=st.data())
    async def test_explain_answers_what_auth_answers(
        self, rig: Rig, population: Population, data: st.DataObject
    ) -> None:
        """For any secret, method, target and client address, under any of several
        configurations, explain's status and reason are GET /auth's (and by id too)."""
        config = data.draw(st.sampled_from(population.configs), label="config")
        rig.runtime.live.current = config
        known = st.sampled_from(sorted(population.by_secret))
        secret = data.draw(mostly(known, JUNK_SECRETS), label="secret")
        method = data.draw(METHODS, label="method")
        uri = data.draw(API_TARGETS, label="uri")
        address = data.draw(st.sampled_from(ADDRESSES), label="address")
        response = await rig.auth.get(
            "/auth",
            headers={
                **bearer(secret),
                "X-Original-Method": method,
                "X-Original-URI": uri,
                "X-Real-IP": address,
            },
        )
        expected = (response.status, response.headers["X-Auth-Reason"])
        event(f"/auth: {expected[1]}")  # --hypothesis-show-statistics shows the spread
        subjects: list[dict[str, str]] = [{"token": secret}]
        token_id = population.by_secret.get(secret)
        if token_id is not None:
            subjects.append({"token_id": token_id})
        for subject in subjects:
            reply = await rig.admin.post(
                "/admin/v1/explain",
                json={**subject, "method": method, "uri": uri, "ip": address},
                headers=bearer(rig.admin_secret),
            )
            assert reply.status == 200, await reply.text()
            body = await reply.json()
            assert (body["status"], body["reason"]) == expected, subject
