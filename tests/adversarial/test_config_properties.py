"""Property tests of the configuration loader (authsvc.config.load.parse_config): a file cut
short never loosens the policy (SECURITY 28), and no input makes anything but
ConfigError escape.

Run longer: ``AUTHSVC_HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest -q
tests/adversarial/test_config_properties.py --hypothesis-show-statistics``.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from authsvc.config import Config
from authsvc.config.errors import ConfigError
from authsvc.config.load import parse_config
from tests.factories import config_document

PATH = Path("/nonexistent-authsvc-test/authsvc.yaml")
# Filter names that YAML reads as something else once cut short: null, false, true.
_FILTERS = {
    "office": "allow 10.0.0.0/8\nallow 2001:db8::/32\ndeny all\n",
    "nullzone": "deny 10.1.0.0/16\nallow 128.0.0.0/16\n",
    "offsite": "allow 192.0.2.128/25\n",
    "yes-men": "allow 203.0.113.0/24\ndeny all\n",
    "truebox": "allow 2001:db8:1::/48\n",
}
_POLICY_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "tokens_enabled": st.booleans(),
    "max_lifetime": st.sampled_from([None, "90d", "30m", "12h", "7d"]),
    "enforce_ip_filter": st.sampled_from([None, *_FILTERS]),
    "allow_permission_updates": st.booleans(),
    "max_rate_limit": st.sampled_from([None, "600/m", "5/s", "10/h"]),
}


@st.composite
def documents(draw: st.DrawFn) -> str:
    """A valid configuration file: random policy values, sections and policy keys in a
    random order, filters whose names YAML reads differently when cut."""
    data = config_document(
        permissions={"Reader": {"endpoints": ["GET /api/v1/items", "GET /api/v1/items/{id}"]}},
        ip_filters=dict(_FILTERS),
        trusted_proxies=draw(st.sampled_from([[], ["127.0.0.1/32", "128.0.0.0/16"]])),
        security_policy={key: draw(values) for key, values in _POLICY_VALUES.items()},
    )
    policy = data["security_policy"]
    data["security_policy"] = dict(draw(st.permutations(list(policy.items()))))
    data = dict(draw(st.permutations(list(data.items()))))
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def _within(inner: str, outer: str) -> bool:
    """The rule target ``inner`` covers no address that ``outer`` does not."""
    if outer == "all":
        return True
    if inner == "all":
        return False
    small, big = ipaddress.ip_network(inner), ipaddress.ip_network(outer)
    return small.version == big.version and small.subnet_of(big)  # type: ignore[arg-type]


def _policy_looser(cut: Config, full: Config) -> list[str]:
    found: list[str] = []
    new, old = cut.policy, full.policy
    if new.tokens_enabled and not old.tokens_enabled:
        found.append("tokens switched back on")
    if old.max_lifetime is not None and (
        new.max_lifetime is None or new.max_lifetime > old.max_lifetime
    ):
        found.append(f"max_lifetime {old.max_lifetime_text} became {new.max_lifetime_text}")
    if old.enforce_ip_filter is not None and new.enforce_ip_filter != old.enforce_ip_filter:
        found.append(f"enforce_ip_filter {old.enforce_ip_filter} became {new.enforce_ip_filter}")
    if new.allow_permission_updates and not old.allow_permission_updates:
        found.append("permission updates allowed again")
    if old.max_rate_limit is not None and (
        new.max_rate_limit is None or new.max_rate_limit.rate > old.max_rate_limit.rate
    ):
        found.append(f"max_rate_limit {old.max_rate_limit.text} became looser")
    return found


def _catalog_looser(cut: Config, full: Config) -> list[str]:
    found: list[str] = []
    for name, permission in cut.permissions.items():
        before = full.permissions.get(name)
        granted = {e.text for e in before.endpoints} if before is not None else set()
        extra = {e.text for e in permission.endpoints} - granted
        if extra:
            found.append(f"permission {name} grants {sorted(extra)}")
    return found


def _filters_looser(cut: Config, full: Config) -> list[str]:
    """A filter may lose rules at its end (no rule matching denies); a rule that changed
    may only be a deny or an allow of part of what it allowed."""
    found: list[str] = []
    for name, compiled in cut.ip_filters.items():
        before = full.ip_filters[name].rules if name in full.ip_filters else ()
        for index, rule in enumerate(compiled.rules):
            old = before[index] if index < len(before) else "deny all"
            verb, _, target = rule.partition(" ")
            old_verb, _, old_target = old.partition(" ")
            if (
                rule != old
                and verb == "allow"
                and (old_verb != "allow" or not _within(target, old_target))
            ):
                found.append(f"filter {name} rule {index + 1} {old!r} became {rule!r}")
    return found


def _trust_looser(cut: Config, full: Config) -> list[str]:
    found: list[str] = []
    for key in ("trusted_proxies", "admin_trusted_proxies"):
        trusted = getattr(full, key).texts
        for entry in getattr(cut, key).texts:
            if not any(_within(entry, t) for t in trusted):
                found.append(f"{key} trusts {entry}")
    return found


def looser(cut: Config, full: Config) -> list[str]:
    """Every way in which ``cut`` lets in someone or something ``full`` does not."""
    return [
        *_policy_looser(cut, full),
        *_catalog_looser(cut, full),
        *_filters_looser(cut, full),
        *_trust_looser(cut, full),
    ]


class TestTruncation:
    # Every prefix of every file is parsed: few files, and no shrinking (the message shows
    # the cut already).
    @settings(
        max_examples=max(8, settings().max_examples // 30),
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
    )
    @given(documents())
    def test_a_file_cut_short_never_loosens_anything(self, text: str) -> None:
        """Every prefix of a valid file is refused, or loads as a configuration that
        lets in nothing the whole file does not (SECURITY 28)."""
        full = parse_config(text, PATH)
        for end in range(len(text)):
            try:
                cut = parse_config(text[:end], PATH)
            except ConfigError:
                continue
            problems = looser(cut, full)
            assert not problems, f"cut after {text[:end][-60:]!r}: {problems}"

    @pytest.mark.parametrize(
        "key",
        [
            pytest.param("enforce_ip_filter", id="filter"),
            pytest.param("max_lifetime", id="lifetime"),
        ],
    )
    def test_a_policy_key_cut_after_its_colon_is_refused(self, key: str) -> None:
        """A file that ends in ``key:`` (its value lost) is refused, not read as null."""
        data = config_document(
            security_policy={"enforce_ip_filter": "office", "max_lifetime": "90d"}
        )
        policy = data.pop("security_policy")
        data["security_policy"] = {k: v for k, v in policy.items() if k != key} | {key: policy[key]}
        text = yaml.safe_dump(data, sort_keys=False)
        cut = text[: text.rindex(f"{key}:") + len(key) + 1]
        with pytest.raises(ConfigError):
            parse_config(cut, PATH)


_FRAGMENTS = [
    *(
        "permissions:",
        "ip_filters:",
        "security_policy:",
        "trusted_proxies:",
        "admin_trusted_proxies:",
    ),
    *("\n", "\n  ", "\n    ", "- ", ": ", "A", "endpoints", "GET /a/{id}", "allow all", "null"),
    *("[", "]", "{", "}", ",", "&x ", "*x", "!!python/object:os.system", "!!binary", "|", ">"),
    *("'", '"', "#", "~", "<<: *x", "---", "...", "%YAML 1.1", "\t", "\x00", "\ufeff", "é"),
]


class TestAnyText:
    @given(st.lists(st.sampled_from(_FRAGMENTS), max_size=40).map("".join))
    def test_yaml_like_text_is_a_config_or_a_config_error(self, text: str) -> None:
        """Text made of YAML's moving parts loads or raises ConfigError, nothing else."""
        try:
            parse_config(text, PATH)
        except ConfigError as error:
            errors = error.errors
        else:
            return
        assert errors, text
        assert all(isinstance(e, str) and e for e in errors), errors

    @pytest.mark.parametrize(
        "text",
        [
            pytest.param("[" * 2000, id="flow-sequences"),
            pytest.param("a: " + "{a: " * 2000, id="flow-mappings"),
            pytest.param("- " * 2000, id="block-sequences"),
            pytest.param("permissions:\n  A:\n    endpoints: " + "[" * 2000, id="inside-a-section"),
        ],
    )
    def test_deep_nesting_is_a_config_error(self, text: str) -> None:
        """A file nested thousands deep is refused with ConfigError (a bad file must
        never stop the service with a traceback, nor a reload with an unknown error)."""
        with pytest.raises(ConfigError):
            parse_config(text, PATH)
