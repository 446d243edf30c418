"""Delegation bounds (SPEC §10, SECURITY 26) as pure rules: what a calling admin token can
hand on when it creates, changes or rotates a token."""

from __future__ import annotations

from typing import Any

import pytest

from authsvc.rules import delegation
from authsvc.rules.policy import Issuance, Refused
from tests.factories import make_config, make_record

MANAGE = "ManageOrganizationTokens"
VIEW = "ViewOrganizationTokens"
NOW = 1_750_000_000.0
DAY = 86400
#: A calling admin token that holds Manage and Reader, with no expiry and no filter.
ADMIN: dict[str, Any] = {"permissions": frozenset({MANAGE, "Reader"})}


def actor(**fields: Any) -> Any:
    """The calling token: ``ADMIN`` with ``fields`` replaced."""
    return make_record(**{"id": "tok_00000000000000ad", **ADMIN, **fields})


def target(**fields: Any) -> Any:
    """The token acted upon: a Reader token without expiry or filter, ``fields`` replaced."""
    return make_record(**{"id": "tok_00000000000000bb", **fields})


def issuance(**fields: Any) -> Issuance:
    """A create request as the policy's rules pass it on."""
    values: dict[str, Any] = {
        "name": "new",
        "permissions": frozenset({"Reader"}),
        "expires_in": None,
        "ip_filter": None,
        **fields,
    }
    return Issuance(**values)


def refusal(call: Any, *args: Any) -> Refused:
    """The refusal ``call(*args)`` raises."""
    with pytest.raises(Refused) as caught:
        call(*args)
    return caught.value


class TestHeld:
    """What a token can hand on."""

    @pytest.mark.parametrize(
        ("held", "can_grant"),
        [
            pytest.param({MANAGE}, {MANAGE, VIEW}, id="manage-includes-view"),
            pytest.param({VIEW}, {VIEW}, id="view-alone"),
            pytest.param({"Reader"}, {"Reader"}, id="catalog-permission"),
            pytest.param({MANAGE, "Writer"}, {MANAGE, VIEW, "Writer"}, id="manage-and-more"),
        ],
    )
    def test_held_permissions(self, held: set[str], can_grant: set[str]) -> None:
        """A token holds its own permissions; ManageOrganizationTokens includes View."""
        assert delegation.held_permissions(actor(permissions=frozenset(held))) == can_grant


# (calling token's fields, security_policy, create request fields, the field at fault, or
# None when the request is within bounds)
CREATE = [
    pytest.param({}, {}, {}, None, id="held-permission"),
    pytest.param({}, {}, {"permissions": frozenset({VIEW})}, None, id="view-through-manage"),
    pytest.param({}, {}, {"permissions": frozenset({MANAGE})}, None, id="manage-itself"),
    pytest.param(
        {}, {}, {"permissions": frozenset({"Writer"})}, "permissions", id="permission-not-held"
    ),
    pytest.param(
        {},
        {},
        {"permissions": frozenset({"Reader", "Writer"})},
        "permissions",
        id="one-of-several-not-held",
    ),
    pytest.param(
        {"permissions": frozenset({VIEW, "Reader"})},
        {},
        {"permissions": frozenset({MANAGE})},
        "permissions",
        id="view-does-not-include-manage",
    ),
    pytest.param({"expires_at": NOW + 10 * DAY}, {}, {}, "expires_in", id="never-expiring"),
    pytest.param(
        {"expires_at": NOW + 10 * DAY},
        {},
        {"expires_in": 11 * DAY},
        "expires_in",
        id="expires-after-caller",
    ),
    pytest.param(
        {"expires_at": NOW + 10 * DAY},
        {},
        {"expires_in": 10 * DAY + 1},
        "expires_in",
        id="one-second-after-caller",
    ),
    pytest.param(
        {"expires_at": NOW + 10 * DAY},
        {},
        {"expires_in": 10 * DAY},
        None,
        id="expires-with-caller",
    ),
    pytest.param(
        {"expires_at": NOW + 10 * DAY}, {}, {"expires_in": 60}, None, id="expires-before-caller"
    ),
    pytest.param(
        {"created_at": NOW - 29 * DAY},
        {"max_lifetime": "30d"},
        {"expires_in": 30 * DAY},
        None,
        id="max-lifetime-not-compared",
    ),
    pytest.param({}, {}, {"ip_filter": "office"}, None, id="unfiltered-caller-any-filter"),
    pytest.param({"ip_filter": "office"}, {}, {"ip_filter": "office"}, None, id="same-filter"),
    pytest.param(
        {"ip_filter": "office"}, {}, {"ip_filter": "localhost"}, "ip_filter", id="other-filter"
    ),
    pytest.param(
        {"ip_filter": "office"},
        {"enforce_ip_filter": "localhost"},
        {"ip_filter": "localhost"},
        None,
        id="enforced-filter-not-compared",
    ),
]


