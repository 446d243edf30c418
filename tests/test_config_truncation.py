"""A configuration cut short never yields a looser policy (SECURITY 28), SIGHUP included.

Every cut of the shipped config/authsvc.yaml either fails to load or is no looser than the
whole file (tests/looser.py defines "looser"). One parse of the file costs ~20 ms, so to
stay within seconds the cuts are those that can compose to different documents:

- every line end (the cut just after a newline), except after a blank or comment-only
  line (the same document as the cut before that line);
- every byte offset of ``trusted_proxies``, ``admin_trusted_proxies`` and
  ``security_policy`` (the last section, where a cut may leave all the others whole),
  except inside a comment (the same document as the cut at its ``#``) and just after a
  blank (the same as the cut before it: trailing blanks at the end of a YAML stream
  change nothing);
- through a real reload (ConfigReloader.reload("SIGHUP"), the SIGHUP path) on a running
  runtime, a sample of both.

The policy's bytes are also cut in the shipped file with every policy switch strict
(where a lost policy key would loosen it), and the reload runs on that strict file.

A cut inside the catalog or ``ip_filters`` can only drop or mangle their tail: the cut
file then lacks ``security_policy``, and the line ends show such a file is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from authsvc.config import Config, ConfigError
from authsvc.config.load import load_config, parse_config
from authsvc.service.runtime import Runtime
from tests.looser import loosenings
from tests.webapp import ENVIRON

SHIPPED = Path(__file__).resolve().parent.parent / "config" / "authsvc.yaml"
TEXT = SHIPPED.read_text(encoding="utf-8")
#: Where the comment on each line starts ('#' at the start or after a blank), if any.
COMMENT = re.compile(r"(?:^|(?<=\s))#.*$", re.MULTILINE)


def line_ends(text: str) -> list[int]:
    """The offset just after every newline that ends a line holding YAML."""
    ends, start = [], 0
    for match in re.finditer("\n", text):
        line = text[start : match.start()].strip()
        if line and not line.startswith("#"):
            ends.append(match.end())
        start = match.end()
    return ends


def section_bytes(text: str, sections: tuple[str, ...]) -> list[int]:
    """Every offset from each top-level key of ``sections`` to the next top-level key (or
    the end), except inside comments and just after a blank."""
    starts = {m.group(1): m.start() for m in re.finditer(r"^([a-z_]+):", text, re.MULTILINE)}
    keys = sorted(starts, key=starts.__getitem__)
    inside = {i for m in COMMENT.finditer(text) for i in range(m.start() + 1, m.end() + 1)}
    offsets: list[int] = []
    for key in sections:
        later = [starts[k] for k in keys if starts[k] > starts[key]]
        end = min(later, default=len(text))
        span = range(starts[key], end + 1)
        offsets += [i for i in span if i not in inside and text[i - 1] not in " \t"]
    return offsets


def cut_results(text: str, offsets: list[int], path: Path) -> Iterator[tuple[int, Config | None]]:
    """(offset, the configuration the cut loads, or None when it is refused)."""
    for offset in offsets:
        try:
            yield offset, parse_config(text[:offset], path)
        except ConfigError:
            yield offset, None


def edited(*edits: tuple[str, str]) -> str:
    """The shipped file with each (old, new) text replaced once (each must be there)."""
    text = TEXT
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def _edited(*edits: tuple[str, str]) -> Config:
    return parse_config(edited(*edits), SHIPPED)


#: The shipped file, and the same with every policy switch at its strict setting: there
#: a policy key lost to a cut would loosen the policy, if it were not required.
VARIANTS = {
    "shipped": TEXT,
    "strict": edited(
        ("tokens_enabled: true", "tokens_enabled: false"),
        ("max_lifetime: null", "max_lifetime: 90d"),
        ("enforce_ip_filter: null", "enforce_ip_filter: office"),
        ("allow_permission_updates: true", "allow_permission_updates: false"),
        ("max_rate_limit: null", "max_rate_limit: 600/m"),
    ),
}
BYTE_SECTIONS = ("trusted_proxies", "admin_trusted_proxies", "security_policy")
#: The value of the file's last key: no shorter cut may load.
LAST_VALUE = re.compile(r"allow_permission_updates: (true|false)")


def _violations(text: str, results: list[tuple[int, Config | None]]) -> list[str]:
    full = parse_config(text, SHIPPED)
    return [
        f"cut at byte {offset} (…{text[max(0, offset - 30) : offset]!r}): {found}"
        for offset, config in results
        if config is not None and (found := loosenings(full, config))
    ]


OFFICE = "allow 10.0.0.0/8\n    allow 2001:db8::/32\n    deny all\n"
# (edits of the shipped file making the "full" one, edits of the shipped file making the
# "cut" one, what loosenings() reports first, or None when the cut is not looser)
LOOSER = [
    pytest.param([], [], None, id="same"),
    pytest.param(
        [("tokens_enabled: true", "tokens_enabled: false")], [], "tokens_enabled", id="tokens-on"
    ),
    pytest.param([], [("tokens_enabled: true", "tokens_enabled: false")], None, id="tokens-off"),
    pytest.param(
        [("allow_permission_updates: true", "allow_permission_updates: false")],
        [],
        "allow_permission_updates",
        id="updates-on",
    ),
    pytest.param([("max_lifetime: null", "max_lifetime: 30d")], [], "max_lifetime", id="no-max"),
    pytest.param(
        [("max_rate_limit: null", "max_rate_limit: 10/s")],
        [("max_rate_limit: null", "max_rate_limit: 601/m")],
        "max_rate_limit",
        id="higher-rate",
    ),
    pytest.param(
        [("max_lifetime: null", "max_lifetime: 30d")],
        [("max_lifetime: null", "max_lifetime: 31d")],
        "max_lifetime",
        id="longer-max",
    ),
    pytest.param(
        [("max_lifetime: null", "max_lifetime: 30d")],
        [("max_lifetime: null", "max_lifetime: 29d")],
        None,
        id="shorter-max",
    ),
    pytest.param(
        [("enforce_ip_filter: null", "enforce_ip_filter: office")],
        [],
        "enforce_ip_filter",
        id="enforcement-dropped",
    ),
    pytest.param(
        [("enforce_ip_filter: null", "enforce_ip_filter: office")],
        [("enforce_ip_filter: null", "enforce_ip_filter: localhost")],
        "enforce_ip_filter",
        id="other-filter-enforced",
    ),
    pytest.param([], [("  - ::1/128\n", "  - ::/0\n")], "trusted_proxies", id="wider-proxy"),
    pytest.param([], [("  - ::1/128\n", "")], None, id="fewer-proxies"),
    pytest.param(
        [],
        [("admin_trusted_proxies: []", "admin_trusted_proxies: [127.0.0.1/32]")],
        "admin_trusted_proxies",
        id="admin-proxy-added",
    ),
    pytest.param(
        [],
        [("      - GET /api/v1/usage\n", "      - GET /api/v1/usage/\n")],
        "permission ViewUsage",
        id="other-template",
    ),
    pytest.param([], [("      - GET /api/v1/usage\n", "")], None, id="fewer-templates"),
    pytest.param([], [(OFFICE, "allow 10.0.0.0/7\n    deny all\n")], "ip_filters", id="wider"),
    pytest.param([], [(OFFICE, "deny 10.9.0.0/16\n    " + OFFICE)], None, id="narrower"),
    pytest.param(
        [], [("  localhost: |\n    allow 127.0.0.1\n", "  localhost: |\n")], None, id="fewer"
    ),
    pytest.param(
        [], [("  localhost: |", "  lab: |\n    deny all\n  localhost: |")], "ip_filters", id="add"
    ),
    pytest.param([], [("ttl: 5s", "ttl: 6s")], "cache.ttl", id="longer-ttl"),
    pytest.param([], [("second: 50", "second: 51")], "cache.unknown_lookups", id="larger-budget"),
]


class TestLoosenings:
    @pytest.mark.parametrize(("full_edits", "cut_edits", "expected"), LOOSER)
    def test_definition(
        self,
        full_edits: list[tuple[str, str]],
        cut_edits: list[tuple[str, str]],
        expected: str | None,
    ) -> None:
        """loosenings() reports each kind of widening, and nothing that only narrows."""
        found = loosenings(_edited(*full_edits), _edited(*cut_edits))
        if expected is None:
            assert found == []
        else:
            assert found, "not seen as looser"
            assert found[0].startswith(expected), found


class TestEveryCut:
    def test_every_line_end(self) -> None:
        """Cut after any line, the shipped file fails to load or is no looser."""
        results = list(cut_results(TEXT, line_ends(TEXT), SHIPPED))
        assert _violations(TEXT, results) == []

    @pytest.mark.parametrize(
        ("variant", "sections"),
        [
            pytest.param("shipped", BYTE_SECTIONS, id="shipped"),
            # The variants differ in the policy's values only: a cut before it is the same.
            pytest.param("strict", ("security_policy",), id="strict"),
        ],
    )
    def test_every_byte_of_the_proxies_and_the_policy(
        self, variant: str, sections: tuple[str, ...]
    ) -> None:
        """Cut at any byte of the proxy lists and the policy, the file fails to load or is
        no looser; only cuts after the last policy value's line break load at all."""
        text = VARIANTS[variant]
        results = list(cut_results(text, section_bytes(text, sections), SHIPPED))
        assert _violations(text, results) == []
        loaded = [offset for offset, config in results if config is not None]
        last = list(LAST_VALUE.finditer(text))[-1]
        assert loaded
        # a file must end with a line break: the earliest cut that loads is the end of the
        # last value's line (its comment included)
        assert min(loaded) == text.index("\n", last.end()) + 1


