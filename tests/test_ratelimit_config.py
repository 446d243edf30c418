"""``rate_limits`` in the configuration file (SPEC §12): optional, instance by default,
cluster only with a Redis URL, errors with file, key and line that never echo the URL,
and read at start-up only (a change needs a restart)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from authsvc.config import ConfigError, RateLimitSettings
from authsvc.config.diff import diff, keep_restart_keys
from authsvc.config.load import parse_config
from authsvc.config.rate_limits import display_redis_url
from tests.factories import config_document, make_config

FILE = Path("/srv/authsvc/authsvc.yaml")
BASE_TEXT = yaml.safe_dump(config_document())
#: The line of the file the first appended line lands on.
FIRST = BASE_TEXT.count("\n") + 1
SECRET = "s3cr3t-pa55word"  # a stand-in for a password in a URL


def load(section: str) -> RateLimitSettings:
    return parse_config(BASE_TEXT + section, FILE).rate_limits


def errors_of(section: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE_TEXT + section, FILE)
    return caught.value.errors


class TestValues:
    def test_absent_means_instance(self) -> None:
        """A file without the section counts per instance, with no Redis."""
        assert load("") == RateLimitSettings(scope="instance", redis=None)

    def test_empty_section_means_instance(self) -> None:
        assert load("rate_limits:\n").scope == "instance"

    def test_instance_written_out(self) -> None:
        assert load("rate_limits:\n  scope: instance\n").scope == "instance"

    @pytest.mark.parametrize(
        "url",
        [
            "redis://127.0.0.1:6379/0",
            "redis://cache.internal",
            f"rediss://user:{SECRET}@cache.internal:6380/2",
            "redis://[::1]:6379",
        ],
    )
    def test_cluster_with_a_redis_url(self, url: str) -> None:
        settings = load(f"rate_limits:\n  scope: cluster\n  redis: {url!r}\n")
        assert settings == RateLimitSettings(scope="cluster", redis=url)

    def test_the_url_is_kept_out_of_repr(self) -> None:
        """A configuration printed in a log or traceback does not show the password."""
        url = f"redis://:{SECRET}@cache:6379/0"
        config = make_config(rate_limits={"scope": "cluster", "redis": url})
        assert config.rate_limits.redis == url
        assert SECRET not in repr(config)

    def test_display_drops_credentials(self) -> None:
        url = f"rediss://user:{SECRET}@cache.internal:6380/2"
        assert display_redis_url(url) == "rediss://cache.internal:6380/2"
        assert display_redis_url("redis://[::1]:6379") == "redis://[::1]:6379"


class TestErrors:
    def test_cluster_without_redis(self) -> None:
        """Named with the line of the scope that needs it."""
        assert errors_of("rate_limits:\n  scope: cluster\n") == [
            f"{FILE}: rate_limits.redis (line {FIRST + 1}): is required with scope: "
            "cluster: a Redis URL such as redis://host:6379/0 (rediss:// for TLS)"
        ]

    def test_redis_without_cluster(self) -> None:
        """A URL nothing would use is refused, whether the scope is left out or instance."""
        for section, line in (
            ("rate_limits:\n  redis: redis://cache:6379\n", FIRST + 1),
            ("rate_limits:\n  scope: instance\n  redis: redis://cache:6379\n", FIRST + 2),
        ):
            assert errors_of(section) == [
                f"{FILE}: rate_limits.redis (line {line}): is only used with scope: cluster; "
                "write scope: cluster, or remove the URL"
            ]

    def test_unknown_scope(self) -> None:
        (error,) = errors_of("rate_limits:\n  scope: global\n  redis: redis://cache\n")
        assert error.startswith(f"{FILE}: rate_limits.scope (line {FIRST + 1}): ")
        assert "instance or cluster" in error

    def test_unknown_key(self) -> None:
        (error,) = errors_of("rate_limits:\n  scope: instance\n  window: 1s\n")
        assert error.startswith(f"{FILE}: rate_limits.window (line {FIRST + 2}): unknown key")

    def test_not_a_mapping(self) -> None:
        (error,) = errors_of("rate_limits: cluster\n")
        assert error.startswith(f"{FILE}: rate_limits (line {FIRST}): must be a mapping")

    @pytest.mark.parametrize(
        ("url", "says"),
        [
            (f"http://user:{SECRET}@cache:6379/0", "not the scheme 'http'"),
            (f"cache:{SECRET}", "not the scheme 'cache'"),
            (f"redis://user:{SECRET}@/0", "the host is missing"),
            (f"redis://user:{SECRET}@cache:99999/0", "the host or port is malformed"),
            (f"redis://user:{SECRET}@cache:port/0", "the host or port is malformed"),
            (f"redis://user:{SECRET}@cache:0/0", "from 1 to 65535"),
            (f"redis://user:{SECRET}@cache:6379/db", "only be a database number"),
            (f"redis://user:{SECRET}@cache:6379/0?socket_timeout=30", "options in the URL"),
        ],
    )
    def test_bad_url_is_named_never_echoed(self, url: str, says: str) -> None:
        """Each problem is named with the key and line, and the password never appears."""
        (error,) = errors_of(f"rate_limits:\n  scope: cluster\n  redis: {url!r}\n")
        assert error.startswith(f"{FILE}: rate_limits.redis (line {FIRST + 2}): ")
        assert says in error
        assert SECRET not in error

    def test_redis_must_be_a_string(self) -> None:
        (error,) = errors_of("rate_limits:\n  scope: cluster\n  redis: [a, b]\n")
        assert error.startswith(f"{FILE}: rate_limits.redis (line {FIRST + 2}): must be a Redis")


class TestRestart:
    def test_a_change_needs_a_restart(self) -> None:
        """A reload reports the change as needing a restart and keeps the scope in force."""
        old = make_config()
        new = make_config(rate_limits={"scope": "cluster", "redis": "redis://cache:6379/0"})
        assert diff(old, new).needs_restart == ["rate_limits"]
        assert keep_restart_keys(old, new).rate_limits == old.rate_limits
