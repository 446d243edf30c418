"""Reading the sections that have defaults: where authsvc listens, the store, the key
file, the audit log and the cache.

None of them decides who gets in, so leaving one out (or a section empty) takes its
defaults; the sections that do decide are read by :mod:`authsvc.config.sections` and
must be written out.
"""

from __future__ import annotations

import os
import re
from functools import partial
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from yaml.nodes import Node

from authsvc.config.model import (
    DEFAULT_UNKNOWN_LOOKUPS_PER_SECOND,
    CacheSettings,
    Listen,
    ListenAddress,
)
from authsvc.config.nodes import INT, Fields, Reader, parse_count, parse_port
from authsvc.rules.durations import parse_duration
from authsvc.store import resolve_store_url

DEFAULT_LISTEN = {"listen.auth": "127.0.0.1:9090", "listen.admin": "127.0.0.1:9091"}
DEFAULT_STORE = "sqlite:///var/authsvc.db"
DEFAULT_SECRET_KEY_FILE = "var/authsvc.key"  # noqa: S105 -- a path, not a secret
DEFAULT_AUDIT_LOG = "var/audit.log"
DEFAULT_TTL = "5s"
DEFAULT_MAX_ENTRIES = 100_000
MAX_CACHE_TTL = 3600  # a longer cache would make deletions take effect far too late
CACHE_KEYS = ("ttl", "max_entries", "unknown_lookups_per_second")
_MAX_UNIX_PATH = 107  # sun_path holds 108 bytes, one of them the terminating NUL
_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*", re.ASCII)


def _absolute(folder: Path, text: str) -> Path:
    """``text`` joined to the configuration's folder, ``..`` resolved lexically."""
    return Path(os.path.normpath(folder / text))


def _parse_listen(folder: Path, text: str) -> ListenAddress:
    """``host:port``, ``[ipv6]:port`` or ``unix:/path``; raise ValueError."""
    if text.startswith("unix:"):
        path = text[len("unix:") :]
        if not path or "\x00" in path:
            raise ValueError("write unix: and the socket's path, e.g. unix:/run/authsvc.sock")
        path = str(_absolute(folder, path))
        if len(os.fsencode(path)) > _MAX_UNIX_PATH:
            raise ValueError(f"the socket path {path} is longer than {_MAX_UNIX_PATH} bytes")
        return ListenAddress(host=None, port=None, unix_path=path, text=text)
    host, colon, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} in brackets is not an IPv6 address") from None
    elif text.startswith("["):
        raise ValueError("write an IPv6 address in brackets and a port: [::1]:9090")
    elif not colon or not host:
        raise ValueError(f"{text!r} is not an address: write host:port, [IPv6]:port or unix:/path")
    elif ":" in host:
        raise ValueError(f"put an IPv6 address in brackets: [{host}]:{port}")
    elif host.replace(".", "").isdigit():
        try:
            IPv4Address(host)
        except ValueError as error:
            raise ValueError(f"{host!r} is not an IPv4 address: {error}") from None
    elif _HOSTNAME.fullmatch(host) is None:
        raise ValueError(f"{host!r} is not a host name or IP address")
    return ListenAddress(host=host, port=parse_port(port), unix_path=None, text=text)


def _parse_file_path(folder: Path, text: str) -> Path:
    if not text or "\x00" in text or text.endswith("/"):
        raise ValueError("must be the path of a file, e.g. var/authsvc.key")
    return _absolute(folder, text)


def _parse_ttl(text: str) -> float:
    seconds = parse_duration(text, units="smh")
    if seconds > MAX_CACHE_TTL:
        raise ValueError(f"must be at most 1h (a longer cache delays token deletions), not {text}")
    return float(seconds)


def read_listen(r: Reader, node: Node | None) -> Listen:
    """``listen``: the two listeners' addresses, which must differ."""
    fields = r.section(node, "listen", ("auth", "admin"))
    parse = partial(_parse_listen, r.folder)
    auth, admin = (
        r.get(fields, key, "an address", parse, parse(DEFAULT_LISTEN[key]))
        for key in ("listen.auth", "listen.admin")
    )
    if (auth.host, auth.port, auth.unix_path) == (admin.host, admin.port, admin.unix_path):
        r.error(
            "listen.admin",
            fields["admin"][1] if "admin" in fields else None,
            "must differ from listen.auth",
        )
    return Listen(auth=auth, admin=admin)


def read_paths(r: Reader, top: Fields) -> tuple[str, Path, Path]:
    """``store``, ``secret_key_file`` and ``audit_log``, relative ones made absolute."""
    store = partial(resolve_store_url, folder=r.folder)
    key_file = partial(_parse_file_path, r.folder)
    return (
        r.get(top, "store", "a URL", store, store(DEFAULT_STORE)),
        r.get(top, "secret_key_file", "a file path", key_file, key_file(DEFAULT_SECRET_KEY_FILE)),
        r.get(top, "audit_log", "a file path", key_file, key_file(DEFAULT_AUDIT_LOG)),
    )


def read_cache(r: Reader, node: Node | None) -> CacheSettings:
    """``cache``: the record cache's lifetime and size, and the unknown-token budget."""
    fields = r.section(node, "cache", CACHE_KEYS)
    whole = "a whole number"
    return CacheSettings(
        ttl=r.get(
            fields, "cache.ttl", "a duration such as 5s", _parse_ttl, _parse_ttl(DEFAULT_TTL)
        ),
        max_entries=r.get(
            fields, "cache.max_entries", whole, parse_count, DEFAULT_MAX_ENTRIES, tag=INT
        ),
        unknown_lookups_per_second=r.get(
            fields,
            "cache.unknown_lookups_per_second",
            whole,
            parse_count,
            DEFAULT_UNKNOWN_LOOKUPS_PER_SECOND,
            tag=INT,
        ),
    )
