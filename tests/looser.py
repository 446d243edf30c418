"""What "looser" means for two configurations (SECURITY 28): :func:`loosenings` lists every
way one lets in more than another. Used by tests/test_config_truncation.py."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_network

from authsvc.config import Config
from authsvc.rules.ipfilter import IPAddress, IpFilter


def _probes(*filters: IpFilter) -> set[IPAddress]:
    """Addresses at which a first-match filter's answer can change: the first address of
    every rule's network and the one after its last, and each family's first address.
    Every address shares its answer with the probe that starts its interval."""
    probes: set[IPAddress] = {IPv4Address(0), IPv6Address(0)}
    for rule in (rule for f in filters for rule in f.rules):
        target = rule.split()[1]
        if target == "all":
            continue
        network = ip_network(target)
        probes.add(network.network_address)
        after = int(network.broadcast_address) + 1
        if after < 2**network.max_prefixlen:
            probes.add(type(network.network_address)(after))
    return probes


def _widened(name: str, full: Config, cut: Config) -> list[str]:
    """``name`` (a proxy list) of ``cut`` holds a network outside all of ``full``'s."""
    allowed = [ip_network(text) for text in getattr(full, name).texts]
    return [
        f"{name}: {text}"
        for text in getattr(cut, name).texts
        if not any(
            ip_network(text).version == net.version and ip_network(text).subnet_of(net)  # type: ignore[arg-type]  # same version checked first
            for net in allowed
        )
    ]


def loosenings(full: Config, cut: Config) -> list[str]:
    """Every way ``cut`` lets in more than ``full`` (empty: not looser). Looser is: tokens
    switched on, or permission updates allowed, where ``full`` has them off; no maximum
    lifetime or a longer one; an enforced filter dropped or another one; a trusted proxy
    or admin trusted proxy outside ``full``'s networks; a permission granting a template
    ``full``'s does not (templates compared as written); a filter missing, added, or
    allowing an address ``full``'s denies; a longer cache.ttl (revocations seen later) or
    a larger unknown-lookup budget."""
    found: list[str] = []
    p, q = full.policy, cut.policy
    if q.tokens_enabled and not p.tokens_enabled:
        found.append("tokens_enabled")
    if q.allow_permission_updates and not p.allow_permission_updates:
        found.append("allow_permission_updates")
    if p.max_rate_limit is not None and (
        q.max_rate_limit is None or q.max_rate_limit.rate > p.max_rate_limit.rate
    ):
        found.append(f"max_rate_limit {q.max_rate_limit and q.max_rate_limit.text}")
    if p.max_lifetime is not None and (q.max_lifetime is None or q.max_lifetime > p.max_lifetime):
        found.append(f"max_lifetime {q.max_lifetime_text}")
    if p.enforce_ip_filter is not None and q.enforce_ip_filter != p.enforce_ip_filter:
        found.append(f"enforce_ip_filter {q.enforce_ip_filter}")
    found += _widened("trusted_proxies", full, cut) + _widened("admin_trusted_proxies", full, cut)
    for name, permission in cut.permissions.items():
        granted = (
            {e.text for e in full.permissions[name].endpoints}
            if name in full.permissions
            else set()
        )
        found += [
            f"permission {name}: {e.text}" for e in permission.endpoints if e.text not in granted
        ]
    for name in full.ip_filters.keys() ^ cut.ip_filters.keys():
        found.append(f"ip_filters.{name} missing or added")
    for name in full.ip_filters.keys() & cut.ip_filters.keys():
        whole, short = full.ip_filters[name], cut.ip_filters[name]
        found += [
            f"ip_filters.{name} allows {ip}"
            for ip in sorted(_probes(whole, short), key=lambda ip: (ip.version, ip))
            if short.allows(ip) and not whole.allows(ip)
        ]
    if cut.cache.ttl > full.cache.ttl:
        found.append("cache.ttl")
    if cut.cache.unknown_lookups_per_second > full.cache.unknown_lookups_per_second:
        found.append("cache.unknown_lookups_per_second")
    return found
