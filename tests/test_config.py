"""The configuration file: schema, defaults, path resolution and error messages."""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest

from authsvc.config import (
    MANAGE_TOKENS,
    VIEW_TOKENS,
    CacheSettings,
    Config,
    ConfigError,
)
from authsvc.config.load import load_config, parse_config
from authsvc.rules.decision import grants
from authsvc.rules.endpoints import split_path
from authsvc.rules.ratelimit import RateLimit

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "config" / "authsvc.yaml"
FILE = Path("/srv/authsvc/authsvc.yaml")  # parse_config does no I/O: any path will do
MINIMAL = "permissions:\n  ReadThings:\n    endpoints: [GET /things]\n"


def policy(**values: str) -> str:
    """A ``security_policy`` block with every key, ``values`` (YAML text) replacing some;
    its lines: 0 the section, 1 tokens_enabled, 2 max_lifetime, 3 enforce_ip_filter,
    4 allow_permission_updates, 5 max_rate_limit."""
    fields = {
        "tokens_enabled": "true",
        "max_lifetime": "null",
        "enforce_ip_filter": "null",
        "allow_permission_updates": "true",
        "max_rate_limit": "null",
        **values,
    }
    return "security_policy:\n" + "".join(f"  {key}: {value}\n" for key, value in fields.items())


#: The sections every file must write out (tests/test_config_required.py), as appended
#: by complete() when a test's text leaves one out.
REQUIRED = {
    "trusted_proxies": "trusted_proxies: [127.0.0.1/32, '::1/128']\n",
    "admin_trusted_proxies": "admin_trusted_proxies: []\n",
    "permissions": MINIMAL,
    "ip_filters": "ip_filters: {}\n",
    "security_policy": policy(),
}


def complete(text: str) -> str:
    """``text`` followed by each required section it does not write itself: after it, so
    that the lines a test names keep their numbers."""
    present = set(re.findall(r"^([A-Za-z_]+):", text, re.MULTILINE))
    return text + "".join(block for key, block in REQUIRED.items() if key not in present)


CATALOG = [
    "ExportOrganization",
    "ChangeOrganizationPermissions",
    "ChangeIdentityProviders",
    "CreateRepository",
    "ManageUsers",
    "ViewUsage",
    "ChangeOrganizationSettings",
    "ChangeIPFilters",
    "ChangeSessions",
    "ChangeAllViewOrRepositoryPermissions",
    "IngestAcrossAllReposWithinOrganization",
    "DeleteAllRepositories",
    "DeleteAllViews",
    "ViewAllInternalNotifications",
    "ChangeFleetManagement",
    "ViewFleetManagement",
    "ChangeTriggersToRunAsOtherUsers",
    "MonitorQueries",
    "BlockQueries",
    "ChangeSecurityPolicies",
    "ChangeExternalFunctions",
    "ChangeFieldAliases",
    "ManageViewConnections",
]


def parse(text: str, path: Path = FILE) -> Config:
    return parse_config(complete(text), path)


def errors_of(text: str, path: Path = FILE, *, as_is: bool = False) -> list[str]:
    """The errors of ``text`` made complete (``as_is``: of ``text`` itself)."""
    with pytest.raises(ConfigError) as caught:
        parse_config(text if as_is else complete(text), path)
    assert caught.value.errors, "a ConfigError always carries at least one message"
    assert str(caught.value) == "\n".join(caught.value.errors)
    return caught.value.errors


