"""Property tests of authsvc.rules.durations (round trips, refusals) and
authsvc.rules.tokens (secret format, checksum, redaction).

Run longer: ``AUTHSVC_HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest -q
tests/adversarial/test_duration_token_properties.py --hypothesis-show-statistics``.
"""

from __future__ import annotations

import re
import string
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authsvc.rules.durations import UNIT_SECONDS, format_duration, parse_duration
from authsvc.rules.tokens import (
    ALPHABET,
    CHECKSUM_LENGTH,
    PREFIX,
    SECRET_PATTERN,
    checksum,
    is_well_formed,
    new_secret,
    redact_secrets,
)

UNITS = "smhd"
#: The longest duration accepted (documented in authsvc.rules.durations), written out
#: here so that the reference does not borrow the constant it checks.
HUNDRED_YEARS = 36500 * 86400
SECRET_LIKE = re.compile(re.escape(PREFIX) + "[0-9A-Za-z]{20,}")


def reference_duration(text: str, units: str) -> int | None:
    """Seconds of ``<positive integer without leading zeros><unit>``, at most 100 years;
    None for anything else."""
    if len(text) < 2 or text[-1] not in units:
        return None
    digits = text[:-1]
    if not all(c in string.digits for c in digits) or digits[0] == "0" or len(digits) > 12:
        return None
    seconds = int(digits) * UNIT_SECONDS[text[-1]]
    return seconds if seconds <= HUNDRED_YEARS else None


DURATION_TEXT = st.one_of(
    st.builds(lambda n, u: f"{n}{u}", st.integers(0, 10**13), st.sampled_from("smhdwyMS")),
    st.builds(
        lambda sign, n, u, tail: f"{sign}{n}{u}{tail}",
        st.sampled_from(["", "", "0", "00", "+", "-", " "]),
        st.integers(0, 10**6),
        st.sampled_from("smhd"),
        st.sampled_from(["", "", "", " ", "\n", "s", ".5"]),
    ),
    st.text(alphabet="0123456789smhd+- ._٣\n", max_size=14),
    st.text(max_size=8),
)


