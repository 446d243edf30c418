"""The realistic mix: what many different tokens send through nginx, generated once.

10,000 tokens with permission sets ("roles") from the shipped catalog, some bound to a
bench IP filter; requests spread Zipf-like over the tokens, to ~1,000 targets filled in
from the catalog's endpoint templates (a good share with a query string), from a few
client networks, with the templates' methods. Set shares are denied by permission, by the
IP filter, or carry unknown or malformed tokens. Every request's expected answer, from
authsvc and from the naive floor (which checks no permission), is computed here with a
matcher of our own, so a run's observed statuses can be checked against it.

Files: ``mix.tsv`` (method, target, client address, Authorization; walked by
bench/mix.lua) and the floor's secrets (``SECRET NETWORK`` or ``SECRET`` a line).
"""

from __future__ import annotations

import functools
import itertools
import random
from collections import Counter
from dataclasses import dataclass
from ipaddress import IPv4Network, ip_address, ip_network
from pathlib import Path

import yaml

from authsvc.rules.tokens import ALPHABET, PREFIX, RANDOM_LENGTH, checksum
from bench.data import insert_tokens

TOKENS = 10_000
REQUESTS = 200_000
TARGETS = 1_000
SEED = 1_100
ZIPF_S = 1.1
QUERY_SHARE = 0.4
#: Bench IP filters added to the authsvc configuration: one allowed network each, so the
#: floor's single CIDR check decides exactly as authsvc's filter does.
FILTERS = {"bench-office": "10.1.0.0/16", "bench-partner": "192.0.2.0/24"}
FILTER_SHARES = {"bench-office": 0.15, "bench-partner": 0.05}  # the rest: no filter
#: The client networks (/24s): two office ones, the partner's, three outside any filter.
NETWORKS = ("10.1.1", "10.1.2", "192.0.2", "10.2.3", "198.51.100", "203.0.113")
#: Intended shares of the request kinds; the rest is allowed.
SHARES = {"permission": 0.05, "ip": 0.02, "unknown": 0.01, "malformed": 0.01}
SVC_STATUS = {"allowed": 200, "permission": 403, "ip": 403, "unknown": 401, "malformed": 401}
#: Roles (permission sets of the shipped catalog) and how many tokens have each.
ROLES: tuple[tuple[float, tuple[str, ...]], ...] = (
    (0.20, ("MonitorQueries", "BlockQueries")),
    (0.25, ("IngestAcrossAllReposWithinOrganization",)),
    (0.10, ("ManageUsers", "ViewUsage")),
    (0.10, ("ViewFleetManagement", "ChangeFleetManagement")),
    (0.10, ("CreateRepository", "DeleteAllRepositories", "ChangeAllViewOrRepositoryPermissions")),
    (0.10, ("DeleteAllViews", "ManageViewConnections", "ViewAllInternalNotifications")),
    (
        0.10,
        (
            "ExportOrganization",
            "ChangeOrganizationSettings",
            "ChangeSessions",
            "ChangeSecurityPolicies",
            "ChangeOrganizationPermissions",
            "ChangeIdentityProviders",
            "ChangeIPFilters",
        ),
    ),
    (0.05, ("*",)),  # every permission of the catalog
)
QUERIES = (
    "page={n}&sort=name",
    "limit=50&offset={n}",
    "q=error&page={n}",
    "fields=id,name&page={n}",
)


@dataclass(frozen=True)
class Token:
    secret: str
    permissions: tuple[str, ...]
    ip_filter: str | None
    home: str  # the client address the token is used from


@dataclass(frozen=True)
class Request:
    kind: str  # allowed, permission, ip, unknown, malformed
    method: str
    target: str
    client: str
    authorization: str
    svc: int  # the status authsvc must answer
    floor: int  # the status the floor must answer


@dataclass(frozen=True)
class Mix:
    tokens: list[Token]
    requests: list[Request]

    def expected(self, who: str, start: int, count: int) -> Counter[int]:
        """The statuses ``who`` (svc or floor) must answer for ``count`` requests walked
        from ``start`` (bench/mix.lua wraps around at the end)."""
        n = len(self.requests)
        return Counter(getattr(self.requests[(start + i) % n], who) for i in range(count))


def filter_rules() -> dict[str, str]:
    """The bench filters in the configuration's ip_filters notation."""
    return {name: f"allow {network}\ndeny all\n" for name, network in FILTERS.items()}


def _secret(rng: random.Random) -> str:
    body = PREFIX + "".join(rng.choices(ALPHABET, k=RANDOM_LENGTH))
    return body + checksum(body)


@functools.cache
def _template(template: str) -> tuple[str, tuple[str, ...]]:
    method, path = template.split(" ")
    return method, tuple(path[1:].split("/"))


def _matches(template: str, method: str, target: str) -> bool:
    """Our own reading of a catalog template (authsvc's matcher is what is measured)."""
    want_method, wanted = _template(template)
    if want_method not in ("*", method):
        return False
    segments = target.partition("?")[0][1:].split("/")
    for index, want in enumerate(wanted):
        if want.endswith("...}"):
            return len(segments) > index and segments[index] != ""
        if index >= len(segments):
            return False
        if want.startswith("{"):
            if segments[index] == "":
                return False
        elif want != segments[index]:
            return False
    return len(segments) == len(wanted)