class TestShippedConfig:
    def test_loads_with_the_full_catalog(self) -> None:
        """config/authsvc.yaml is valid and holds the 23 organization permissions plus the
        two reserved ones."""
        config = load_config(SHIPPED)
        assert list(config.permissions) == [*CATALOG, VIEW_TOKENS, MANAGE_TOKENS]
        assert len(config.permissions) == 25

    def test_every_permission_is_described_with_a_few_endpoints(self) -> None:
        """Each catalog permission has a description and 1 to 6 endpoints under /api/v1/."""
        config = load_config(SHIPPED)
        for name in CATALOG:
            permission = config.permissions[name]
            assert permission.description, name
            assert 1 <= len(permission.endpoints) <= 6, name
            assert all(e.path.startswith("/api/v1/") for e in permission.endpoints), name

    def test_spec_examples_verbatim(self) -> None:
        """MonitorQueries and BlockQueries are exactly as in SPEC §1."""
        permissions = load_config(SHIPPED).permissions
        assert permissions["MonitorQueries"].description == "Monitor running queries"
        assert [e.text for e in permissions["MonitorQueries"].endpoints] == [
            "GET /api/v1/queries/running",
            "GET /api/v1/queries/running/{id}",
        ]
        assert permissions["BlockQueries"].description == "Block a query"
        assert [e.text for e in permissions["BlockQueries"].endpoints] == [
            "GET /api/v1/queries/blocklist",
            "POST /api/v1/queries/blocklist",
            "DELETE /api/v1/queries/blocklist/{id}",
        ]

    def test_the_catalog_grants_what_it_says(self) -> None:
        """ManageUsers lets a token delete a user but not touch the query blocklist."""
        matcher = grants(load_config(SHIPPED), frozenset({"ManageUsers"}))
        assert matcher.matches("DELETE", split_path("/api/v1/users/42"))
        assert not matcher.matches("DELETE", split_path("/api/v1/queries/blocklist/42"))

    def test_filters_policy_and_paths(self) -> None:
        """The shipped filters, policy and the store and key under <repo>/var/."""
        config = load_config(SHIPPED)
        assert config.path == SHIPPED
        assert config.ip_filters["office"].rules == (
            "allow 10.0.0.0/8",
            "allow 2001:db8::/32",
            "deny all",
        )
        assert config.ip_filters["localhost"].allows(IPv6Address("::1"))
        assert not config.ip_filters["localhost"].allows(IPv4Address("10.0.0.1"))
        assert config.policy.tokens_enabled
        assert config.policy.max_lifetime is None
        assert config.policy.enforce_ip_filter is None
        assert config.policy.allow_permission_updates
        assert config.store == f"sqlite:///{REPO / 'var' / 'authsvc.db'}"
        assert config.secret_key_file == REPO / "var" / "authsvc.key"
        assert config.cache.ttl == 5.0
        assert config.cache.unknown_lookups_per_second == 50
        assert config.trusted_proxies.texts == ("127.0.0.1/32", "::1/128")
        assert config.admin_trusted_proxies.texts == ()


class TestDefaults:
    def test_minimal_file_gets_every_default(self) -> None:
        """A file with only the sections that must be written gets the defaults of SPEC §1
        for the others."""
        config = parse(MINIMAL)
        assert config.path == FILE
        assert (config.listen.auth.host, config.listen.auth.port) == ("127.0.0.1", 9090)
        assert (config.listen.admin.host, config.listen.admin.port) == ("127.0.0.1", 9091)
        assert config.store == "sqlite:////srv/authsvc/var/authsvc.db"
        assert config.secret_key_file == Path("/srv/authsvc/var/authsvc.key")
        assert config.cache.ttl == 5.0
        assert config.cache.max_entries == 100_000
        assert config.cache.unknown_lookups_per_second == 50
        assert config.audit_log == Path("/srv/authsvc/var/audit.log")
        assert dict(config.ip_filters) == {}
        assert config.policy.tokens_enabled
        assert config.policy.max_lifetime is None
        assert config.policy.max_lifetime_text is None
        assert config.policy.enforce_ip_filter is None
        assert config.policy.allow_permission_updates

    def test_reserved_permissions_always_exist(self) -> None:
        """The two admin permissions are added, described, with no endpoints."""
        config = parse(MINIMAL)
        assert list(config.permissions) == ["ReadThings", VIEW_TOKENS, MANAGE_TOKENS]
        for name in (VIEW_TOKENS, MANAGE_TOKENS):
            assert config.permissions[name].description
            assert config.permissions[name].endpoints == ()

    def test_description_is_optional(self) -> None:
        """A permission without a description gets an empty one."""
        assert parse(MINIMAL).permissions["ReadThings"].description == ""

    def test_empty_sections_mean_defaults(self) -> None:
        """A section with defaults written but left empty (``cache:``) keeps them."""
        config = parse(MINIMAL + "listen:\ncache:\n")
        assert config.cache == parse(MINIMAL).cache
        assert config.listen == parse(MINIMAL).listen

    def test_relative_config_path_becomes_absolute(self) -> None:
        """Config.path is absolute even when the file was named relatively."""
        config = parse(MINIMAL, Path("conf/authsvc.yaml"))
        assert config.path == Path.cwd() / "conf" / "authsvc.yaml"
        assert config.store == f"sqlite:///{Path.cwd() / 'conf' / 'var' / 'authsvc.db'}"

    def test_result_is_immutable(self) -> None:
        """The permission catalog and filters of a loaded config cannot be modified."""
        config = parse(MINIMAL)
        with pytest.raises(TypeError):
            config.permissions["x"] = config.permissions["ReadThings"]  # type: ignore[index]  # read-only on purpose


