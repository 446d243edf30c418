"""YAML configuration → one immutable, pre-compiled :class:`Config`.

Loaded with a safe loader; every key validated; IP filters and endpoint templates
compiled once. Errors name the file, the key and (where there is one) the line.

The file is composed into YAML nodes (never constructed into objects), so that every
error can carry a line number and no tag can ever instantiate anything: a tag other than
the plain YAML ones (``!!python/...``, ``!!binary``, ``!custom``) is an error. Every
problem found is reported (ordered by line), not just the first. Messages read
``<file>: <dotted.key> (line N): <sentence>``, list items keyed by index
(``permissions.ManageUsers.endpoints.2``); problems of the whole file read
``<file>: line N: <sentence>``. Decisions where docs/configuration.md is silent:

- The sections that decide who gets in (``trusted_proxies``, ``admin_trusted_proxies``,
  ``permissions``, ``ip_filters`` and every key of ``security_policy``) must be written
  out: a file cut short, or one from before a key existed, is an error, never a looser
  default (``[]`` trusts no peer, ``{}`` defines no filter, ``null`` sets no policy
  value). The others (``listen``, ``store``, ``secret_key_file``, ``audit_log``,
  ``cache``) have defaults; one given but left empty (``cache:``) means "all defaults".
- ``description`` is optional (default ``""``); duplicate keys and duplicate endpoint
  templates are errors; YAML merge keys (``<<``) are not supported.
- Whole numbers are plain decimal (``100000`` or ``100_000``); durations must be strings
  with a unit, so ``ttl: 5`` is an error. ``cache.ttl`` is at most 1h.
- Relative paths (sqlite store, key file, ``unix:`` sockets) are joined to the file's
  folder and normalised lexically (``config/../var`` becomes ``var``).
- ``listen.auth`` and ``listen.admin`` must differ; ports are 1-65535 (no port 0).
- The reserved permissions are added after the catalog, in Config.permissions' order.
- A store URL is never echoed in an error (a PostgreSQL URL may hold a password).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import MappingProxyType

from yaml.nodes import MappingNode

from authsvc.config.errors import ConfigError
from authsvc.config.model import Config
from authsvc.config.nodes import Reader, compose
from authsvc.config.rate_limits import read_rate_limits
from authsvc.config.sections import read_filters, read_permissions, read_policy, read_proxies
from authsvc.config.settings import read_cache, read_listen, read_paths

MAX_FILE_SIZE = 1 << 20  # a configuration is a few kilobytes; don't slurp a log file
TOP_KEYS = (
    "listen",
    "trusted_proxies",
    "admin_trusted_proxies",
    "store",
    "secret_key_file",
    "audit_log",
    "cache",
    "permissions",
    "ip_filters",
    "security_policy",
    "rate_limits",
)


def parse_config(text: str, path: Path) -> Config:
    """Validate and compile ``text`` as if read from ``path``; raise ConfigError."""
    absolute = Path(os.path.abspath(path))
    r = Reader(str(path), absolute.parent)
    root = compose(text, r.file)
    top = r.mapping(root, "", "a mapping of settings", TOP_KEYS)
    if not isinstance(root, MappingNode):
        raise ConfigError(r.errors)
    value = {name: node for name, (_, node) in top.items()}
    # In the file's order, so that the keys missing (reported without a line) are too.
    trusted = read_proxies(r, top.get("trusted_proxies"), "trusted_proxies")
    admin_trusted = read_proxies(r, top.get("admin_trusted_proxies"), "admin_trusted_proxies")
    permissions = read_permissions(r, top.get("permissions"))
    filters, filter_names = read_filters(r, top.get("ip_filters"))
    policy = read_policy(r, top.get("security_policy"), filter_names)
    store, secret_key_file, audit_log = read_paths(r, top)
    config = Config(
        path=absolute,
        listen=read_listen(r, value.get("listen")),
        trusted_proxies=trusted,
        admin_trusted_proxies=admin_trusted,
        store=store,
        secret_key_file=secret_key_file,
        audit_log=audit_log,
        cache=read_cache(r, value.get("cache")),
        permissions=MappingProxyType(permissions),
        ip_filters=MappingProxyType(filters),
        policy=policy,
        rate_limits=read_rate_limits(r, value.get("rate_limits")),
    )
    if r.errors:
        raise ConfigError(r.errors)
    return config


def load_config(path: Path) -> Config:
    """Read, validate and compile the file at ``path``; raise ConfigError."""
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_FILE_SIZE + 1)
    except OSError as error:
        reason = "it is a folder" if isinstance(error, IsADirectoryError) else error.strerror
        raise ConfigError([f"{path}: cannot read the configuration: {reason or error}"]) from None
    if len(data) > MAX_FILE_SIZE:
        raise ConfigError([f"{path}: the file is larger than 1 MiB; is it the configuration?"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ConfigError([f"{path}: line {line}: the file is not valid UTF-8 text"]) from None
    return parse_config(text, path)
