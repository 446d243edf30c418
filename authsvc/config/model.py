"""The configuration's data: immutable, pre-compiled values (loaded by config.load)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from authsvc.rules.endpoints import EndpointTemplate, PermissionMatcher
from authsvc.rules.ipfilter import IpFilter, NetworkSet
from authsvc.rules.ratelimit import RateLimit

if TYPE_CHECKING:  # a type only: the model, read by the pure rules, touches no files
    from pathlib import Path

RESERVED_PERMISSIONS = ("ViewOrganizationTokens", "ManageOrganizationTokens")
VIEW_TOKENS = "ViewOrganizationTokens"
MANAGE_TOKENS = "ManageOrganizationTokens"


@dataclass(frozen=True, slots=True)
class ListenAddress:
    """``host:port`` (``host`` may be a bracketed IPv6 literal in the file) or ``unix:/path``."""

    host: str | None
    port: int | None
    unix_path: str | None
    text: str  # as written


@dataclass(frozen=True, slots=True)
class Listen:
    auth: ListenAddress
    admin: ListenAddress


#: ``cache.unknown_lookups_per_second`` when the file does not set it.
DEFAULT_UNKNOWN_LOOKUPS_PER_SECOND = 50


@dataclass(frozen=True, slots=True)
class CacheSettings:
    ttl: float  # seconds
    max_entries: int
    # Store lookups per second (per process) spent on well-formed tokens that turn out
    # not to exist; past it such a token is refused without a lookup.
    unknown_lookups_per_second: int = DEFAULT_UNKNOWN_LOOKUPS_PER_SECOND


@dataclass(frozen=True, slots=True)
class Permission:
    name: str
    description: str
    endpoints: tuple[EndpointTemplate, ...]  # .text is the template as written


@dataclass(frozen=True, slots=True)
class SecurityPolicy:
    tokens_enabled: bool = True
    max_lifetime: int | None = None  # seconds
    max_lifetime_text: str | None = None  # as written, e.g. "90d"
    enforce_ip_filter: str | None = None
    allow_permission_updates: bool = True
    max_rate_limit: RateLimit | None = None  # every token's limit at most this (SPEC §12)


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """``rate_limits`` (SPEC §12): where token buckets are counted; read at start-up only."""

    scope: str = "instance"  # "instance": each process alone; "cluster": shared through Redis
    # redis:// or rediss:// URL (cluster scope only). Kept out of repr: it may hold a password.
    redis: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Config:
    path: Path  # absolute path of the file this was loaded from
    listen: Listen
    trusted_proxies: NetworkSet  # peers whose X-Real-IP the auth listener believes
    admin_trusted_proxies: NetworkSet  # the same, for the admin listener
    store: str  # store URL; sqlite paths made absolute against the file's folder
    secret_key_file: Path  # absolute
    audit_log: Path  # absolute; JSON lines, appended by the service and the CLI
    cache: CacheSettings
    permissions: Mapping[str, Permission]  # the catalog, reserved permissions included
    ip_filters: Mapping[str, IpFilter]
    policy: SecurityPolicy
    rate_limits: RateLimitSettings = RateLimitSettings()
    # One merged matcher per set of permission names, built on first use by
    # decision.grants(); lives and dies with this configuration object.
    matchers: dict[frozenset[str], PermissionMatcher] = field(
        default_factory=dict, compare=False, repr=False
    )