class TestReload:
    async def test_sampled_cuts_never_loosen_the_live_configuration(
        self, tmp_path: Path, store_url: str
    ) -> None:
        """Through ConfigReloader.reload("SIGHUP") on a running runtime, a cut of the strict
        file either changes nothing or puts in force a configuration no looser than the
        last good one."""
        folder = tmp_path / "config"
        folder.mkdir()
        path = folder / "authsvc.yaml"
        shipped_store = "store: sqlite:///../var/authsvc.db"
        text = VARIANTS["strict"].replace(shipped_store, f"store: {store_url}", 1)
        path.write_text(text)
        runtime = await Runtime.open(load_config(path), environ=ENVIRON)
        try:
            reloader = runtime.reloader(path)
            full = runtime.live.current
            # the whole file too, so that the swap path is taken at least once
            offsets = sorted(
                {
                    *line_ends(text)[::9],
                    *section_bytes(text, ("security_policy",))[::4],
                    len(text),
                }
            )
            applied = 0
            for offset in offsets:
                last_good = runtime.live.current
                path.write_text(text[:offset])
                if reloader.reload("SIGHUP"):
                    applied += 1
                else:
                    assert runtime.live.current is last_good
                current = runtime.live.current
                assert loosenings(full, current) == [], offset
                assert loosenings(last_good, current) == [], offset
            assert applied, "no cut loaded: the swap path was not exercised"
            assert 0 < applied < len(offsets)
        finally:
            await runtime.close()
