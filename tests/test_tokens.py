"""Token secrets: format, checksum, digest."""

from __future__ import annotations

import re

import pytest

from authsvc.rules import tokens


class TestSecretFormat:
    def test_new_secret_is_well_formed_and_documented_pattern_finds_it(self) -> None:
        """A fresh secret passes the shape check and the scanner regex from the README."""
        secret = tokens.new_secret()
        assert tokens.is_well_formed(secret)
        assert secret.startswith("authsvc_")
        assert len(secret) == tokens.SECRET_LENGTH == 57
        assert tokens.SECRET_PATTERN.fullmatch(secret)
        assert re.search(r"\bauthsvc_[0-9A-Za-z]{49}\b", f"leaked: {secret}.") is not None

    def test_secrets_are_unique_and_carry_256_bits(self) -> None:
        """The random part is long enough for 256 bits, and secrets do not repeat."""
        assert tokens.RANDOM_LENGTH * 5.954 >= 256
        assert len({tokens.new_secret() for _ in range(200)}) == 200

    def test_checksum_is_crc32_of_prefix_and_body(self) -> None:
        """The last six characters are the base62 CRC32 of everything before them."""
        secret = tokens.new_secret()
        assert secret[-6:] == tokens.checksum(secret[:-6])


def _flip(secret: str, index: int) -> str:
    char = secret[index]
    replacement = "A" if char != "A" else "B"
    return secret[:index] + replacement + secret[index + 1 :]


GOOD = tokens.new_secret()


class TestRejection:
    @pytest.mark.parametrize(
        "candidate",
        [
            pytest.param("", id="empty"),
            pytest.param("authsvc_", id="prefix-only"),
            pytest.param("ghp_" + GOOD[8:], id="wrong-prefix"),
            pytest.param("AUTHSVC_" + GOOD[8:], id="prefix-case"),
            pytest.param(GOOD[:-1], id="too-short"),
            pytest.param(GOOD + "0", id="too-long"),
            pytest.param(GOOD[:20] + "-" + GOOD[21:], id="bad-alphabet"),
            pytest.param(GOOD[:20] + "é" + GOOD[21:], id="non-ascii"),
            pytest.param(_flip(GOOD, 20), id="body-typo-breaks-checksum"),
            pytest.param(_flip(GOOD, -1), id="checksum-typo"),
            pytest.param(GOOD + "\n", id="trailing-newline"),
            pytest.param(" " + GOOD, id="leading-space"),
            pytest.param("A" * 8192, id="8KiB-junk"),
        ],
    )
    def test_malformed_secrets_are_rejected(self, candidate: str) -> None:
        """Wrong prefix, length, alphabet or checksum fails the pure shape check."""
        assert not tokens.is_well_formed(candidate)


class TestDigest:
    def test_digest_depends_on_key_and_secret(self) -> None:
        """The stored digest is keyed: another key or secret gives another digest."""
        secret = tokens.new_secret()
        key = b"k" * 32
        assert tokens.digest(key, secret) == tokens.digest(key, secret)
        assert tokens.digest(key, secret) != tokens.digest(b"j" * 32, secret)
        assert tokens.digest(key, secret) != tokens.digest(key, tokens.new_secret())
        assert secret.encode() not in tokens.digest(key, secret)

    def test_token_ids_are_public_shaped(self) -> None:
        """Ids have their own shape, so a secret can never be mistaken for an id."""
        token_id = tokens.new_token_id()
        assert tokens.is_token_id(token_id)
        assert not tokens.is_token_id(tokens.new_secret())
        assert not tokens.is_token_id("tok_../../etc")