class TestValues:
    def test_full_example(self) -> None:
        """Every key of SPEC §1 is read into the Config."""
        config = parse(
            "listen:\n  auth: 192.0.2.1:8080\n  admin: '[::1]:8081'\n"
            "trusted_proxies: [10.1.0.0/16, 192.0.2.7]\n"
            "admin_trusted_proxies: [10.2.0.0/16]\n"
            "store: postgresql://authsvc:pw@db.internal:5432/authsvc\n"
            "secret_key_file: /etc/authsvc/key\n"
            "audit_log: /var/log/authsvc/audit.log\n"
            "cache:\n  ttl: 2m\n  max_entries: 10_000\n  unknown_lookups_per_second: 7\n"
            + MINIMAL
            + "ip_filters:\n  vpn: |\n    allow 192.0.2.0/24\n    deny all\n"
            "security_policy:\n  tokens_enabled: false\n  max_lifetime: 90d\n"
            "  enforce_ip_filter: vpn\n  allow_permission_updates: no\n"
            "  max_rate_limit: 120/m\n"
        )
        assert (config.listen.auth.host, config.listen.auth.port) == ("192.0.2.1", 8080)
        assert (config.listen.admin.host, config.listen.admin.port) == ("::1", 8081)
        assert config.listen.admin.text == "[::1]:8081"
        assert config.trusted_proxies.contains(IPv4Address("10.1.2.3"))
        assert not config.trusted_proxies.contains(IPv4Address("127.0.0.1"))
        assert config.admin_trusted_proxies.texts == ("10.2.0.0/16",)
        assert config.store == "postgresql://authsvc:pw@db.internal:5432/authsvc"
        assert config.secret_key_file == Path("/etc/authsvc/key")
        assert config.audit_log == Path("/var/log/authsvc/audit.log")
        assert config.cache == CacheSettings(120.0, 10_000, unknown_lookups_per_second=7)
        assert config.ip_filters["vpn"].allows(IPv4Address("192.0.2.9"))
        assert not config.policy.tokens_enabled
        assert config.policy.max_lifetime == 90 * 86400
        assert config.policy.max_lifetime_text == "90d"
        assert config.policy.enforce_ip_filter == "vpn"
        assert not config.policy.allow_permission_updates
        assert config.policy.max_rate_limit == RateLimit(120, 60, "120/m")

    @pytest.mark.parametrize("key", ["trusted_proxies", "admin_trusted_proxies"])
    def test_empty_proxy_list_trusts_nobody(self, key: str) -> None:
        """``[]`` trusts no peer, loopback included."""
        config = parse(MINIMAL + f"{key}: []\n")
        assert not getattr(config, key).contains(IPv4Address("127.0.0.1"))

    @pytest.mark.parametrize(
        ("store", "expected"),
        [
            pytest.param("sqlite:///data/a.db", "sqlite:////srv/authsvc/data/a.db", id="relative"),
            pytest.param("sqlite:///../var/a.db", "sqlite:////srv/var/a.db", id="parent folder"),
            pytest.param("sqlite:////var/lib/a.db", "sqlite:////var/lib/a.db", id="absolute"),
            pytest.param("postgres://u@h/db", "postgres://u@h/db", id="postgres alias"),
        ],
    )
    def test_store_paths(self, store: str, expected: str) -> None:
        """SQLite paths resolve against the file's folder; PostgreSQL URLs are kept."""
        assert parse(MINIMAL + f"store: {store}\n").store == expected

    @pytest.mark.parametrize(
        ("key_file", "expected"),
        [
            pytest.param("secret.key", "/srv/authsvc/secret.key", id="relative"),
            pytest.param("../var/k", "/srv/var/k", id="parent folder"),
            pytest.param("/etc/authsvc/k", "/etc/authsvc/k", id="absolute"),
        ],
    )
    def test_secret_key_file_paths(self, key_file: str, expected: str) -> None:
        """The key file resolves against the file's folder."""
        config = parse(MINIMAL + f"secret_key_file: {key_file}\n")
        assert config.secret_key_file == Path(expected)

    @pytest.mark.parametrize(
        ("text", "host", "port", "unix_path"),
        [
            pytest.param("127.0.0.1:9090", "127.0.0.1", 9090, None, id="IPv4"),
            pytest.param("'[::]:443'", "::", 443, None, id="IPv6"),
            pytest.param("localhost:1", "localhost", 1, None, id="host name"),
            pytest.param("unix:/run/authsvc.sock", None, None, "/run/authsvc.sock", id="unix"),
            pytest.param("unix:run/a.sock", None, None, "/srv/authsvc/run/a.sock", id="unix rel"),
        ],
    )
    def test_listen_addresses(
        self, text: str, host: str | None, port: int | None, unix_path: str | None
    ) -> None:
        """host:port, [IPv6]:port and unix:/path are understood."""
        address = parse(MINIMAL + f"listen:\n  auth: {text}\n").listen.auth
        assert (address.host, address.port, address.unix_path) == (host, port, unix_path)

    def test_yaml_booleans(self) -> None:
        """Every spelling that YAML reads as a boolean is accepted (on/off, yes/no)."""
        config = parse(MINIMAL + policy(tokens_enabled="off"))
        assert not config.policy.tokens_enabled

    def test_nulls_in_policy(self) -> None:
        """``max_lifetime: null`` and ``enforce_ip_filter: null`` mean none."""
        config = parse(MINIMAL + policy(max_lifetime="null", enforce_ip_filter="~"))
        assert config.policy.max_lifetime is None
        assert config.policy.enforce_ip_filter is None


