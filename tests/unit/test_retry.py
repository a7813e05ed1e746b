"""RetryPolicy / PublishRetryPolicy: delays, jitter bounds, retry decisions (pure)."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from ormevents.handlers.retry import PublishRetryPolicy, RetryPolicy


def test_linear_delays_follow_the_seed_formula_with_a_floor() -> None:
    policy = RetryPolicy(max_retries=5, interval_start=0, interval_step=0.2, interval_max=0.5)
    assert [policy.delay(n) for n in range(5)] == [0.05, 0.2, 0.4, 0.5, 0.5]
    policy = RetryPolicy(interval_start=1, interval_step=2, interval_max=10)
    assert [policy.delay(n) for n in range(6)] == [1, 3, 5, 7, 9, 10]


def test_exponential_delays_are_capped() -> None:
    policy = RetryPolicy(backoff="exponential", factor=0.5, max_delay=3)
    assert [policy.delay(n) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.delay(10_000) == 3.0  # no overflow at huge retry numbers
    assert RetryPolicy(backoff="exponential", factor=1, base=3, max_delay=100).delay(2) == 9


@pytest.mark.parametrize("jitter", ["full", True])
def test_full_jitter_stays_in_range_and_never_reaches_zero(jitter: object) -> None:
    policy = RetryPolicy(backoff="exponential", factor=2, max_delay=100, jitter=jitter, min_delay=0.1)
    assert policy.jitter == "full"
    rng = random.Random(7)
    draws = [policy.delay(3, rng) for _ in range(2000)]
    assert min(draws) >= 0.1 and max(draws) <= 16
    assert len({round(d, 3) for d in draws}) > 100  # actually random


def test_equal_jitter_keeps_at_least_half() -> None:
    policy = RetryPolicy(backoff="exponential", factor=1, max_delay=100, jitter="equal")
    rng = random.Random(1)
    draws = [policy.delay(4, rng) for _ in range(2000)]
    assert 8 <= min(draws) and max(draws) <= 16


def test_zero_draw_is_floored() -> None:
    class Zero(random.Random):
        def random(self) -> float:
            return 0.0

    assert RetryPolicy(backoff="exponential", jitter="full").delay(0, Zero()) == 0.05


def test_retry_decisions() -> None:
    policy = RetryPolicy(max_retries=2, retry_on=[OSError, "builtins.ValueError"], dont_retry_on=[ConnectionRefusedError])
    assert policy.should_retry(OSError(), 0)
    assert policy.should_retry(ValueError(), 1)
    assert not policy.should_retry(ValueError(), 2)          # retries exhausted
    assert not policy.should_retry(KeyError(), 0)            # not in retry_on
    assert not policy.should_retry(ConnectionRefusedError(), 0)  # dont_retry_on wins
    assert not RetryPolicy(max_retries=0).should_retry(Exception(), 0)


def test_round_trip_through_config() -> None:
    policy = RetryPolicy(max_retries=8, backoff="exponential", jitter=True, dont_retry_on=[KeyError])
    config = policy.to_config()
    assert config["dont_retry_on"] == ["builtins.KeyError"] and config["jitter"] == "full"
    assert RetryPolicy.model_validate(config) == policy


@pytest.mark.parametrize(
    "bad",
    [
        {"max_retries": -1},
        {"interval_start": 2, "interval_max": 1},
        {"backoff": "quadratic"},
        {"jitter": "some"},
        {"retry_on": ["no.such.Error"]},
        {"retry_on": [int]},
        {"maximum": 3},
        {"factor": 0},
    ],
)
def test_invalid_policies_are_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        RetryPolicy.model_validate(bad)


def test_negative_retry_number_is_an_error() -> None:
    with pytest.raises(ValueError):
        RetryPolicy().delay(-1)


def test_publish_retry_is_a_separate_policy() -> None:
    publish = PublishRetryPolicy(max_retries=1, interval_step=0.1, timeout=2)
    assert publish.as_celery() == {"max_retries": 1, "interval_start": 0.0, "interval_step": 0.1, "interval_max": 0.5}
    with pytest.raises(ValidationError):
        PublishRetryPolicy.model_validate({"backoff": "exponential"})  # execution-only field


def test_exception_names_in_configuration_must_be_exception_classes() -> None:
    with pytest.raises(ValidationError):
        RetryPolicy.model_validate({"dont_retry_on": ["os.system"]})       # importable, not an exception class
    with pytest.raises(ValidationError):
        RetryPolicy.model_validate({"retry_on": {"not": "a list"}})
    assert RetryPolicy.model_validate({"retry_on": ["builtins.KeyError"]}).retry_on == (KeyError,)