class TestDurations:
    @given(st.integers(1, HUNDRED_YEARS))
    def test_format_then_parse_is_identity(self, seconds: int) -> None:
        """Every duration up to 100 years formats to text that parses back to it, with the
        largest unit that divides it."""
        text = format_duration(seconds)
        assert parse_duration(text) == seconds
        unit = text[-1]
        bigger = UNITS[UNITS.index(unit) + 1 :]
        assert all(seconds % UNIT_SECONDS[u] for u in bigger), (seconds, text)

    @given(DURATION_TEXT, st.sampled_from(["smhd", "mhd", "s", "d"]))
    def test_parse_agrees_with_the_reference(self, text: str, units: str) -> None:
        """parse_duration accepts exactly the reference's durations, with their value,
        and refuses everything else with a ValueError."""
        expected = reference_duration(text, units)
        if expected is None:
            with pytest.raises(ValueError, match=r"\S"):
                parse_duration(text, units=units)
        else:
            assert parse_duration(text, units=units) == expected

    @given(st.integers(1, HUNDRED_YEARS // 86400), st.sampled_from(UNITS))
    def test_parse_then_format_is_canonical(self, number: int, unit: str) -> None:
        """Parsing then formatting gives the canonical spelling of the same length of time."""
        seconds = number * UNIT_SECONDS[unit]
        assert parse_duration(format_duration(parse_duration(f"{number}{unit}"))) == seconds

    @given(
        st.one_of(
            st.integers(max_value=0),
            st.booleans(),
            st.floats(),
            st.text(max_size=5),
            st.none(),
        )
    )
    def test_format_refuses_non_positive_and_non_integers(self, value: object) -> None:
        """format_duration takes only a positive int (not a bool); anything else is a
        ValueError."""
        with pytest.raises(ValueError, match="positive whole number"):
            format_duration(value)  # type: ignore[arg-type]

    @given(st.one_of(st.integers(), st.floats(), st.none(), st.booleans(), st.lists(st.text())))
    def test_parse_refuses_non_strings(self, value: object) -> None:
        """A YAML or JSON value that is not a string is a ValueError, never a TypeError."""
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(value)  # type: ignore[arg-type]


def _reference_checksum(body: str) -> str:
    value = zlib.crc32(body.encode("ascii"))
    digits = ""
    for _ in range(CHECKSUM_LENGTH):
        value, digit = divmod(value, 62)
        digits = ALPHABET[digit] + digits
    assert value == 0
    return digits


_SECRETS = st.builds(lambda _: new_secret(), st.integers())
_ANY_CHAR = st.one_of(st.sampled_from(ALPHABET + "_-+/=% \n"), st.characters())


class TestSecrets:
    @given(_SECRETS)
    def test_new_secrets_are_well_formed(self, secret: str) -> None:
        """A new secret has the prefix, the scanners' pattern, the length and the checksum."""
        assert is_well_formed(secret)
        assert SECRET_PATTERN.fullmatch(secret)
        assert secret[-CHECKSUM_LENGTH:] == _reference_checksum(secret[:-CHECKSUM_LENGTH])

    @given(_SECRETS, st.integers(min_value=0), _ANY_CHAR)
    def test_any_substitution_breaks_the_secret(self, secret: str, at: int, char: str) -> None:
        """Changing any one character of a secret (prefix, randomness or checksum) makes it
        not well-formed."""
        at %= len(secret)
        if secret[at] == char:
            return
        assert not is_well_formed(secret[:at] + char + secret[at + 1 :])

    @given(_SECRETS, st.integers(min_value=0), _ANY_CHAR)
    def test_any_insertion_or_deletion_breaks_the_secret(
        self, secret: str, at: int, char: str
    ) -> None:
        """Inserting or deleting one character anywhere makes a secret not well-formed."""
        assert not is_well_formed(secret[: at % 50] + char + secret[at % 50 :])
        at %= len(secret)
        assert not is_well_formed(secret[:at] + secret[at + 1 :])

    @given(st.text(alphabet=ALPHABET, min_size=43, max_size=43))
    def test_checksum_is_base62_crc32(self, randomness: str) -> None:
        """checksum() is the 6-character base62 CRC32, and a body with it is well-formed."""
        body = PREFIX + randomness
        assert checksum(body) == _reference_checksum(body)
        assert is_well_formed(body + checksum(body))

    @given(st.text(max_size=80))
    def test_arbitrary_text_is_not_well_formed(self, text: str) -> None:
        """Text that is not prefix, 49 base62 characters and their checksum is refused."""
        expected = SECRET_PATTERN.fullmatch(text) is not None and text[
            -CHECKSUM_LENGTH:
        ] == _reference_checksum(text[:-CHECKSUM_LENGTH])
        assert is_well_formed(text) is expected


_FILLER = st.text(alphabet=string.printable + "éß_", max_size=30)


@st.composite
def texts_with_secrets(draw: st.DrawFn) -> tuple[str, list[str]]:
    """Text with whole and cut-short (20+ characters of randomness) secrets inside."""
    secrets: list[str] = []
    text = draw(_FILLER)
    for _ in range(draw(st.integers(0, 3))):
        secret = new_secret()
        secret = secret[: draw(st.integers(len(PREFIX) + 20, len(secret)))]
        secrets.append(secret)
        text += secret + draw(_FILLER)
    return text, secrets


class TestRedaction:
    @given(texts_with_secrets())
    def test_no_secret_survives(self, case: tuple[str, list[str]]) -> None:
        """After redaction no secret, whole or cut short, and nothing secret-shaped is left."""
        text, secrets = case
        redacted = redact_secrets(text)
        assert SECRET_LIKE.search(redacted) is None, redacted
        for secret in secrets:
            assert secret[len(PREFIX) :] not in redacted, (text, redacted)

    @pytest.mark.parametrize(
        "shape",
        [
            pytest.param("{s}{s}", id="pasted-twice"),
            pytest.param("/admin/v1/tokens/{s}{s}/rotate", id="pasted-twice-in-a-path"),
            pytest.param("{cut}{s}", id="cut-short-then-whole"),
            pytest.param("{s} {s}", id="twice-with-a-space"),
        ],
    )
    def test_secrets_next_to_each_other_are_all_redacted(self, shape: str) -> None:
        """Secrets written back to back (a paste done twice) are redacted, every one."""
        secret = new_secret()
        redacted = redact_secrets(shape.format(s=secret, cut=secret[:30]))
        assert secret[len(PREFIX) :] not in redacted, redacted
        assert secret[len(PREFIX) : len(PREFIX) + 20] not in redacted, redacted

    @given(_FILLER)
    def test_text_without_secrets_is_unchanged(self, text: str) -> None:
        """Text with nothing secret-shaped in it comes back unchanged."""
        if SECRET_LIKE.search(text) is None:
            assert redact_secrets(text) == text