# Whole-file problems, found before any section is read: (file text as it is, the
# expected message after "<file>: ")
BAD_DOCUMENTS = [
    pytest.param(
        "- permissions\n",
        "line 1: must be a mapping of settings, not a list",
        id="list instead of mapping",
    ),
    pytest.param(
        "just text\n",
        "line 1: must be a mapping of settings, not 'just text'",
        id="scalar instead of mapping",
    ),
    pytest.param("permissions: [\n", "line 2: invalid YAML", id="invalid YAML"),
    pytest.param(
        MINIMAL + "  Other: {endpoints: [GET /x]\n",
        "line 5: invalid YAML",
        id="unclosed flow mapping",
    ),
    pytest.param(
        "a: 1\n---\nb: 2\n", "line 2: invalid YAML: expected a single document", id="two documents"
    ),
    pytest.param(
        "a: \x07\n",
        "line 1: invalid YAML: special characters are not allowed",
        id="control character",
    ),
    pytest.param(
        "!!python/object/apply:os.system ['true']\n",
        "line 1: the YAML tag !!python/object/apply:os.system is not allowed",
        id="python tag on the document",
    ),
]

# (file text, made complete; the expected message after "<file>: ")
BAD_CONFIGS = [
    pytest.param(
        MINIMAL + "store: !!python/object/apply:os.system ['true']\n",
        "store (line 4): the YAML tag !!python/object/apply:os.system is not allowed",
        id="python tag on a value",
    ),
    pytest.param(
        MINIMAL + "cache:\n  ttl: !!binary aGVsbG8=\n",
        "cache.ttl (line 5): the YAML tag !!binary is not allowed",
        id="binary tag",
    ),
    pytest.param(
        MINIMAL + "cache: !custom {}\n", "cache (line 4): the YAML tag !custom", id="local tag"
    ),
    pytest.param(
        MINIMAL + "colour: blue\n",
        "colour (line 4): unknown key; expected one of",
        id="unknown top-level key",
    ),
    pytest.param(
        MINIMAL + "listen:\n  auth_port: 80\n",
        "listen.auth_port (line 5): unknown key",
        id="unknown listen key",
    ),
    pytest.param(
        "permissions:\n  A:\n    endpoints: [GET /x]\n    owner: me\n",
        "permissions.A.owner (line 4): unknown key",
        id="unknown permission key",
    ),
    pytest.param(
        MINIMAL + policy() + "  max_ttl: 5d\n",
        "security_policy.max_ttl (line 10): unknown key",
        id="unknown policy key",
    ),
    pytest.param(
        MINIMAL + "cache:\n  ttl: 5s\n  size: 1\n",
        "cache.size (line 6): unknown key",
        id="unknown cache key",
    ),
    pytest.param(
        MINIMAL + "<<: {store: x}\n",
        "<< (line 4): YAML merge keys are not supported",
        id="merge key",
    ),
    pytest.param(
        MINIMAL + "store: sqlite:///a.db\nstore: sqlite:///b.db\n",
        "store (line 5): is given twice (first on line 4)",
        id="duplicate key",
    ),
    pytest.param(
        MINIMAL + "cache:\n  ttl: 5\n",
        "cache.ttl (line 5): must be a duration such as 5s, not 5",
        id="duration without unit",
    ),
    pytest.param(
        MINIMAL + "cache:\n  ttl: 0s\n",
        "cache.ttl (line 5): '0s' is not a duration",
        id="zero duration",
    ),
    pytest.param(
        MINIMAL + "cache:\n  ttl: 1d\n",
        "cache.ttl (line 5): '1d' uses the unit 'd', which is not allowed here",
        id="ttl in days",
    ),
    pytest.param(
        MINIMAL + "cache:\n  ttl: 61m\n",
        "cache.ttl (line 5): must be at most 1h",
        id="ttl too long",
    ),
    pytest.param(
        MINIMAL + "cache:\n  max_entries: 0\n",
        "cache.max_entries (line 5): must be a whole number of at least 1",
        id="max_entries zero",
    ),
    pytest.param(
        MINIMAL + "cache:\n  max_entries: -5\n",
        "cache.max_entries (line 5): must be a whole number of at least 1",
        id="max_entries negative",
    ),
    pytest.param(
        MINIMAL + "cache:\n  max_entries: true\n",
        "cache.max_entries (line 5): must be a whole number, not true",
        id="max_entries bool",
    ),
    pytest.param(
        MINIMAL + "cache:\n  max_entries: 1.5\n",
        "cache.max_entries (line 5): must be a whole number, not 1.5",
        id="max_entries float",
    ),
    pytest.param(
        MINIMAL + "cache:\n  max_entries: 0x10\n",
        "cache.max_entries (line 5): must be a whole number of at least 1 in decimal",
        id="max_entries hex",
    ),
    pytest.param(
        MINIMAL + "cache:\n  unknown_lookups_per_second: 0\n",
        "cache.unknown_lookups_per_second (line 5): must be a whole number of at least 1",
        id="unknown lookups zero",
    ),
    pytest.param(
        MINIMAL + "cache:\n  unknown_lookups_per_second: -50\n",
        "cache.unknown_lookups_per_second (line 5): must be a whole number of at least 1",
        id="unknown lookups negative",
    ),
    pytest.param(
        MINIMAL + "cache:\n  unknown_lookups_per_second: 2.5\n",
        "cache.unknown_lookups_per_second (line 5): must be a whole number, not 2.5",
        id="unknown lookups fraction",
    ),
    pytest.param(
        MINIMAL + "cache:\n  unknown_lookups_per_second: '50'\n",
        "cache.unknown_lookups_per_second (line 5): must be a whole number, not '50'",
        id="unknown lookups quoted",
    ),
    pytest.param(
        MINIMAL + "cache:\n  unknown_lookups_per_second: 50/s\n",
        "cache.unknown_lookups_per_second (line 5): must be a whole number, not '50/s'",
        id="unknown lookups with a unit",
    ),
    pytest.param(
        MINIMAL + "cache:\n  unknown_lookups_per_second:\n",
        "cache.unknown_lookups_per_second (line 5): must be a whole number, not null",
        id="unknown lookups empty",
    ),
    pytest.param(
        MINIMAL + policy(max_lifetime="90"),
        "security_policy.max_lifetime (line 6): must be a duration such as 90d",
        id="max_lifetime without unit",
    ),
    pytest.param(
        MINIMAL + policy(max_lifetime="600s"),
        "security_policy.max_lifetime (line 6): '600s' uses the unit 's'",
        id="max_lifetime in seconds",
    ),
    pytest.param(
        MINIMAL + policy(max_lifetime="40000d"),
        "security_policy.max_lifetime (line 6): '40000d' is too long",
        id="max_lifetime beyond 100 years",
    ),
    pytest.param(
        MINIMAL + policy(tokens_enabled="'yes'"),
        "security_policy.tokens_enabled (line 5): must be true or false, not 'yes'",
        id="quoted boolean",
    ),
    pytest.param(
        MINIMAL + policy(allow_permission_updates="1"),
        "security_policy.allow_permission_updates (line 8): must be true or false, not 1",
        id="number as boolean",
    ),
    pytest.param(
        MINIMAL + policy(tokens_enabled=""),
        "security_policy.tokens_enabled (line 5): must be true or false, not null",
        id="empty boolean",
    ),
    pytest.param(
        MINIMAL + policy(enforce_ip_filter="office"),
        "security_policy.enforce_ip_filter (line 7): there is no IP filter named "
        "'office' in ip_filters",
        id="enforced filter missing",
    ),
    pytest.param(
        MINIMAL + policy(enforce_ip_filter="[office]"),
        "security_policy.enforce_ip_filter (line 7): must be a filter name or null, not a list",
        id="enforced filter not a name",
    ),
    pytest.param(
        "permissions:\n",
        "permissions (line 1): must be a mapping of at least one permission",
        id="permissions empty",
    ),
    pytest.param(
        "permissions: {}\n",
        "permissions (line 1): must be a mapping of at least one "
        "permission name to its endpoints, not an empty mapping",
        id="permissions {}",
    ),
    pytest.param(
        "permissions: [A, B]\n", "permissions (line 1): must be a mapping", id="permissions as list"
    ),
    pytest.param(
        "permissions:\n  A:\n    description: x\n",
        "permissions.A (line 3): needs endpoints",
        id="no endpoints",
    ),
    pytest.param(
        "permissions:\n  A:\n    endpoints: []\n",
        "permissions.A.endpoints (line 3): must be a list of at least one",
        id="[]",
    ),
    pytest.param(
        "permissions:\n  A:\n    endpoints: GET /x\n",
        "permissions.A.endpoints (line 3): must be a list",
        id="endpoints not a list",
    ),
    pytest.param(
        "permissions:\n  A:\n",
        "permissions.A (line 2): must be a mapping with description and endpoints, not null",
        id="permission empty",
    ),
    pytest.param(
        "permissions:\n  A:\n    description: 2024\n    endpoints: [GET /x]\n",
        "permissions.A.description (line 3): must be a string, not 2024",
        id="description not a string",
    ),
    pytest.param(
        "permissions:\n  A:\n    endpoints:\n      - GET /x\n      - get /y\n",
        "permissions.A.endpoints.1 (line 5): 'get /y': the method must be an upper-case",
        id="bad template",
    ),
    pytest.param(
        "permissions:\n  A:\n    endpoints:\n      - GET /x/../y\n",
        "permissions.A.endpoints.0 (line 4): 'GET /x/../y' has a '..' segment",
        id="dot-dot template",
    ),
    pytest.param(
        "permissions:\n  A:\n    endpoints:\n      - GET /x\n      - GET /x\n",
        "permissions.A.endpoints.1 (line 5): 'GET /x' is listed twice",
        id="duplicate template",
    ),
    pytest.param(
        "permissions:\n  A:\n    endpoints:\n      - {GET: /x}\n",
        "permissions.A.endpoints.0 (line 4): must be a 'METHOD /path' template, not a mapping",
        id="template as mapping",
    ),
    pytest.param(
        MINIMAL + "  ManageOrganizationTokens:\n    endpoints: [GET /y]\n",
        "permissions.ManageOrganizationTokens (line 4): is reserved",
        id="reserved permission redefined",
    ),
    pytest.param(
        MINIMAL + "  ViewOrganizationTokens:\n    endpoints: [GET /y]\n",
        "permissions.ViewOrganizationTokens (line 4): is reserved",
        id="other reserved permission",
    ),
    pytest.param(
        MINIMAL + "  Read-Things:\n    endpoints: [GET /y]\n",
        "permissions.Read-Things (line 4): must be a letter, then letters, digits or '_'",
        id="bad permission name",
    ),
    pytest.param(
        MINIMAL + "  1Read:\n    endpoints: [GET /y]\n",
        "permissions.1Read (line 4): must be a letter",
        id="name starts with digit",
    ),
    pytest.param(
        MINIMAL + "ip_filters:\n  office: |\n    allow 10.0.0.0/8\n    deny 10.0.0.1/8\n",
        "ip_filters.office (line 7): rule line 2: host bits are set in '10.0.0.1/8'",
        id="bad filter rule",
    ),
    pytest.param(
        MINIMAL + "ip_filters:\n  office: |\n    # staff\n\n    allow 010.0.0.1\n    deny all\n",
        "ip_filters.office (line 8): rule line 3:",
        id="bad rule after comment and blank line",
    ),
    pytest.param(
        MINIMAL + "ip_filters:\n  office: |-\n    allow 10.0.0.0/8\n    allow fe80::1%eth0\n",
        "ip_filters.office (line 7): rule line 2: zone ids",
        id="bad rule in strip block",
    ),
    pytest.param(
        MINIMAL + "ip_filters:\n  office: allow 10.0.0.0/33\n",
        "ip_filters.office (line 5): rule line 1: prefix length /33 is out of range",
        id="bad rule on one line",
    ),
    pytest.param(
        MINIMAL + "ip_filters:\n  office: |\n    permit all\n",
        "ip_filters.office (line 6): rule line 1: unknown verb",
        id="unknown verb",
    ),
    pytest.param(
        MINIMAL + "ip_filters:\n  office: [allow all]\n",
        "ip_filters.office (line 5): must be a block of rules",
        id="rules as list",
    ),
    pytest.param(
        MINIMAL + "ip_filters:\n  office hq: |\n    deny all\n",
        "ip_filters.office hq (line 5): must be a letter",
        id="bad filter name",
    ),
    pytest.param(
        MINIMAL + "ip_filters: [office]\n",
        "ip_filters (line 4): must be a mapping",
        id="filters as list",
    ),
    pytest.param(
        MINIMAL + "trusted_proxies:\n  - 127.0.0.1/32\n  - 10.0.0.1/8\n",
        "trusted_proxies.1 (line 6): '10.0.0.1/8': host bits are set",
        id="bad trusted proxy",
    ),
    pytest.param(
        MINIMAL + "trusted_proxies: 127.0.0.1\n",
        "trusted_proxies (line 4): must be a list",
        id="trusted proxies not a list",
    ),
    pytest.param(
        MINIMAL + "trusted_proxies:\n",
        "trusted_proxies (line 4): must be a list",
        id="trusted proxies empty",
    ),
    pytest.param(
        MINIMAL + "admin_trusted_proxies:\n  - 127.0.0.1/32\n  - 010.0.0.1\n",
        "admin_trusted_proxies.1 (line 6): '010.0.0.1':",
        id="bad admin trusted proxy",
    ),
    pytest.param(
        MINIMAL + "admin_trusted_proxies: 127.0.0.1\n",
        "admin_trusted_proxies (line 4): must be a list",
        id="admin trusted proxies not a list",
    ),
    pytest.param(
        MINIMAL + "admin_trusted_proxies:\n",
        "admin_trusted_proxies (line 4): must be a list of addresses and CIDR ranges ([] "
        "trusts no peer), not null",
        id="admin trusted proxies empty",
    ),
    pytest.param(
        MINIMAL + "ip_filters:\n",
        "ip_filters (line 4): must be a mapping of filter names to rules ({} when there "
        "are none), not null",
        id="filters empty",
    ),
    pytest.param(
        MINIMAL + "store: mysql://root:hunter2@db/authsvc\n",
        "store (line 4): the scheme 'mysql' is not supported",
        id="unknown store",
    ),
    pytest.param(
        MINIMAL + "store: sqlite://var/a.db\n",
        "store (line 4): the scheme 'sqlite' is not supported: use sqlite:///relative/path",
        id="sqlite with two slashes",
    ),
    pytest.param(
        MINIMAL + "store: sqlite:///\n",
        "store (line 4): a SQLite store is a file",
        id="sqlite without path",
    ),
    pytest.param(
        MINIMAL + "store: sqlite:///a.db?mode=ro\n",
        "store (line 4): a SQLite store is a file path without a query",
        id="sqlite with query",
    ),
    pytest.param(
        MINIMAL + "secret_key_file: 42\n",
        "secret_key_file (line 4): must be a file path, not 42",
        id="key file number",
    ),
    pytest.param(
        MINIMAL + "listen:\n  auth: 9090\n",
        "listen.auth (line 5): must be an address, not 9090",
        id="port only",
    ),
    pytest.param(
        MINIMAL + "listen:\n  auth: '::1:9090'\n",
        "listen.auth (line 5): put an IPv6 address in brackets: [::1]:9090",
        id="IPv6 without brackets",
    ),
    pytest.param(
        MINIMAL + "listen:\n  auth: '[::1]'\n",
        "listen.auth (line 5): write an IPv6 address in brackets and a port",
        id="IPv6 without port",
    ),
    pytest.param(
        MINIMAL + "listen:\n  auth: '[10.0.0.1]:80'\n",
        "listen.auth (line 5): '10.0.0.1' in brackets is not an IPv6 address",
        id="IPv4 in brackets",
    ),
    pytest.param(
        MINIMAL + "listen:\n  auth: 127.0.0.1:99999\n",
        "listen.auth (line 5): the port '99999' must be a number from 1 to 65535",
        id="port out of range",
    ),
    pytest.param(
        MINIMAL + "listen:\n  auth: 127.0.0.1:0\n", "listen.auth (line 5): the port", id="port zero"
    ),
    pytest.param(
        MINIMAL + "listen:\n  auth: 127.0.0.01:80\n",
        "listen.auth (line 5): '127.0.0.01' is not an IPv4 address",
        id="IPv4 leading zero",
    ),
    pytest.param(
        MINIMAL + "listen:\n  auth: bad_host:80\n",
        "listen.auth (line 5): 'bad_host' is not a host name or IP address",
        id="bad host name",
    ),
    pytest.param(
        MINIMAL + "listen:\n  auth: localhost\n",
        "listen.auth (line 5): 'localhost' is not an address",
        id="no port",
    ),
    pytest.param(
        MINIMAL + "listen:\n  auth: 'unix:'\n",
        "listen.auth (line 5): write unix: and",
        id="unix without path",
    ),
    pytest.param(
        MINIMAL + "listen:\n  auth: unix:/" + "a" * 120 + "\n",
        "listen.auth (line 5): the socket path",
        id="unix path too long",
    ),
    pytest.param(
        MINIMAL + "listen:\n  admin: 127.0.0.1:9090\n",
        "listen.admin (line 5): must differ from listen.auth",
        id="same address twice",
    ),
]


