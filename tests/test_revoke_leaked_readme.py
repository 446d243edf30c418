"""What the README tells secret scanners holds for the secrets authsvc issues: the pattern
finds them (and nothing longer), the checksum snippet agrees with authsvc's own check, and
the nginx location it shows is the shipped file's."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import cast

import pytest

from authsvc.rules.tokens import PREFIX, SECRET_LENGTH, is_well_formed, new_secret
from tests.processes import REPO

README = (REPO / "README.md").read_text()
SECTION = README.split("## Secret scanners", 1)[1].split("\n## ", 1)[0]


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", SECTION, flags=re.DOTALL)


def one_pattern() -> re.Pattern[str]:
    """The single regular expression the section gives."""
    found = re.search(r"one regular expression \(.*?\):\s*`([^`]+)`", SECTION, re.DOTALL)
    assert found is not None, "the README section gives no single regular expression"
    # PCRE, RE2 and Hyperscan spell the end of the text \z; Python (before 3.14) \Z
    return re.compile(found.group(1).replace(r"\z", r"\Z"))


def checksum_check() -> Callable[[str], bool]:
    """The README's Python checksum function."""
    (source,) = code_blocks("python")
    names: dict[str, object] = {}
    exec(source, names)  # noqa: S102 - the README's own example, run to prove it right
    return cast(Callable[[str], bool], names["has_authsvc_checksum"])


class TestPattern:
    @pytest.mark.parametrize(
        ("before", "after"),
        [("", ""), (" ", "\n"), ('"', '"'), ("TOKEN=", ";"), ("Bearer ", ""), ("'", "'")],
    )
    def test_finds_issued_secrets_where_they_turn_up(self, before: str, after: str) -> None:
        """A secret at the start or end of a text, in quotes, after = or Bearer."""
        secret = new_secret()
        match = one_pattern().search(f"{before}{secret}{after}")
        assert match is not None
        assert match.group(1) == secret

    @pytest.mark.parametrize("around", ["x{}", "{}x", "_{}", "{}_", "{}0"])
    def test_not_inside_longer_words(self, around: str) -> None:
        """Glued to more letters, digits or underscores it is not a secret of ours."""
        assert one_pattern().search(around.format(new_secret())) is None

    def test_github_fields_say_the_same(self) -> None:
        """The custom-pattern table's format and surroundings make up the same expression."""
        row = r"^\| (Secret format|Before secret|After secret) \| `(.+)` \|$"
        cells = dict(re.findall(row, SECTION, flags=re.MULTILINE))
        combined = (
            f"(?:{cells['Before secret'].replace(chr(92) + '|', '|')})"
            f"({cells['Secret format']})"
            f"(?:{cells['After secret'].replace(chr(92) + '|', '|')})"
        )
        assert combined.replace(r"\z", r"\Z") == one_pattern().pattern


class TestChecksum:
    def test_agrees_with_authsvc(self) -> None:
        """The snippet accepts issued secrets and refuses them with any character changed."""
        check = checksum_check()
        for position in range(len(PREFIX), SECRET_LENGTH):
            secret = new_secret()
            assert check(secret)
            typo = "a" if secret[position] != "a" else "b"
            changed = secret[:position] + typo + secret[position + 1 :]
            assert not is_well_formed(changed)
            assert not check(changed)


def statements(nginx: str) -> set[str]:
    """The statements of an nginx text, comments dropped, white space normalised."""
    code = " ".join(line.split("#")[0] for line in nginx.splitlines())
    parts = re.split(r"[;{}]", code)
    return {" ".join(part.split()) for part in parts if part.strip()}


class TestNginxLocation:
    def test_the_shown_location_is_the_shipped_files(self) -> None:
        """Every statement of the README's location block is in the shipped snippet."""
        shipped = (REPO / "deploy" / "nginx" / "authsvc-revoke-public.conf").read_text()
        shown = next(block for block in code_blocks("nginx") if "location =" in block)
        assert statements(shown) <= statements(shipped)