class TestCreate:
    """Create: permissions, expiry and IP filter within the caller's."""

    @pytest.mark.parametrize(("caller", "policy", "request_fields", "field"), CREATE)
    def test_bounds(
        self,
        caller: dict[str, Any],
        policy: dict[str, Any],
        request_fields: dict[str, Any],
        field: str | None,
    ) -> None:
        """A request within the caller's reach passes; one beyond it is refused with
        exceeds_caller at the input at fault."""
        config = make_config(security_policy=policy)
        asked = issuance(**request_fields)
        call = (delegation.bound_create, actor(**caller), asked, config.policy, NOW)
        if field is None:
            assert delegation.bound_create(*call[1:]).permissions == asked.permissions
            return
        refused = refusal(*call)
        assert (refused.code, refused.field) == ("exceeds_caller", field)

    @pytest.mark.parametrize(
        ("request_fields", "named"),
        [
            pytest.param({"permissions": frozenset({"Writer", "Reader"})}, "Writer", id="perm"),
            pytest.param({"expires_in": 11 * DAY}, "2025-06-25T15:06:40Z", id="expiry"),
            pytest.param({"ip_filter": "localhost"}, "'office'", id="filter"),
        ],
    )
    def test_the_message_names_what_exceeds(
        self, request_fields: dict[str, Any], named: str
    ) -> None:
        """The message names the permission, the caller's expiry or the caller's filter."""
        caller = actor(expires_at=NOW + 10 * DAY, ip_filter="office")
        asked = issuance(**{"expires_in": DAY, **request_fields})
        policy = make_config().policy
        refused = refusal(delegation.bound_create, caller, asked, policy, NOW)
        assert named in refused.message

    @pytest.mark.parametrize(
        ("caller_filter", "policy", "asked", "given"),
        [
            pytest.param("office", {}, None, "office", id="caller-filter-inherited"),
            pytest.param("office", {}, "office", "office", id="caller-filter-asked"),
            pytest.param(None, {}, None, None, id="no-filter-to-inherit"),
            pytest.param(None, {}, "office", "office", id="unfiltered-caller-chooses"),
            pytest.param(
                "office",
                {"enforce_ip_filter": "localhost"},
                "localhost",
                "localhost",
                id="enforced-filter-kept",
            ),
        ],
    )
    def test_the_filter_given(
        self,
        caller_filter: str | None,
        policy: dict[str, Any],
        asked: str | None,
        given: str | None,
    ) -> None:
        """Without an enforced filter, a filtered caller's tokens get its filter."""
        config = make_config(security_policy=policy)
        bounded = delegation.bound_create(
            actor(ip_filter=caller_filter), issuance(ip_filter=asked), config.policy, NOW
        )
        assert bounded.ip_filter == given