class TestErrors:
    @pytest.mark.parametrize(("text", "message"), BAD_CONFIGS)
    def test_bad_config(self, text: str, message: str) -> None:
        """Each problem is one error naming the file, the key and the line."""
        errors = errors_of(text)
        assert len(errors) == 1, errors
        assert errors[0].startswith(f"{FILE}: {message}"), errors[0]

    @pytest.mark.parametrize(("text", "message"), BAD_DOCUMENTS)
    def test_bad_document(self, text: str, message: str) -> None:
        """A file that is not one YAML mapping is one error naming the file and the line."""
        errors = errors_of(text, as_is=True)
        assert len(errors) == 1, errors
        assert errors[0].startswith(f"{FILE}: {message}"), errors[0]

    @pytest.mark.parametrize("text", ["", "\n\n", "# nothing yet\n"])
    def test_empty_file(self, text: str) -> None:
        """An empty file (or only comments) is an error naming what it must hold."""
        assert errors_of(text, as_is=True) == [
            f"{FILE}: the file is empty; it must define at least trusted_proxies, "
            "admin_trusted_proxies, permissions, ip_filters and security_policy"
        ]

    def test_all_errors_are_reported_in_file_order(self) -> None:
        """Every problem is reported at once, ordered by line, not only the first."""
        errors = errors_of(
            "cache:\n  ttl: 5\n"
            "permissions:\n  ViewOrganizationTokens: {endpoints: [GET /x]}\n"
            "ip_filters:\n  office: |\n    allow nowhere\n"
            + policy(enforce_ip_filter="home")
            + "listen:\n  auth: nowhere\n"
            "extra: 1\n"
        )
        assert [re.sub(r" \(line \d+\).*", "", e.removeprefix(f"{FILE}: ")) for e in errors] == [
            "cache.ttl",
            "permissions.ViewOrganizationTokens",
            "ip_filters.office",
            "security_policy.enforce_ip_filter",
            "listen.auth",
            "extra",
        ]
        assert "(line 7)" in errors[2]

    def test_broken_filter_is_not_also_missing(self) -> None:
        """A policy naming a filter whose rules are wrong gets one error, about the rules."""
        errors = errors_of(
            MINIMAL
            + "ip_filters:\n  vpn: |\n    allow 10.0.0.1/8\n"
            + policy(enforce_ip_filter="vpn")
        )
        assert len(errors) == 1
        assert errors[0].startswith(f"{FILE}: ip_filters.vpn (line 6): rule line 1:")

    def test_store_password_is_not_echoed(self) -> None:
        """A store URL with a password is never repeated in the error message."""
        errors = errors_of(MINIMAL + "store: mysql://root:hunter2@db/authsvc\n")
        assert "hunter2" not in errors[0]

    def test_python_tag_is_never_executed(self, tmp_path: Path) -> None:
        """A ``!!python/object/apply`` tag is an error; the command never runs."""
        marker = tmp_path / "pwned"
        text = MINIMAL + f"store: !!python/object/apply:os.system ['touch {marker}']\n"
        errors = errors_of(text)
        assert "!!python/object/apply:os.system" in errors[0]
        assert not marker.exists()

    def test_file_name_as_given(self) -> None:
        """Messages name the file the way the operator named it."""
        errors = errors_of("- x\n", Path("conf/mine.yaml"), as_is=True)
        assert errors[0].startswith("conf/mine.yaml: line 1: ")


