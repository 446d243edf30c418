"""Reading each section of the configuration file into the values of config_model.

Every reader reports its problems to the shared Reader (file, dotted key, line) and
returns a usable default, so that one pass reports every problem in the file.
"""

from __future__ import annotations

import os
import re
from functools import partial
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from types import MappingProxyType

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

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
    SecurityPolicy,
)
from authsvc.config.nodes import (
    BOOL,
    INT,
    STR,
    Fields,
    Reader,
    compose,
    is_null,
    line_of,
    parse_bool,
    parse_count,
    parse_port,
)
from authsvc.rules.durations import parse_duration
from authsvc.rules.endpoints import EndpointTemplate, compile_template
from authsvc.rules.ipfilter import IpFilter, IpFilterError, NetworkSet, compile_ip_filter
from authsvc.store import resolve_store_url

RESERVED_DESCRIPTIONS = {
    VIEW_TOKENS: "View organization API tokens, the permission catalog, IP filters and policy",
    MANAGE_TOKENS: "Create, update, rotate and delete organization API tokens (includes viewing)",
}
DEFAULT_LISTEN = {"listen.auth": "127.0.0.1:9090", "listen.admin": "127.0.0.1:9091"}
DEFAULT_TRUSTED_PROXIES = ("127.0.0.1/32", "::1/128")
DEFAULT_STORE = "sqlite:///var/authsvc.db"
DEFAULT_SECRET_KEY_FILE = "var/authsvc.key"  # noqa: S105 -- a path, not a secret
DEFAULT_AUDIT_LOG = "var/audit.log"
DEFAULT_TTL = "5s"
DEFAULT_MAX_ENTRIES = 100_000
MAX_CACHE_TTL = 3600  # a longer cache would make deletions take effect far too late
MAX_FILE_SIZE = 1 << 20  # a configuration is a few kilobytes; don't slurp a log file
_MAX_UNIX_PATH = 107  # sun_path holds 108 bytes, one of them the terminating NUL

_TOP_KEYS = (
    "listen",
    "trusted_proxies",
    "store",
    "secret_key_file",
    "audit_log",
    "cache",
    "permissions",
    "ip_filters",
    "security_policy",
)
_POLICY_KEYS = ("tokens_enabled", "max_lifetime", "enforce_ip_filter", "allow_permission_updates")
_PERMISSION_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,99}", re.ASCII)
_FILTER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,99}", re.ASCII)
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


def _parse_network(text: str) -> str:
    NetworkSet.compile([text])  # raises ValueError naming the entry
    return text


def _parse_ttl(text: str) -> float:
    seconds = parse_duration(text, units="smh")
    if seconds > MAX_CACHE_TTL:
        raise ValueError(f"must be at most 1h (a longer cache delays token deletions), not {text}")
    return float(seconds)


def _read_listen(r: Reader, node: Node | None) -> Listen:
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


def _read_trusted_proxies(r: Reader, node: Node | None) -> NetworkSet:
    if node is None:
        return NetworkSet.compile(DEFAULT_TRUSTED_PROXIES)
    what = "a list of addresses and CIDR ranges ([] trusts no proxy)"
    if not r.check(node, "trusted_proxies", SequenceNode, what):
        return NetworkSet.compile(())
    fields: Fields = {str(i): (item, item) for i, item in enumerate(node.value)}
    entries = [
        r.get(fields, f"trusted_proxies.{i}", "an address or CIDR range", _parse_network, "")
        for i in fields
    ]
    return NetworkSet.compile([entry for entry in entries if entry])


def _read_permission(r: Reader, key: str, name: str, node: Node) -> Permission:
    fields = r.mapping(
        node, key, "a mapping with description and endpoints", ("description", "endpoints")
    )
    description = r.get(fields, f"{key}.description", "a string", str, "")
    templates: list[EndpointTemplate] = []
    what = "a list of at least one 'METHOD /path' template"
    if "endpoints" not in fields:
        if isinstance(node, MappingNode):
            r.error(key, node, f"needs endpoints: {what}")
    elif r.check(endpoints := fields["endpoints"][1], f"{key}.endpoints", SequenceNode, what):
        if not endpoints.value:
            r.error(f"{key}.endpoints", endpoints, f"must be {what}, not an empty list")
        items: Fields = {str(i): (item, item) for i, item in enumerate(endpoints.value)}
        for i, (item, _) in items.items():
            sub = f"{key}.endpoints.{i}"
            template = r.get(items, sub, "a 'METHOD /path' template", compile_template, None)
            if template is not None and template.text in {t.text for t in templates}:
                r.error(sub, item, f"{template.text!r} is listed twice")
            elif template is not None:
                templates.append(template)
    return Permission(name, description, tuple(templates))


