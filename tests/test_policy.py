"""Issuance under the security policy (SPEC §4), shared by the admin API and the CLI."""

from __future__ import annotations

from typing import Any

import pytest

from authsvc.rules import policy
from authsvc.rules.policy import Refused
from tests.factories import make_config


def create(config_policy: dict[str, Any] | None = None, **request: Any) -> policy.Issuance:
    config = make_config(security_policy=config_policy or {})
    fields: dict[str, Any] = {
        "name": "deploys",
        "permissions": ["Reader"],
        "expires_in": None,
        "ip_filter": None,
    }
    fields.update(request)
    return policy.check_create(config, **fields)


class TestCreate:
    def test_defaults_allow_no_expiry_and_no_filter(self) -> None:
        """Without max_lifetime, expiry is optional."""
        issued = create()
        assert issued.expires_in is None
        assert issued.ip_filter is None
        assert issued.permissions == frozenset({"Reader"})

    @pytest.mark.parametrize(
        ("config_policy", "request_fields", "code", "field"),
        [
            pytest.param({"tokens_enabled": False}, {}, "tokens_disabled", None, id="tokens-off"),
            pytest.param(
                {"max_lifetime": "90d"}, {}, "expiry_required", "expires_in", id="expiry-required"
            ),
            pytest.param(
                {"max_lifetime": "90d"},
                {"expires_in": "91d"},
                "expiry_too_long",
                "expires_in",
                id="too-long",
            ),
            pytest.param(
                {"max_lifetime": "1h"},
                {"expires_in": "61m"},
                "expiry_too_long",
                "expires_in",
                id="too-long-other-unit",
            ),
            pytest.param(
                {}, {"expires_in": "30s"}, "invalid_expiry", "expires_in", id="seconds-not-allowed"
            ),
            pytest.param({}, {"expires_in": "0d"}, "invalid_expiry", "expires_in", id="zero"),
            pytest.param({}, {"expires_in": "-1d"}, "invalid_expiry", "expires_in", id="negative"),
            pytest.param({}, {"expires_in": "1.5d"}, "invalid_expiry", "expires_in", id="fraction"),
            pytest.param(
                {"enforce_ip_filter": "office"},
                {"ip_filter": "localhost"},
                "ip_filter_enforced",
                "ip_filter",
                id="other-filter-than-enforced",
            ),
            pytest.param(
                {}, {"ip_filter": "nope"}, "unknown_ip_filter", "ip_filter", id="unknown-filter"
            ),
            pytest.param(
                {},
                {"permissions": ["Nope"]},
                "unknown_permission",
                "permissions",
                id="unknown-perm",
            ),
            pytest.param(
                {}, {"permissions": []}, "invalid_permissions", "permissions", id="no-permissions"
            ),
            pytest.param({}, {"name": ""}, "invalid_name", "name", id="empty-name"),
            pytest.param({}, {"name": "x" * 101}, "invalid_name", "name", id="name-too-long"),
            pytest.param({}, {"name": "a\nb"}, "invalid_name", "name", id="name-newline"),
            pytest.param({}, {"name": "a\u202eb"}, "invalid_name", "name", id="name-bidi-control"),
            pytest.param({}, {"name": " padded"}, "invalid_name", "name", id="name-whitespace"),
        ],
    )
    def test_refusals(
        self,
        config_policy: dict[str, Any],
        request_fields: dict[str, Any],
        code: str,
        field: str | None,
    ) -> None:
        """Each issuance rule refuses with its documented code and the request field at
        fault (None for tokens switched off, which is about no one field)."""
        with pytest.raises(Refused) as caught:
            create(config_policy, **request_fields)
        assert caught.value.code == code
        assert caught.value.message
        assert caught.value.field == field

    def test_expiry_within_max_lifetime(self) -> None:
        """An expiry up to the maximum is accepted, in any of m, h, d."""
        assert create({"max_lifetime": "90d"}, expires_in="90d").expires_in == 90 * 86400
        assert create({"max_lifetime": "1h"}, expires_in="60m").expires_in == 3600

    def test_enforced_filter_is_applied(self) -> None:
        """With an enforced filter the token gets it, asked for or not."""
        assert create({"enforce_ip_filter": "office"}).ip_filter == "office"
        assert create({"enforce_ip_filter": "office"}, ip_filter="office").ip_filter == "office"

    def test_unicode_names_are_allowed(self) -> None:
        """Names are 1–100 printable characters of any script."""
        assert create(name="Gödel’s Zähler 🔑").name == "Gödel’s Zähler 🔑"
        assert create(name="x" * 100).name == "x" * 100


class TestPermissionUpdate:
    def test_updates_disabled(self) -> None:
        """allow_permission_updates: false refuses PATCH."""
        config = make_config(security_policy={"allow_permission_updates": False})
        with pytest.raises(Refused) as caught:
            policy.check_permission_update(config, ["Reader"])
        assert caught.value.code == "permission_updates_disabled"
        assert caught.value.field is None

    def test_update_validates_names(self) -> None:
        """Updated permissions must exist in the catalog."""
        with pytest.raises(Refused) as caught:
            policy.check_permission_update(make_config(), ["Reader", "Ghost"])
        assert caught.value.code == "unknown_permission"
        assert caught.value.field == "permissions"
        assert policy.check_permission_update(make_config(), ["Writer"]) == frozenset({"Writer"})
