"""The configuration: one immutable, pre-compiled :class:`Config` per loaded file.

This package's face is pure data (the model and its error type), so the pure rules can
depend on it; reading a file is :mod:`authsvc.config.load`, which alone pulls in YAML.
"""

from authsvc.config.errors import ConfigError
from authsvc.config.model import (
    MANAGE_TOKENS,
    RESERVED_PERMISSIONS,
    VIEW_TOKENS,
    CacheSettings,
    Config,
    Listen,
    ListenAddress,
    Permission,
    RateLimitSettings,
    SecurityPolicy,
)

__all__ = [
    "MANAGE_TOKENS",
    "RESERVED_PERMISSIONS",
    "VIEW_TOKENS",
    "CacheSettings",
    "Config",
    "ConfigError",
    "Listen",
    "ListenAddress",
    "Permission",
    "RateLimitSettings",
    "SecurityPolicy",
]