def _fill(template: str, rng: random.Random) -> tuple[str, str]:
    """A (method, target) for ``template``, ids filled in, sometimes a query string."""
    method, path = template.split(" ")
    parts = []
    for segment in path.split("/"):
        value = segment
        if segment.endswith("...}"):
            value = f"host-{rng.randrange(1, 60)}/app-{rng.randrange(1, 9)}.log"
        elif segment.startswith("{"):
            name = segment[1:-1]
            n = rng.randrange(1, 10_000)
            value = {"id": str(n), "period": f"2024-{n % 12 + 1:02d}"}.get(name, f"{name}-{n}")
        parts.append(value)
    target = "/".join(parts)
    if rng.random() < QUERY_SHARE:
        target += "?" + rng.choice(QUERIES).format(n=rng.randrange(1, 40))
    return method, target


def _targets(templates: list[str], rng: random.Random) -> list[tuple[str, str]]:
    """~TARGETS distinct (method, target) pairs, round-robin over the templates."""
    seen: dict[tuple[str, str], None] = {}
    while len(seen) < TARGETS:
        for template in templates:
            seen.setdefault(_fill(template, rng))
    return list(seen)[:TARGETS]


def _zipf(n: int) -> list[float]:
    return list(itertools.accumulate(1 / (k**ZIPF_S) for k in range(1, n + 1)))


def _address(rng: random.Random, networks: tuple[str, ...]) -> str:
    return f"{rng.choice(networks)}.{rng.randrange(1, 255)}"


def _inside(network: str) -> tuple[str, ...]:
    net = ip_network(network)
    return tuple(n for n in NETWORKS if ip_address(n + ".1") in net)


def _malformed(rng: random.Random) -> list[str]:
    """Authorization values authsvc refuses as malformed (and the floor as unknown)."""
    pool = []
    for i in range(100):
        secret = _secret(rng)
        bad = secret[:-1] + ("A" if secret[-1] != "A" else "B")  # a wrong checksum
        pool.append(
            (
                f"Bearer {bad}",
                f"Bearer {secret[:40]}",  # cut short
                f"Bearer {secret[8:]}",  # no prefix
                f"Basic dXNlcjpwYXNzd29yZC{i}=",
            )[i % 4]
        )
    return pool


def _roles(catalog: dict[str, list[str]]) -> list[tuple[str, ...]]:
    roles = []
    for _, role in ROLES:
        names = tuple(catalog) if role == ("*",) else role
        missing = [name for name in names if name not in catalog]
        if missing:
            raise RuntimeError(f"bench mix: the shipped catalog has no {missing}")
        roles.append(names)
    return roles


def _tokens(rng: random.Random, roles: list[tuple[str, ...]]) -> tuple[list[Token], list[int]]:
    """The tokens, and the index of each one's role."""
    tokens, token_roles = [], []
    for _ in range(TOKENS):
        index = rng.choices(range(len(roles)), weights=[weight for weight, _ in ROLES])[0]
        draw, ip_filter = rng.random(), None
        for name, share in FILTER_SHARES.items():
            if draw < share:
                ip_filter = name
                break
            draw -= share
        home_nets = _inside(FILTERS[ip_filter]) if ip_filter else NETWORKS
        tokens.append(Token(_secret(rng), roles[index], ip_filter, _address(rng, home_nets)))
        token_roles.append(index)
    return tokens, token_roles


class _Draw:
    """Draws one request of a given kind: (method, target, client address, Authorization)."""

    def __init__(
        self, rng: random.Random, catalog: dict[str, list[str]], targets: list[tuple[str, str]]
    ) -> None:
        self.rng, self.targets = rng, targets
        roles = _roles(catalog)
        # For each role: which targets it may use, and which it may not.
        self.allowed: list[list[int]] = []
        self.denied: list[list[int]] = []
        for names in roles:
            grants = [template for name in names for template in catalog[name]]
            ok = [any(_matches(t, *target) for t in grants) for target in targets]
            self.allowed.append([i for i, yes in enumerate(ok) if yes])
            self.denied.append([i for i, yes in enumerate(ok) if not yes])
        self.tokens, self.roles = _tokens(rng, roles)
        self.unknown = [_secret(rng) for _ in range(200)]
        self.malformed = _malformed(rng)
        self.offsets = [rng.randrange(TARGETS) for _ in self.tokens]  # favourite targets
        self.token_cw = _zipf(TOKENS)
        self.target_cw: dict[int, list[float]] = {}

    def _token(self, accept: str | None = None) -> int:
        """A token by Zipf rank; for "denied" one whose role may not use some target,
        for "filtered" one with an IP filter."""
        while True:
            index = self.rng.choices(range(TOKENS), cum_weights=self.token_cw)[0]
            if accept is None or (accept == "denied" and self.denied[self.roles[index]]):
                return index
            if accept == "filtered" and self.tokens[index].ip_filter:
                return index

    def _favourite(self, index: int) -> tuple[str, str]:
        """One of the token's allowed targets, Zipf-like from its own favourite on."""
        mine = self.allowed[self.roles[index]]
        if len(mine) not in self.target_cw:
            self.target_cw[len(mine)] = _zipf(len(mine))
        pick = self.rng.choices(range(len(mine)), cum_weights=self.target_cw[len(mine)])[0]
        return self.targets[mine[(pick + self.offsets[index]) % len(mine)]]

    def __call__(self, kind: str) -> tuple[str, str, str, str]:
        rng = self.rng
        if kind in ("unknown", "malformed"):
            auth = f"Bearer {rng.choice(self.unknown)}" if kind == "unknown" else ""
            auth = auth or rng.choice(self.malformed)
            return (*rng.choice(self.targets), _address(rng, NETWORKS), auth)
        index = self._token({"permission": "denied", "ip": "filtered"}.get(kind))
        token = self.tokens[index]
        if kind == "permission":
            method, target = self.targets[rng.choice(self.denied[self.roles[index]])]
        else:
            method, target = self._favourite(index)
        client = token.home
        if kind == "ip":
            assert token.ip_filter is not None
            outside = tuple(n for n in NETWORKS if n not in _inside(FILTERS[token.ip_filter]))
            client = _address(rng, outside)
        return method, target, client, f"Bearer {token.secret}"


