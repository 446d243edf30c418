"""What a configuration reload changes, for the audit trail and the log (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from authsvc.config import CacheSettings, Config
from authsvc.rules.ipfilter import NetworkSet
from authsvc.rules.ratelimit import RateLimit

#: Keys read once at start-up; a change is reported and otherwise ignored.
RESTART_KEYS = ("listen", "store", "secret_key_file", "audit_log", "rate_limits")
_POLICY_FIELDS = (
    "tokens_enabled",
    "max_lifetime_text",
    "enforce_ip_filter",
    "allow_permission_updates",
    "max_rate_limit",
)


@dataclass(frozen=True, slots=True)
class ConfigChanges:
    """A reload's effect, as plain data for a JSON audit record."""

    policy: dict[str, dict[str, Any]] = field(default_factory=dict)
    permissions: dict[str, list[str]] = field(default_factory=dict)
    ip_filters: dict[str, list[str]] = field(default_factory=dict)
    cache: dict[str, dict[str, Any]] = field(default_factory=dict)
    trusted_proxies: dict[str, list[str]] = field(default_factory=dict)
    admin_trusted_proxies: dict[str, list[str]] = field(default_factory=dict)
    needs_restart: list[str] = field(default_factory=list)

    def as_details(self) -> dict[str, Any]:
        return {key: value for key, value in _fields(self).items() if value}

    @property
    def empty(self) -> bool:
        return not self.as_details()


def _fields(changes: ConfigChanges) -> dict[str, Any]:
    return {name: getattr(changes, name) for name in ConfigChanges.__slots__}


def _named(old: Mapping[str, Any], new: Mapping[str, Any], key: Any) -> dict[str, list[str]]:
    """added / removed / changed names between two mappings, compared by ``key``."""
    result = {
        "added": sorted(set(new) - set(old)),
        "removed": sorted(set(old) - set(new)),
        "changed": sorted(n for n in set(old) & set(new) if key(old[n]) != key(new[n])),
    }
    return {kind: names for kind, names in result.items() if names}


def _proxies(old: NetworkSet, new: NetworkSet) -> dict[str, list[str]]:
    """{"from", "to"} as written when the list changed, else nothing."""
    if old.texts == new.texts:
        return {}
    return {"from": list(old.texts), "to": list(new.texts)}


def _written(value: Any) -> Any:
    """A policy value as the file writes it (a rate limit as ``600/m``): audit records are
    JSON."""
    return value.text if isinstance(value, RateLimit) else value


def diff(old: Config, new: Config) -> ConfigChanges:
    """Every difference a reload applies, plus the restart-only keys that differ."""
    policy = {
        name: {
            "from": _written(getattr(old.policy, name)),
            "to": _written(getattr(new.policy, name)),
        }
        for name in _POLICY_FIELDS
        if getattr(old.policy, name) != getattr(new.policy, name)
    }
    cache = {
        name: {"from": getattr(old.cache, name), "to": getattr(new.cache, name)}
        for name in CacheSettings.__slots__
        if getattr(old.cache, name) != getattr(new.cache, name)
    }
    return ConfigChanges(
        policy=policy,
        permissions=_named(
            old.permissions,
            new.permissions,
            lambda p: (p.description, tuple(e.text for e in p.endpoints)),
        ),
        ip_filters=_named(old.ip_filters, new.ip_filters, lambda f: f.rules),
        cache=cache,
        trusted_proxies=_proxies(old.trusted_proxies, new.trusted_proxies),
        admin_trusted_proxies=_proxies(old.admin_trusted_proxies, new.admin_trusted_proxies),
        needs_restart=[key for key in RESTART_KEYS if getattr(old, key) != getattr(new, key)],
    )


def keep_restart_keys(old: Config, new: Config) -> Config:
    """``new`` with the start-up-only keys of ``old``: those need a restart to change."""
    return replace(new, **{key: getattr(old, key) for key in RESTART_KEYS})
