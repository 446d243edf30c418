"""The sections that decide who gets in must be written out (SPEC §1): a file that lacks
one, cut short or from an older release, is an error naming it, never a looser default.
Also what a reload reports of the keys this adds (``admin_trusted_proxies`` and
``cache.unknown_lookups_per_second``, both live)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from authsvc.config import ConfigError
from authsvc.config.diff import diff
from authsvc.config.load import parse_config
from tests.factories import make_config

FILE = Path("/srv/authsvc/authsvc.yaml")

#: A complete file, one part per required key; the line of each part in the comment.
PARTS = {
    "trusted_proxies": "trusted_proxies: [127.0.0.1/32]\n",  # 1
    "admin_trusted_proxies": "admin_trusted_proxies: []\n",  # 2
    "permissions": "permissions:\n  Reader:\n    endpoints: [GET /x]\n",  # 3-5
    "ip_filters": "ip_filters: {}\n",  # 6
    "security_policy": "security_policy:\n",  # 7
    "tokens_enabled": "  tokens_enabled: true\n",  # 8
    "max_lifetime": "  max_lifetime: null\n",  # 9
    "enforce_ip_filter": "  enforce_ip_filter: null\n",  # 10
    "allow_permission_updates": "  allow_permission_updates: true\n",  # 11
    "max_rate_limit": "  max_rate_limit: null\n",  # 12
}
POLICY_KEYS = (
    "tokens_enabled",
    "max_lifetime",
    "enforce_ip_filter",
    "allow_permission_updates",
    "max_rate_limit",
)
PROXIES = "a list of addresses and CIDR ranges ([] trusts no peer)"
WHAT = {
    "trusted_proxies": PROXIES,
    "admin_trusted_proxies": PROXIES,
    "permissions": "a mapping of at least one permission name to its endpoints",
    "ip_filters": "a mapping of filter names to rules ({} when there are none)",
    "security_policy": "a mapping with every one of tokens_enabled, max_lifetime, "
    "enforce_ip_filter, allow_permission_updates, max_rate_limit",
    "tokens_enabled": "true or false",
    "max_lifetime": "a duration such as 90d, or null for no maximum",
    "enforce_ip_filter": "a filter name, or null for none",
    "allow_permission_updates": "true or false",
    "max_rate_limit": "a limit such as 600/m, or null for no maximum",
}


def without(*keys: str) -> str:
    """The complete file less the parts of ``keys`` (a section takes its keys with it)."""
    if "security_policy" in keys:
        keys = (*keys, *POLICY_KEYS)
    return "".join(text for key, text in PARTS.items() if key not in keys)


def missing(key: str) -> str:
    """The message for ``key`` left out: top-level ones have no line, policy keys the
    line of ``security_policy:``."""
    if key in POLICY_KEYS:
        return f"{FILE}: security_policy.{key} (line 7): is required: write {WHAT[key]}"
    return f"{FILE}: {key}: is required: {WHAT[key]}"


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, FILE)
    return caught.value.errors


class TestRequired:
    def test_the_complete_file_loads(self) -> None:
        """The file with every required key (and nothing else) is valid."""
        config = parse_config(without(), FILE)
        assert config.admin_trusted_proxies.texts == ()
        assert dict(config.ip_filters) == {}

    @pytest.mark.parametrize("key", [pytest.param(key, id=key) for key in PARTS])
    def test_each_missing_key_is_named(self, key: str) -> None:
        """Leaving out any one required key is exactly one error that names it."""
        assert errors_of(without(key)) == [missing(key)]

    def test_every_missing_key_is_named_at_once(self) -> None:
        """An empty mapping names all five sections, in the file's order."""
        sections = ("trusted_proxies", "admin_trusted_proxies", "permissions", "ip_filters")
        assert errors_of("{}\n") == [missing(key) for key in (*sections, "security_policy")]

    def test_an_empty_policy_names_every_key(self) -> None:
        """``security_policy: {}`` names each of its four keys."""
        text = without("security_policy") + "security_policy: {}\n"
        assert errors_of(text) == [missing(key) for key in POLICY_KEYS]

    def test_an_older_file_names_every_key_it_must_gain(self) -> None:
        """A file written before the keys were required is refused with one error per
        key it lacks, so the upgrade is one edit."""
        old = (
            "trusted_proxies: [127.0.0.1/32]\n"
            "permissions:\n  Reader:\n    endpoints: [GET /x]\n"
            "security_policy:\n  max_lifetime: 30d\n"
        )
        assert errors_of(old) == [
            missing("admin_trusted_proxies"),
            missing("ip_filters"),
            *(
                f"{FILE}: security_policy.{key} (line 5): is required: write {WHAT[key]}"
                for key in (
                    "tokens_enabled",
                    "enforce_ip_filter",
                    "allow_permission_updates",
                    "max_rate_limit",
                )
            ),
        ]

    @pytest.mark.parametrize(
        ("key", "line"),
        [
            pytest.param("trusted_proxies", 1, id="trusted_proxies"),
            pytest.param("admin_trusted_proxies", 2, id="admin_trusted_proxies"),
            pytest.param("ip_filters", 6, id="ip_filters"),
            pytest.param("security_policy", 7, id="security_policy"),
        ],
    )
    def test_a_section_left_empty_is_not_written_out(self, key: str, line: int) -> None:
        """``key:`` with no value is an error, not the section's old default."""
        text = without() if key != "security_policy" else without(*POLICY_KEYS)
        text = text.replace(PARTS[key], f"{key}:\n")
        assert errors_of(text) == [
            f"{FILE}: {key} (line {line}): must be {WHAT[key]}, not null (an empty value)"
        ]

    @pytest.mark.parametrize(
        ("key", "empty"),
        [
            pytest.param("trusted_proxies", "[]", id="trusted_proxies"),
            pytest.param("admin_trusted_proxies", "[]", id="admin_trusted_proxies"),
            pytest.param("ip_filters", "{}", id="ip_filters"),
        ],
    )
    def test_written_empty_means_none(self, key: str, empty: str) -> None:
        """``[]`` and ``{}`` are written out: no peer trusted, no filter defined."""
        config = parse_config(without(key) + f"{key}: {empty}\n", FILE)
        assert not (config.ip_filters if key == "ip_filters" else getattr(config, key).texts)


class TestReloadDiff:
    @pytest.mark.parametrize(
        ("edit", "field", "expected"),
        [
            pytest.param(
                {"admin_trusted_proxies": ["10.0.0.5/32"]},
                "admin_trusted_proxies",
                {"from": ["127.0.0.1/32", "::1/128"], "to": ["10.0.0.5/32"]},
                id="admin_trusted_proxies",
            ),
            pytest.param(
                {"trusted_proxies": []},
                "trusted_proxies",
                {"from": ["127.0.0.1/32", "::1/128"], "to": []},
                id="trusted_proxies",
            ),
            pytest.param(
                {"cache": {"unknown_lookups_per_second": 5}},
                "cache",
                {"unknown_lookups_per_second": {"from": 50, "to": 5}},
                id="unknown_lookups_per_second",
            ),
        ],
    )
    def test_live_keys_are_reported_and_need_no_restart(
        self, edit: dict[str, Any], field: str, expected: dict[str, Any]
    ) -> None:
        """A reload's changes name the new live keys, and none of them needs a restart."""
        changes = diff(make_config(), make_config(**edit)).as_details()
        assert changes == {field: expected}