class TestLoadConfig:
    def test_reads_the_file(self, tmp_path: Path) -> None:
        """load_config reads, parses and resolves paths against the file's folder."""
        path = tmp_path / "authsvc.yaml"
        path.write_text(complete(MINIMAL + "store: sqlite:///tokens.db\n"), encoding="utf-8")
        config = load_config(path)
        assert config.path == path
        assert config.store == f"sqlite:///{tmp_path / 'tokens.db'}"
        assert "ReadThings" in config.permissions

    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing file is a ConfigError naming it."""
        path = tmp_path / "nope.yaml"
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert caught.value.errors == [
            f"{path}: cannot read the configuration: No such file or directory"
        ]

    def test_folder(self, tmp_path: Path) -> None:
        """A folder where the file should be is a ConfigError naming it."""
        with pytest.raises(ConfigError) as caught:
            load_config(tmp_path)
        assert caught.value.errors == [f"{tmp_path}: cannot read the configuration: it is a folder"]

    def test_not_utf8(self, tmp_path: Path) -> None:
        """A file that is not UTF-8 is a ConfigError naming the file and the line."""
        path = tmp_path / "latin1.yaml"
        rest = complete(MINIMAL).removeprefix(MINIMAL)
        path.write_bytes(MINIMAL.encode() + "# caf\u00e9\n".encode("latin-1") + rest.encode())
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert caught.value.errors == [f"{path}: line 4: the file is not valid UTF-8 text"]

    def test_huge_file(self, tmp_path: Path) -> None:
        """A file over 1 MiB (surely not a configuration) is refused without parsing it."""
        path = tmp_path / "big.yaml"
        path.write_bytes(MINIMAL.encode() + b"#" * (1 << 20))
        with pytest.raises(ConfigError, match="larger than 1 MiB"):
            load_config(path)

    def test_errors_carry_the_path(self, tmp_path: Path) -> None:
        """Schema errors from a loaded file name that file."""
        path = tmp_path / "bad.yaml"
        path.write_text(complete(MINIMAL + "colour: blue\n"), encoding="utf-8")
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert caught.value.errors[0].startswith(f"{path}: colour (line 4): unknown key")
