"""Rate limits as rules (SPEC §12): their syntax, the policy's maximum at issuance and at
use, the delegation bounds of a rate-limited caller, and ``config check``'s view of tokens
above a new maximum. The buckets are tested in tests/test_ratelimit_*.py."""

from __future__ import annotations

from typing import Any

import pytest

from authsvc.config.check import lowered_limit
from authsvc.rules import delegation, policy
from authsvc.rules.decision import effective_rate_limit
from authsvc.rules.policy import Issuance, Refused
from authsvc.rules.ratelimit import RateLimit, parse_rate_limit, stricter
from tests.factories import make_config, make_record

MANAGE = "ManageOrganizationTokens"


def refusal(call: Any, *args: Any) -> Refused:
    with pytest.raises(Refused) as caught:
        call(*args)
    return caught.value


class TestSyntax:
    @pytest.mark.parametrize(
        ("text", "count", "per"),
        [("600/m", 600, 60), ("5/s", 5, 1), ("1/h", 1, 3600), ("1000000000/s", 10**9, 1)],
    )
    def test_valid(self, text: str, count: int, per: int) -> None:
        assert parse_rate_limit(text) == RateLimit(count, per, text)

    @pytest.mark.parametrize(
        "text",
        [
            "0/s",  # a zero count lets nothing through: not a limit but a typo
            "5/d",  # days are not a unit of a rate limit
            "5/ s",
            " 5/s",
            "05/s",
            "5",
            "/s",
            "-1/s",
            "1.5/s",
            "5/S",
            "١/s",  # a non-ASCII digit must not pass as a count
            "1000000001/s",
            "10000000000/s",
        ],
    )
    def test_invalid(self, text: str) -> None:
        with pytest.raises(ValueError, match=r"600/m|at most"):
            parse_rate_limit(text)

    def test_limits_compare_per_second(self) -> None:
        """120/m equals 2/s; 7200/h too; 121/m is higher."""
        assert parse_rate_limit("120/m").rate == parse_rate_limit("2/s").rate
        assert parse_rate_limit("7200/h").rate == parse_rate_limit("2/s").rate
        assert parse_rate_limit("121/m").rate > parse_rate_limit("2/s").rate

    def test_stricter(self) -> None:
        low, high = parse_rate_limit("1/s"), parse_rate_limit("100/m")
        assert stricter(low, high) is low
        assert stricter(high, low) is low
        assert stricter(None, high) is high
        assert stricter(low, None) is low
        assert stricter(None, None) is None


def create(max_rate_limit: str | None, rate_limit: object) -> Issuance:
    config = make_config(security_policy={"max_rate_limit": max_rate_limit})
    return policy.check_create(
        config,
        name="n",
        permissions=["Reader"],
        expires_in=None,
        ip_filter=None,
        rate_limit=rate_limit,
    )


class TestIssuance:
    def test_no_maximum_no_limit(self) -> None:
        assert create(None, None).rate_limit is None

    def test_limit_kept_as_written(self) -> None:
        assert create(None, "600/m").rate_limit == RateLimit(600, 60, "600/m")

    @pytest.mark.parametrize(
        ("maximum", "asked", "code"),
        [
            pytest.param(None, "0/s", "invalid_rate_limit", id="zero"),
            pytest.param(None, "5/d", "invalid_rate_limit", id="unit"),
            pytest.param(None, 5, "invalid_rate_limit", id="not-a-string"),
            pytest.param(None, ["5/s"], "invalid_rate_limit", id="a-list"),
            pytest.param("600/m", None, "rate_limit_required", id="required"),
            pytest.param("600/m", "11/s", "rate_limit_too_high", id="too-high"),
            pytest.param("10/s", "601/m", "rate_limit_too_high", id="too-high-other-unit"),
        ],
    )
    def test_refusals(self, maximum: str | None, asked: object, code: str) -> None:
        error = refusal(create, maximum, asked)
        assert (error.code, error.field) == (code, "rate_limit")

    @pytest.mark.parametrize("asked", ["10/s", "600/m", "36000/h", "1/h"])
    def test_at_or_below_the_maximum(self, asked: str) -> None:
        """Compared per second: 600/m is exactly 10/s and passes."""
        assert create("10/s", asked).rate_limit == parse_rate_limit(asked)

    def test_patch_obeys_the_same_rule(self) -> None:
        config = make_config(security_policy={"max_rate_limit": "10/s"})
        assert refusal(policy.check_rate_limit, config, None).code == "rate_limit_required"
        assert refusal(policy.check_rate_limit, config, "20/s").code == "rate_limit_too_high"
        assert policy.check_rate_limit(config, "5/s") == parse_rate_limit("5/s")