def generate(config: Path) -> Mix:
    catalog: dict[str, list[str]] = {
        name: entry["endpoints"]
        for name, entry in yaml.safe_load(config.read_text())["permissions"].items()
    }
    rng = random.Random(SEED)  # noqa: S311 - deterministic bench data, no real secrets
    templates = [template for endpoints in catalog.values() for template in endpoints]
    draw = _Draw(rng, catalog, _targets(templates, rng))
    rules = _Rules({token.secret: token for token in draw.tokens}, catalog)
    requests: list[Request] = []
    cut = list(itertools.accumulate(SHARES.values()))
    for _ in range(REQUESTS):
        number = rng.random()
        kind = next((k for k, c in zip(SHARES, cut, strict=True) if number < c), "allowed")
        method, target, client, auth = draw(kind)
        svc, floor = rules.decide(auth, method, target, client)
        if svc != SVC_STATUS[kind]:
            raise RuntimeError(f"bench mix: a {kind} request would get {svc}: {method} {target}")
        requests.append(Request(kind, method, target, client, auth, svc, floor))
    return Mix(draw.tokens, requests)


@dataclass(frozen=True)
class _Rules:
    """The rules as we read them: the mix's tokens by secret, and the catalog."""

    tokens: dict[str, Token]
    catalog: dict[str, list[str]]

    def decide(self, auth: str, method: str, target: str, client: str) -> tuple[int, int]:
        """The statuses (authsvc, floor) for one request."""
        secret = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        token = self.tokens.get(secret) if secret else None
        if token is None:
            return 401, 401
        if token.ip_filter and ip_address(client) not in _network(FILTERS[token.ip_filter]):
            return 403, 403
        granted = any(
            _matches(template, method, target)
            for name in token.permissions
            for template in self.catalog[name]
        )
        return (200 if granted else 403), 200


@functools.cache
def _network(text: str) -> IPv4Network:
    network = ip_network(text)
    assert isinstance(network, IPv4Network)
    return network


def write(mix: Mix, work: Path, floor_extra: list[str]) -> tuple[Path, Path]:
    """The request file for bench/mix.lua, and the floor's secrets file (the mix's tokens
    plus ``floor_extra`` lines; the unknown tokens are of course not in it)."""
    requests = work / "mix.tsv"
    requests.write_text(
        "".join(f"{r.method}\t{r.target}\t{r.client}\t{r.authorization}\n" for r in mix.requests)
    )
    floor = work / "floor-tokens.txt"
    lines = [f"{t.secret} {FILTERS[t.ip_filter]}" if t.ip_filter else t.secret for t in mix.tokens]
    floor.write_text("\n".join(floor_extra + lines) + "\n")
    return requests, floor


def insert(db: Path, key: bytes, mix: Mix) -> None:
    insert_tokens(
        db,
        key,
        (
            (f"tok_b{i:015x}", f"bench-mix-{i}", t.secret, t.permissions, t.ip_filter)
            for i, t in enumerate(mix.tokens)
        ),
    )


def summary(mix: Mix) -> dict[str, object]:
    """Intended kinds and expected statuses over the whole file, as shares."""
    n = len(mix.requests)
    kinds = Counter(r.kind for r in mix.requests)
    return {
        "requests": n,
        "tokens": len(mix.tokens),
        "targets": len({(r.method, r.target) for r in mix.requests}),
        "clients": len({r.client for r in mix.requests}),
        "kinds": {k: kinds[k] / n for k in ("allowed", *SHARES)},
        "svc": {s: c / n for s, c in sorted(Counter(r.svc for r in mix.requests).items())},
        "floor": {s: c / n for s, c in sorted(Counter(r.floor for r in mix.requests).items())},
    }
