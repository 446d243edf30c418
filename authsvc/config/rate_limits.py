"""Reading ``rate_limits``: where the token buckets of SPEC §12 are counted.

```yaml
rate_limits:
  scope: cluster                   # instance (default) or cluster
  redis: redis://10.0.0.5:6379/0   # cluster only: redis:// or rediss:// (TLS)
```

The section is optional: a file without it (or with it left empty) means ``scope:
instance``, each process counting alone. It is read at start-up; a change needs a restart
(``rate_limits`` is one of :data:`authsvc.config.diff.RESTART_KEYS`). Decisions where the
spec is silent:

- ``redis`` is required with ``scope: cluster`` and refused with ``scope: instance``: a URL
  that nothing uses is more likely a forgotten ``scope`` than a wish.
- The URL takes a host, an optional port, user and password, and an optional database
  number (``/0``). A query string is refused: redis-py lets URL options override the short
  timeouts the limiter relies on to never keep a request waiting on a dead Redis.
- The URL is never echoed in an error: it may hold a password.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from yaml.nodes import Node

from authsvc.config.model import RateLimitSettings
from authsvc.config.nodes import Fields, Reader

SCOPES = ("instance", "cluster")
KEYS = ("scope", "redis")
REDIS_SCHEMES = ("redis", "rediss")
_URL = "a Redis URL such as redis://host:6379/0 (rediss:// for TLS)"


def _parse_scope(text: str) -> str:
    if text not in SCOPES:
        raise ValueError(f"must be instance or cluster, not {text!r}")
    return text


def parse_redis_url(text: str) -> str:
    """``text`` when it is a usable Redis URL; ValueError (never quoting it) otherwise."""
    try:
        parts = urlsplit(text)
        port = parts.port  # raises ValueError for a port out of range or not a number
    except ValueError:
        raise ValueError(f"is not {_URL}: the host or port is malformed") from None
    if parts.scheme not in REDIS_SCHEMES:
        scheme = f"the scheme {parts.scheme!r}" if parts.scheme else "a URL without a scheme"
        raise ValueError(f"must be {_URL}, not {scheme}")
    if not parts.hostname:
        raise ValueError(f"must be {_URL}: the host is missing")
    if port == 0:
        raise ValueError("the port must be a number from 1 to 65535")
    database = parts.path.removeprefix("/")
    if parts.path and not (parts.path.startswith("/") and (database == "" or database.isdigit())):
        raise ValueError("the path may only be a database number, such as /0")
    if parts.query or parts.fragment:
        raise ValueError(
            "options in the URL (after '?' or '#') are not supported: they could override "
            "the short timeouts that keep requests from waiting on an unreachable Redis"
        )
    return text


def display_redis_url(url: str) -> str:
    """``url`` fit for a log line: the scheme, host, port and database, no credentials."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def read_rate_limits(r: Reader, node: Node | None) -> RateLimitSettings:
    """``rate_limits``: the scope, and the Redis URL the cluster scope counts through."""
    fields: Fields = r.section(node, "rate_limits", KEYS)
    reported = len(r.found)
    scope = r.get(fields, "rate_limits.scope", "instance or cluster", _parse_scope, "instance")
    redis = r.get(fields, "rate_limits.redis", _URL, parse_redis_url, None)
    if len(r.found) > reported:
        pass  # a wrong value is reported already; a second error about it would only confuse
    elif scope == "cluster" and redis is None:
        r.error("rate_limits.redis", fields["scope"][1], f"is required with scope: cluster: {_URL}")
    elif scope == "instance" and redis is not None:
        r.error(
            "rate_limits.redis",
            fields["redis"][1],
            "is only used with scope: cluster; write scope: cluster, or remove the URL",
        )
    return RateLimitSettings(scope=scope, redis=redis)