class TestAtUse:
    @pytest.mark.parametrize(
        ("own", "maximum", "applied"),
        [
            (None, None, None),
            ("5/s", None, "5/s"),
            (None, "10/s", "10/s"),
            ("5/s", "10/s", "5/s"),
            ("20/s", "10/s", "10/s"),
            ("600/m", "10/s", "600/m"),  # a tie keeps the token's own, as written
        ],
    )
    def test_effective_limit_is_the_lower(
        self, own: str | None, maximum: str | None, applied: str | None
    ) -> None:
        config = make_config(security_policy={"max_rate_limit": maximum})
        limit = effective_rate_limit(make_record(rate_limit=own), config.policy)
        assert (None if limit is None else limit.text) == applied

    def test_config_check_names_tokens_above_a_new_maximum(self) -> None:
        config = make_config(security_policy={"max_rate_limit": "10/s"})
        above = lowered_limit(make_record(rate_limit="20/s"), config)
        assert above is not None
        assert "20/s" in above
        assert "10/s" in above
        none = lowered_limit(make_record(rate_limit=None), config)
        assert none is not None
        assert "no rate limit" in none
        assert lowered_limit(make_record(rate_limit="600/m"), config) is None
        no_max = make_config()
        assert lowered_limit(make_record(rate_limit="20/s"), no_max) is None


def actor(rate_limit: str | None) -> Any:
    return make_record(
        id="tok_00000000000000ad",
        permissions=frozenset({MANAGE, "Reader"}),
        rate_limit=rate_limit,
    )


def issuance(rate_limit: str | None) -> Issuance:
    limit = None if rate_limit is None else parse_rate_limit(rate_limit)
    return Issuance("new", frozenset({"Reader"}), None, None, limit)


class TestDelegation:
    """SPEC §10/§12: a limited actor cannot hand on no limit or a higher one."""

    def test_unlimited_actor_is_not_bounded(self) -> None:
        policy_ = make_config().policy
        delegation.bound_create(actor(None), issuance(None), policy_, 0.0)
        delegation.bound_create(actor(None), issuance("1000/s"), policy_, 0.0)

    @pytest.mark.parametrize("asked", [None, "11/s", "601/m"])
    def test_limited_actor_cannot_create_beyond_itself(self, asked: str | None) -> None:
        error = refusal(
            delegation.bound_create, actor("10/s"), issuance(asked), make_config().policy, 0.0
        )
        assert (error.code, error.field) == (delegation.EXCEEDS_CALLER, "rate_limit")
        assert "10/s" in error.message

    @pytest.mark.parametrize("asked", ["10/s", "600/m", "1/h"])
    def test_limited_actor_creates_within_itself(self, asked: str) -> None:
        delegation.bound_create(actor("10/s"), issuance(asked), make_config().policy, 0.0)

    def test_the_policy_maximum_lowers_the_actor_ceiling(self) -> None:
        """An actor whose own 100/s is above the policy's 10/s hands on at most 10/s."""
        policy_ = make_config(security_policy={"max_rate_limit": "10/s"}).policy
        error = refusal(delegation.bound_create, actor("100/s"), issuance("50/s"), policy_, 0.0)
        assert error.code == delegation.EXCEEDS_CALLER

    def test_patch_of_the_limit(self) -> None:
        policy_ = make_config().policy
        target = make_record(id="tok_00000000000000bb", rate_limit="5/s")
        for asked in (None, "20/s"):
            limit = None if asked is None else parse_rate_limit(asked)
            error = refusal(
                delegation.bound_rate_limit_update, actor("10/s"), target, limit, policy_
            )
            assert (error.code, error.field) == (delegation.EXCEEDS_CALLER, "rate_limit")
        delegation.bound_rate_limit_update(actor("10/s"), target, parse_rate_limit("2/s"), policy_)

    def test_patch_of_a_target_beyond_the_actor_is_refused(self) -> None:
        target = make_record(id="tok_00000000000000bb", permissions=frozenset({"Writer"}))
        error = refusal(
            delegation.bound_rate_limit_update,
            actor(None),
            target,
            parse_rate_limit("1/s"),
            make_config().policy,
        )
        assert error.code == delegation.EXCEEDS_CALLER
        assert error.field is None

    def test_rotation_of_an_unlimited_target_by_a_limited_actor(self) -> None:
        """Rotate hands out the new secret: the target must be within the actor's reach."""
        target = make_record(id="tok_00000000000000bb", rate_limit=None)
        error = refusal(delegation.bound_rotate, actor("10/s"), target, make_config().policy)
        assert error.code == delegation.EXCEEDS_CALLER
        limited = make_record(id="tok_00000000000000bb", rate_limit="5/s")
        delegation.bound_rotate(actor("10/s"), limited, make_config().policy)