def _read_permissions(r: Reader, node: Node | None) -> dict[str, Permission]:
    what = "a mapping of at least one permission name to its endpoints"
    fields: Fields = {}
    if node is None:
        r.error("permissions", None, f"is required: {what}")
    elif r.check(node, "permissions", MappingNode, what) and not node.value:
        r.error("permissions", node, f"must be {what}, not an empty mapping")
    elif isinstance(node, MappingNode):
        fields = r.mapping(node, "permissions", what)
    catalog: dict[str, Permission] = {}
    for name, (name_node, value) in fields.items():
        key = f"permissions.{name}"
        if name in RESERVED_PERMISSIONS:
            r.error(key, name_node, "is reserved and always exists; remove it from the catalog")
        elif _PERMISSION_NAME.fullmatch(name) is None:
            r.error(key, name_node, "must be a letter, then letters, digits or '_' (at most 100)")
        else:
            catalog[name] = _read_permission(r, key, name, value)
    for reserved in RESERVED_PERMISSIONS:
        description = RESERVED_DESCRIPTIONS[reserved]
        catalog[reserved] = Permission(reserved, description, ())
    return catalog


def _read_filters(r: Reader, node: Node | None) -> tuple[dict[str, IpFilter], set[str]]:
    """The compiled filters, and the names of all filters written (broken ones too, so
    that a reference to one is not reported as a second error)."""
    if node is None or is_null(node):
        return {}, set()
    fields = r.mapping(node, "ip_filters", "a mapping of filter names to rules")
    filters: dict[str, IpFilter] = {}
    for name, (name_node, value) in fields.items():
        key = f"ip_filters.{name}"
        if _FILTER_NAME.fullmatch(name) is None:
            r.error(key, name_node, "must be a letter, then letters, digits, '_' or '-'")
        elif r.check(
            value, key, ScalarNode, "a block of rules (write '|' and one rule per line)", STR
        ):
            try:
                filters[name] = compile_ip_filter(name, str(value.value))
            except IpFilterError as error:
                # A block scalar's text starts on the line after its '|'; other styles
                # may fold lines, so their line is a best guess.
                block = isinstance(value, ScalarNode) and value.style in ("|", ">")
                line = line_of(value) + error.line - (0 if block else 1)
                r.error(key, None, f"rule line {error.line}: {error.reason}", line)
    return filters, set(fields)


def _read_policy(r: Reader, node: Node | None, filter_names: set[str]) -> SecurityPolicy:
    fields = r.section(node, "security_policy", _POLICY_KEYS)
    key = "security_policy."
    nulls = {name for name, (_, value) in fields.items() if is_null(value)}
    present = {name: value for name, value in fields.items() if name not in nulls}
    lifetime = r.get(
        present,
        key + "max_lifetime",
        "a duration such as 90d, or null",
        partial(parse_duration, units="mhd"),
        None,
    )
    enforced = r.get(present, key + "enforce_ip_filter", "a filter name or null", str, None)
    if enforced is not None and enforced not in filter_names:
        known = ", ".join(sorted(filter_names)) or "none is defined"
        r.error(
            key + "enforce_ip_filter",
            fields["enforce_ip_filter"][1],
            f"there is no IP filter named {enforced!r} in ip_filters (known: {known})",
        )
    flags = {
        name: r.get(fields, key + name, "true or false", parse_bool, True, tag=BOOL)
        for name in ("tokens_enabled", "allow_permission_updates")
    }
    return SecurityPolicy(
        tokens_enabled=flags["tokens_enabled"],
        max_lifetime=lifetime,
        max_lifetime_text=str(fields["max_lifetime"][1].value) if lifetime else None,
        enforce_ip_filter=enforced,
        allow_permission_updates=flags["allow_permission_updates"],
    )


def read_config(text: str, path: Path) -> Config:
    """Validate and compile ``text`` as if read from ``path``; raise ConfigError."""
    absolute = Path(os.path.abspath(path))
    r = Reader(str(path), absolute.parent)
    root = compose(text, r.file)
    fields = r.mapping(root, "", "a mapping of settings", _TOP_KEYS)
    if not isinstance(root, MappingNode):
        raise ConfigError(r.errors)
    top = {name: value for name, (_, value) in fields.items()}
    store, key_file = (
        partial(resolve_store_url, folder=r.folder),
        partial(_parse_file_path, r.folder),
    )
    cache = r.section(top.get("cache"), "cache", ("ttl", "max_entries"))
    ttl = r.get(cache, "cache.ttl", "a duration such as 5s", _parse_ttl, _parse_ttl(DEFAULT_TTL))
    max_entries = r.get(
        cache, "cache.max_entries", "a whole number", parse_count, DEFAULT_MAX_ENTRIES, tag=INT
    )
    filters, filter_names = _read_filters(r, top.get("ip_filters"))
    config = Config(
        path=absolute,
        listen=_read_listen(r, top.get("listen")),
        trusted_proxies=_read_trusted_proxies(r, top.get("trusted_proxies")),
        store=r.get(fields, "store", "a URL", store, store(DEFAULT_STORE)),
        secret_key_file=r.get(
            fields, "secret_key_file", "a file path", key_file, key_file(DEFAULT_SECRET_KEY_FILE)
        ),
        audit_log=r.get(fields, "audit_log", "a file path", key_file, key_file(DEFAULT_AUDIT_LOG)),
        cache=CacheSettings(ttl=ttl, max_entries=max_entries),
        permissions=MappingProxyType(_read_permissions(r, top.get("permissions"))),
        ip_filters=MappingProxyType(filters),
        policy=_read_policy(r, top.get("security_policy"), filter_names),
    )
    if r.errors:
        raise ConfigError(r.errors)
    return config