# (calling token's permissions, target's permissions, new permissions, the field at
# fault (None: the target itself is beyond the caller), or "ok")
UPDATE = [
    pytest.param({MANAGE, "Reader"}, {"Reader"}, {"Reader"}, "ok", id="unchanged"),
    pytest.param({MANAGE, "Reader"}, {"Reader"}, {VIEW}, "ok", id="narrowed-to-view"),
    pytest.param({MANAGE}, {VIEW}, {MANAGE}, "ok", id="view-to-manage"),
    pytest.param({MANAGE, "Reader"}, {"Reader"}, {"Writer"}, "permissions", id="widened"),
    pytest.param(
        {MANAGE, "Reader"}, {"Reader"}, {"Reader", "Writer"}, "permissions", id="one-added"
    ),
    pytest.param({MANAGE, "Reader"}, {"Writer"}, {"Reader"}, None, id="target-beyond"),
    pytest.param(
        {MANAGE, "Reader"}, {"Reader", "Gone"}, {"Reader"}, None, id="target-holds-stale-name"
    ),
    pytest.param({MANAGE}, {MANAGE, "Reader"}, {MANAGE}, None, id="narrowing-a-stronger-one"),
]


class TestUpdate:
    """PATCH: the target's current permissions and the new set within the caller's."""

    @pytest.mark.parametrize(("held", "current", "new", "field"), UPDATE)
    def test_bounds(
        self, held: set[str], current: set[str], new: set[str], field: str | None
    ) -> None:
        """Within bounds passes; beyond them is exceeds_caller, at permissions only when
        the new set is at fault."""
        caller = actor(permissions=frozenset(held))
        changed = target(permissions=frozenset(current))
        if field == "ok":
            delegation.bound_update(caller, changed, new)
            return
        refused = refusal(delegation.bound_update, caller, changed, new)
        assert (refused.code, refused.field) == ("exceeds_caller", field)
        assert sorted(set(current) - held or set(new) - held)[0] in refused.message


# (calling token's fields, security_policy, target's fields, within the caller's reach)
ROTATE = [
    pytest.param({}, {}, {}, True, id="within"),
    pytest.param({}, {}, {"permissions": frozenset({VIEW})}, True, id="view-through-manage"),
    pytest.param({}, {}, {"permissions": frozenset({"Writer"})}, False, id="permission-beyond"),
    pytest.param({"expires_at": NOW}, {}, {"expires_at": None}, False, id="never-expiring"),
    pytest.param({"expires_at": NOW}, {}, {"expires_at": NOW + 1}, False, id="expires-later"),
    pytest.param({"expires_at": NOW}, {}, {"expires_at": NOW}, True, id="expires-together"),
    pytest.param({}, {}, {"expires_at": NOW}, True, id="unexpiring-caller"),
    pytest.param({"ip_filter": "office"}, {}, {"ip_filter": None}, False, id="unfiltered"),
    pytest.param({"ip_filter": "office"}, {}, {"ip_filter": "localhost"}, False, id="other"),
    pytest.param({"ip_filter": "office"}, {}, {"ip_filter": "office"}, True, id="same-filter"),
    pytest.param({}, {}, {"ip_filter": "office"}, True, id="unfiltered-caller"),
    pytest.param(
        {"ip_filter": "office"},
        {"enforce_ip_filter": "localhost"},
        {"ip_filter": None},
        True,
        id="enforced-filter-not-compared",
    ),
]


class TestRotate:
    """Rotate: the target within the caller's reach as if it were creating it."""

    @pytest.mark.parametrize(("caller", "policy", "target_fields", "within"), ROTATE)
    def test_bounds(
        self,
        caller: dict[str, Any],
        policy: dict[str, Any],
        target_fields: dict[str, Any],
        within: bool,
    ) -> None:
        """Within reach passes; beyond it is exceeds_caller, with no field (the request
        names no input)."""
        args = (
            actor(**caller),
            target(**target_fields),
            make_config(security_policy=policy).policy,
        )
        if within:
            delegation.bound_rotate(*args)
            return
        refused = refusal(delegation.bound_rotate, *args)
        assert (refused.code, refused.field) == ("exceeds_caller", None)
        assert refused.message

    def test_a_token_may_rotate_itself(self) -> None:
        """Every token lies within its own reach, expiry and filter included."""
        caller = actor(expires_at=NOW + DAY, ip_filter="office")
        delegation.bound_rotate(caller, caller, make_config().policy)
