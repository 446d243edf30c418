"""Reading the sections that decide who gets in: ``trusted_proxies``,
``admin_trusted_proxies``, ``permissions``, ``ip_filters`` and ``security_policy``.

Each of them must be written out, every policy key included (``null`` where unset): a
file cut short by a half-finished write, or one from before a key existed, must never
fall back to a looser default, so a missing one is an error that names it. Every reader
reports its problems to the shared Reader (file, dotted key, line) and returns a value
that is never used once an error is reported (the load raises), so that one pass
reports every problem in the file.
"""

from __future__ import annotations

import re
from functools import partial

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from authsvc.config.model import (
    MANAGE_TOKENS,
    RESERVED_PERMISSIONS,
    VIEW_TOKENS,
    Permission,
    SecurityPolicy,
)
from authsvc.config.nodes import BOOL, NULL, STR, Fields, Reader, is_null, line_of, parse_bool
from authsvc.rules.durations import parse_duration
from authsvc.rules.endpoints import EndpointTemplate, compile_template
from authsvc.rules.ipfilter import IpFilter, IpFilterError, NetworkSet, compile_ip_filter
from authsvc.rules.ratelimit import parse_rate_limit

#: A top-level entry of the file: (key node, value node), None when the key is absent.
Entry = tuple[Node, Node] | None

RESERVED_DESCRIPTIONS = {
    VIEW_TOKENS: "View organization API tokens, the permission catalog, IP filters and policy",
    MANAGE_TOKENS: "Create, update, rotate and delete organization API tokens (includes viewing)",
}
#: Every policy key, with what it takes; each one must be written.
POLICY_KEYS = {
    "tokens_enabled": "true or false",
    "max_lifetime": "a duration such as 90d, or null for no maximum",
    "enforce_ip_filter": "a filter name, or null for none",
    "allow_permission_updates": "true or false",
    "max_rate_limit": "a limit such as 600/m, or null for no maximum",
}
_PROXIES = "a list of addresses and CIDR ranges ([] trusts no peer)"
_PERMISSIONS = "a mapping of at least one permission name to its endpoints"
_FILTERS = "a mapping of filter names to rules ({} when there are none)"
_POLICY = "a mapping with every one of " + ", ".join(POLICY_KEYS)
_PERMISSION_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,99}", re.ASCII)
_FILTER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,99}", re.ASCII)


def _required(r: Reader, entry: Entry, key: str, what: str) -> Node | None:
    """The value of a section that must be written out; None (reported) when absent."""
    if entry is None:
        r.error(key, None, f"is required: {what}")
        return None
    return entry[1]


def _parse_network(text: str) -> str:
    NetworkSet.compile([text])  # raises ValueError naming the entry
    return text


def read_proxies(r: Reader, entry: Entry, key: str) -> NetworkSet:
    """``trusted_proxies`` or ``admin_trusted_proxies``: the peers whose X-Real-IP is
    believed (none when anything is wrong)."""
    node = _required(r, entry, key, _PROXIES)
    if node is None or not r.check(node, key, SequenceNode, _PROXIES):
        return NetworkSet.compile(())
    fields: Fields = {str(i): (item, item) for i, item in enumerate(node.value)}
    entries = [
        r.get(fields, f"{key}.{i}", "an address or CIDR range", _parse_network, "") for i in fields
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


def read_permissions(r: Reader, entry: Entry) -> dict[str, Permission]:
    """``permissions``: the catalog, with the reserved permissions added at its end."""
    node = _required(r, entry, "permissions", _PERMISSIONS)
    fields: Fields = {}
    if (
        node is not None
        and r.check(node, "permissions", MappingNode, _PERMISSIONS)
        and not node.value
    ):
        r.error("permissions", node, f"must be {_PERMISSIONS}, not an empty mapping")
    elif isinstance(node, MappingNode):
        fields = r.mapping(node, "permissions", _PERMISSIONS)
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


def read_filters(r: Reader, entry: Entry) -> tuple[dict[str, IpFilter], set[str]]:
    """``ip_filters``: the compiled filters, and the names of all filters written (broken
    ones too, so that a reference to one is not reported as a second error)."""
    node = _required(r, entry, "ip_filters", _FILTERS)
    if node is None:
        return {}, set()
    fields = r.mapping(node, "ip_filters", _FILTERS)
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


def read_policy(r: Reader, entry: Entry, filter_names: set[str]) -> SecurityPolicy:
    """``security_policy``, every key written (a missing one is reported)."""
    node = _required(r, entry, "security_policy", _POLICY)
    fields: Fields = {}
    if node is not None and entry is not None:
        fields = r.mapping(node, "security_policy", _POLICY, tuple(POLICY_KEYS))
        if isinstance(node, MappingNode):
            for name, what in POLICY_KEYS.items():
                if name not in fields:  # the line of `security_policy:`, where it belongs
                    r.error(f"security_policy.{name}", entry[0], f"is required: write {what}")
    key = "security_policy."
    for name in ("max_lifetime", "enforce_ip_filter", "max_rate_limit"):
        # `max_lifetime:` with nothing after it is YAML's null, and also what a write cut
        # short right after the colon leaves: unset must be written out as `null`.
        value = fields.get(name, (None, None))[1]
        if isinstance(value, ScalarNode) and value.tag == NULL and value.value == "":
            r.error(key + name, value, "has no value: write null where it is unset")
    nulls = {name for name, (_, value) in fields.items() if is_null(value)}
    present = {name: value for name, value in fields.items() if name not in nulls}
    lifetime = r.get(
        present,
        key + "max_lifetime",
        "a duration such as 90d, or null",
        partial(parse_duration, units="mhd"),
        None,
    )
    max_rate = r.get(
        present, key + "max_rate_limit", "a limit such as 600/m, or null", parse_rate_limit, None
    )
    enforced = r.get(present, key + "enforce_ip_filter", "a filter name or null", str, None)
    if enforced is not None and enforced not in filter_names:
        known = ", ".join(sorted(filter_names)) or "none is defined"
        r.error(
            key + "enforce_ip_filter",
            fields["enforce_ip_filter"][1],
            f"there is no IP filter named {enforced!r} in ip_filters (known: {known})",
        )
    # The strict value when absent or wrong; never used then (the load fails), but a
    # default that let tokens in would be one bug away from being served.
    flags = {
        name: r.get(fields, key + name, "true or false", parse_bool, False, tag=BOOL)
        for name in ("tokens_enabled", "allow_permission_updates")
    }
    return SecurityPolicy(
        tokens_enabled=flags["tokens_enabled"],
        max_lifetime=lifetime,
        max_lifetime_text=str(fields["max_lifetime"][1].value) if lifetime else None,
        enforce_ip_filter=enforced,
        allow_permission_updates=flags["allow_permission_updates"],
        max_rate_limit=max_rate,
    )
