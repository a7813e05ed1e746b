"""Retry policies (pure, no I/O): when a failed handler runs again, and when it stops.

Two kinds of retry exist and are named apart:

* :class:`RetryPolicy` — *execution* retries: a handler raised, run it again later.
* :class:`PublishRetryPolicy` — *publish* retries: the broker could not be reached while
  sending a message; try to send again (Celery's ``retry_policy`` of ``apply_async``).

Retry numbers count from 0: ``delay(0)`` is the wait before the first retry (the second
attempt). Every delay is at least ``min_delay`` so a policy never becomes a hot loop.

Example::

    >>> linear = RetryPolicy(max_retries=3, interval_start=0, interval_step=0.2, interval_max=0.5)
    >>> [linear.delay(n) for n in range(4)]
    [0.05, 0.2, 0.4, 0.5]
    >>> expo = RetryPolicy(backoff="exponential", factor=1.0, max_delay=10, jitter=None)
    >>> [expo.delay(n) for n in range(5)]
    [1.0, 2.0, 4.0, 8.0, 10.0]
"""

from __future__ import annotations

import importlib
import random
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)

Jitter = Literal["full", "equal"] | None


def _resolve_exception(value: Any) -> type[BaseException]:
    if isinstance(value, str):
        module_name, _, attr = value.rpartition(".")
        if not module_name:
            module_name = "builtins"
        try:
            value = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot import exception class {value!r}: {exc}") from None
    if not (isinstance(value, type) and issubclass(value, BaseException)):
        raise ValueError(f"retry_on/dont_retry_on take exception classes (or dotted names), got {value!r}")
    return value


def _dotted(exc_type: type[BaseException]) -> str:
    return f"{exc_type.__module__}.{exc_type.__qualname__}"


class RetryPolicy(BaseModel):
    """How a failing handler is retried (execution retries).

    * ``max_retries``: retries after the first attempt (``0`` = never retry).
    * ``backoff="linear"``: delay n = ``min(interval_start + n * interval_step, interval_max)``.
    * ``backoff="exponential"``: delay n = ``min(factor * base ** n, max_delay)``, then
      ``jitter``: ``"full"`` draws uniformly in ``[0, d]``, ``"equal"`` in ``[d/2, d]``,
      ``None`` keeps ``d`` (``jitter=True`` means ``"full"``).
    * every delay is raised to at least ``min_delay`` seconds (default 0.05).
    * ``retry_on``: only these exception types are retried (default: any ``Exception``);
      ``dont_retry_on``: these go straight to the failed jobs, even if in ``retry_on``.
      Both accept classes or dotted names (``"builtins.ValueError"``), imported from your
      configuration (a worker never reads a policy from a message).

    Example::

        >>> p = RetryPolicy(max_retries=2, dont_retry_on=[KeyError])
        >>> p.should_retry(KeyError("x"), retries_done=0), p.should_retry(OSError(), 1), p.should_retry(OSError(), 2)
        (False, True, False)
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    max_retries: int = Field(default=3, ge=0)
    backoff: Literal["linear", "exponential"] = "linear"
    interval_start: float = Field(default=0.0, ge=0)
    interval_step: float = Field(default=0.2, ge=0)
    interval_max: float = Field(default=0.5, ge=0)
    factor: float = Field(default=1.0, gt=0)
    base: float = Field(default=2.0, ge=1)
    max_delay: float = Field(default=600.0, gt=0)
    jitter: Jitter = None
    min_delay: float = Field(default=0.05, gt=0)
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    dont_retry_on: tuple[type[BaseException], ...] = ()

    @field_validator("jitter", mode="before")
    @classmethod
    def _jitter_bool(cls, value: Any) -> Any:
        if value is True:
            return "full"
        if value is False or value == "none":
            return None
        return value

    @field_validator("retry_on", "dont_retry_on", mode="before")
    @classmethod
    def _exceptions(cls, value: Any) -> tuple[type[BaseException], ...]:
        if isinstance(value, (str, type)):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"retry_on/dont_retry_on take a list of exception classes or dotted names, got {value!r}")
        return tuple(_resolve_exception(item) for item in value)

    @field_serializer("retry_on", "dont_retry_on")
    def _serialize_exceptions(self, value: tuple[type[BaseException], ...]) -> list[str]:
        return [_dotted(item) for item in value]

    @model_validator(mode="after")
    def _bounds(self) -> RetryPolicy:
        if self.interval_max < self.interval_start:
            raise ValueError("interval_max must be >= interval_start")
        return self

    def delay(self, retry_number: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry ``retry_number`` (0 = the first retry)."""
        if retry_number < 0:
            raise ValueError("retry_number counts from 0")
        if self.backoff == "linear":
            raw = min(self.interval_start + retry_number * self.interval_step, self.interval_max)
        else:
            # Cap the exponent so huge retry numbers cannot overflow a float.
            raw = min(self.factor * self.base ** min(retry_number, 256), self.max_delay)
            draw = (rng or random).random()
            if self.jitter == "full":
                raw = raw * draw
            elif self.jitter == "equal":
                raw = raw / 2 + (raw / 2) * draw
        return max(raw, self.min_delay)

    def should_retry(self, exc: BaseException, retries_done: int) -> bool:
        """True if a failure with ``exc`` after ``retries_done`` retries is retried."""
        if retries_done >= self.max_retries:
            return False
        if isinstance(exc, self.dont_retry_on):
            return False
        return isinstance(exc, self.retry_on)

    def to_config(self) -> dict[str, Any]:
        """JSON-compatible form; ``RetryPolicy.model_validate(p.to_config()) == p``."""
        return self.model_dump(mode="json")


class PublishRetryPolicy(BaseModel):
    """How sending a message to the broker is retried when the broker cannot be reached.

    Fields are Celery's publish ``retry_policy`` (``interval_*`` in seconds) plus ``timeout``:
    the connect/socket timeout of each try (it also bounds one ``publish`` call to about
    ``2 * timeout + 1`` s); after the last try ``publish`` raises
    :class:`~ormevents.errors.BrokerUnavailableError`.

    Example::

        >>> PublishRetryPolicy(max_retries=2).as_celery()["max_retries"]
        2
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_retries: int = Field(default=3, ge=0)
    interval_start: float = Field(default=0.0, ge=0)
    interval_step: float = Field(default=0.2, ge=0)
    interval_max: float = Field(default=0.5, ge=0)
    timeout: float = Field(default=5.0, gt=0)

    def as_celery(self) -> dict[str, Any]:
        """The ``retry_policy`` mapping ``apply_async``/``send_task`` take."""
        return {
            "max_retries": self.max_retries,
            "interval_start": self.interval_start,
            "interval_step": self.interval_step,
            "interval_max": self.interval_max,
        }
