"""Durations: ``<positive integer><unit>`` ⇄ seconds."""

from __future__ import annotations

import pytest

from authsvc.rules.durations import MAX_SECONDS, format_duration, parse_duration


class TestParseDuration:
    @pytest.mark.parametrize(
        ("text", "seconds"),
        [
            pytest.param("1s", 1, id="second"),
            pytest.param("5s", 5, id="seconds"),
            pytest.param("30m", 1800, id="minutes"),
            pytest.param("1h", 3600, id="hour"),
            pytest.param("90d", 90 * 86400, id="days"),
            pytest.param("36500d", MAX_SECONDS, id="the 100-year maximum"),
            pytest.param("120s", 120, id="no normalisation needed"),
        ],
    )
    def test_valid(self, text: str, seconds: int) -> None:
        """A positive whole number and a unit letter give that many seconds."""
        assert parse_duration(text) == seconds

    @pytest.mark.parametrize(
        "text",
        [
            pytest.param("", id="empty"),
            pytest.param("0d", id="zero"),
            pytest.param("00s", id="zeros"),
            pytest.param("-5m", id="negative"),
            pytest.param("+5m", id="plus sign"),
            pytest.param("5", id="no unit"),
            pytest.param("d", id="no number"),
            pytest.param("1.5h", id="fraction"),
            pytest.param("1e3s", id="exponent"),
            pytest.param("5 m", id="inner space"),
            pytest.param(" 5m", id="leading space"),
            pytest.param("5m\n", id="trailing newline"),
            pytest.param("5M", id="upper-case unit"),
            pytest.param("5w", id="unknown unit"),
            pytest.param("5ms", id="two units"),
            pytest.param("1h30m", id="compound"),
            pytest.param("\uff15m", id="full-width digit"),
            pytest.param("1_000s", id="underscore"),
            pytest.param("9" * 40 + "s", id="huge number"),
        ],
    )
    def test_invalid(self, text: str) -> None:
        """Anything but digits and one unit letter is refused with the rule spelled out."""
        with pytest.raises(ValueError, match="is not a duration"):
            parse_duration(text)

    def test_message_lists_the_allowed_units(self) -> None:
        """The error says what to write instead, with this call's units."""
        with pytest.raises(ValueError, match="not a duration") as caught:
            parse_duration("0d", units="mhd")
        assert str(caught.value) == (
            "'0d' is not a duration: use a positive whole number followed by one of m, h, d"
        )

    def test_leading_zero_is_refused(self) -> None:
        """``07d`` is refused, not read as 7 days, with a specific explanation."""
        with pytest.raises(ValueError, match="without leading zeros"):
            parse_duration("07d")

    def test_unit_not_allowed_here(self) -> None:
        """A real unit outside ``units`` (seconds for a token expiry) is refused."""
        with pytest.raises(ValueError, match=r"unit 's'.*not allowed here"):
            parse_duration("30s", units="mhd")

    def test_longer_than_100_years(self) -> None:
        """Values beyond 100 years are refused so date arithmetic cannot overflow."""
        with pytest.raises(ValueError, match="too long"):
            parse_duration("36501d")
        with pytest.raises(ValueError, match="too long"):
            parse_duration("999999999999s")

    @pytest.mark.parametrize(
        ("value", "shown"),
        [
            pytest.param(5, "5", id="int"),
            pytest.param(True, "true", id="bool"),
            pytest.param(None, "null", id="null"),
            pytest.param(1.5, "1.5", id="float"),
            pytest.param(["5m"], "['5m']", id="list"),
        ],
    )
    def test_non_string_values(self, value: object, shown: str) -> None:
        """Numbers, booleans and null from YAML or JSON are refused with a clear sentence."""
        with pytest.raises(ValueError, match="not a duration") as caught:
            parse_duration(value, units="mhd")  # type: ignore[arg-type]  # JSON gives any type
        assert str(caught.value).startswith(f"{shown} is not a duration: ")
        assert "e.g. '30d'" in str(caught.value)

    def test_long_input_is_not_echoed_whole(self) -> None:
        """A huge value (say, from a request body) is cut short in the error message."""
        with pytest.raises(ValueError, match="not a duration") as caught:
            parse_duration("x" * 10_000)
        assert len(str(caught.value)) < 200

    def test_bad_units_argument(self) -> None:
        """A caller asking for a unit that does not exist is a programming error."""
        with pytest.raises(ValueError, match="units"):
            parse_duration("5m", units="mw")


class TestFormatDuration:
    @pytest.mark.parametrize(
        ("seconds", "text"),
        [
            pytest.param(1, "1s", id="second"),
            pytest.param(90, "90s", id="not a whole minute"),
            pytest.param(120, "2m", id="minutes"),
            pytest.param(5400, "90m", id="not a whole hour"),
            pytest.param(7200, "2h", id="hours"),
            pytest.param(86400, "1d", id="day"),
            pytest.param(90 * 86400, "90d", id="days"),
            pytest.param(36 * 3600, "36h", id="not a whole day"),
        ],
    )
    def test_largest_exact_unit(self, seconds: int, text: str) -> None:
        """The largest unit that divides the value exactly is chosen."""
        assert format_duration(seconds) == text

    @pytest.mark.parametrize("text", ["1s", "59s", "61m", "25h", "90d", "36500d"])
    def test_round_trip(self, text: str) -> None:
        """Formatting a parsed duration gives back a text that parses to the same value."""
        seconds = parse_duration(text)
        assert parse_duration(format_duration(seconds)) == seconds

    @pytest.mark.parametrize("value", [0, -60, True, 1.5])
    def test_not_a_positive_integer(self, value: int) -> None:
        """Zero, negatives, bools and floats are refused."""
        with pytest.raises(ValueError, match="not a positive whole number"):
            format_duration(value)
