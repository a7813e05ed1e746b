"""Failed jobs as values (pure, no I/O): the record, the filters, pages and their cursors.

A :class:`FailedJob` is one (event, handler) pair whose handler exhausted its retries or
raised an exception listed in ``dont_retry_on``. Its id is ``<event id>:<handler>``. The
worker stores it in Redis (:mod:`ormevents.jobs.redis_store`); applications read, retry and remove
them through ``event_bus`` (``get_failed_jobs``, ``retry_job``, ...) or the ``ormevents``
command line.

Example::

    >>> f = FailedJobFilter(handler="billing.activate", exception="builtins.KeyError")
    >>> f.facets()
    [('handler', 'billing.activate'), ('exception', 'builtins.KeyError')]
    >>> decode_cursor(encode_cursor(1700000000.25, "e1:billing.activate"))
    (1700000000.25, 'e1:billing.activate')
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import InvalidFilterError

T = TypeVar("T")


FailureReason = Literal["handler_error", "worker_lost", "unknown_handler", "condition_error", "malformed_message"]
"""Why a job failed: its handler raised (retries over, or ``dont_retry_on``); the process running
it died on its last attempt (``error_type`` ``ormevents.WorkerLost``); the worker has no handler
of that name (``UnknownHandler``); the handler's condition raised on the event, so the handler
never ran (``error_type`` the exception's dotted name, e.g. ``ormevents.errors.IncompleteEventError``;
a retry evaluates the condition again); or the message was not a usable ormevents message
(``ormevents.MalformedMessage``, the message kept in ``raw_message``; it cannot be retried)."""


class FailedJob(BaseModel):
    """One failed (event, handler) pair and why it failed (``reason``, see :data:`FailureReason`).

    ``first_failed_at`` is when its first attempt failed, ``failed_at`` when the last one did;
    ``worker`` is ``host:pid`` of the process that gave up; ``handler_queue`` is the broker
    queue of a handler routed with ``queue=`` (retrying the job sends it there again).
    """

    model_config = ConfigDict(frozen=True)

    id: str
    queue: str
    handler: str
    event: dict[str, Any] = Field(description="the event in its wire form (Event.to_dict())")
    event_id: str
    event_name: str
    model: str | None = None
    error_type: str
    error_message: str
    traceback: str = ""
    attempts: int = Field(ge=0, description="how many times the handler ran")
    retry_policy: dict[str, Any] | None = None
    first_attempt_at: datetime | None = None
    first_failed_at: datetime | None = None
    failed_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    worker: str = ""
    handler_queue: str | None = Field(default=None, description="the handler's own broker queue, if routed")
    reason: FailureReason = "handler_error"
    raw_message: str | None = Field(default=None, description="a malformed message as it was received")

    @model_validator(mode="before")
    @classmethod
    def _reason_of_older_records(cls, data: Any) -> Any:
        if isinstance(data, dict) and "reason" not in data and data.get("error_type") == "UnknownHandler":
            return {**data, "reason": "unknown_handler"}
        return data

    @property
    def retryable(self) -> bool:
        """False for a malformed message: there is no event to run again."""
        return self.reason != "malformed_message"

    @staticmethod
    def make_id(event_id: str, handler: str) -> str:
        """The id of the failed job of ``handler`` on event ``event_id``."""
        return f"{event_id}:{handler}"

    def facets(self) -> list[tuple[str, str]]:
        """The ``(kind, value)`` pairs this job is indexed under (see :class:`FailedJobFilter`)."""
        pairs = [("handler", self.handler), ("event", self.event_name), ("exception", self.error_type)]
        if self.model:
            pairs.insert(2, ("model", self.model))
        return pairs


class FailedJobRetention(BaseModel):
    """How many failed jobs are kept, and how long (``event_config["failed_jobs"]``).

    Past ``max_count`` the oldest are evicted first; jobs older than ``max_age_days`` are
    evicted as new ones arrive. Evictions are counted in ``<queue>:stats`` as ``failed_evicted``.

    Example::

        >>> FailedJobRetention().max_count, FailedJobRetention().max_age_days
        (10000, 30.0)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_count: int = Field(default=10_000, ge=1)
    max_age_days: float = Field(default=30.0, gt=0)


@dataclass(frozen=True)
class FailedJobFilter:
    """Which failed jobs an operation applies to; ``None`` fields match everything.

    ``since`` keeps jobs whose last failure is at or after it (an aware datetime; naive means
    UTC). Each other field is matched exactly against the job's handler, event name, model and
    error type (the dotted class name, e.g. ``builtins.ValueError``).
    """

    handler: str | None = None
    event_name: str | None = None
    model: str | None = None
    exception: str | None = None
    since: datetime | None = None

    def facets(self) -> list[tuple[str, str]]:
        """The exact-match filters as ``(index kind, value)`` pairs."""
        pairs = [("handler", self.handler), ("event", self.event_name), ("model", self.model),
                 ("exception", self.exception)]
        return [(kind, value) for kind, value in pairs if value is not None]

    def min_score(self) -> float | None:
        """``since`` as epoch seconds, or ``None``."""
        if self.since is None:
            return None
        if not isinstance(self.since, datetime):
            raise InvalidFilterError(f"since= takes a datetime, got {self.since!r}")
        since = self.since.replace(tzinfo=UTC) if self.since.tzinfo is None else self.since
        return since.timestamp()

    def matches(self, job: FailedJob) -> bool:
        """True if ``job`` passes every filter."""
        found = dict(job.facets())
        if any(found.get(kind) != value for kind, value in self.facets()):
            return False
        floor = self.min_score()
        return floor is None or job.failed_at.timestamp() >= floor


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of results, newest first; pass ``next_cursor`` back for the next page
    (``None``: this was the last one). A page iterates over its items and has their length.

    Example::

        >>> page = Page(["b", "a"], next_cursor=None)
        >>> [item for item in page], len(page), page[0], page.next_cursor
        (['b', 'a'], 2, 'b', None)
    """

    items: list[T] = field(default_factory=list)
    next_cursor: str | None = None

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __getitem__(self, index: int) -> T:
        return self.items[index]


def encode_cursor(score: float, member: str) -> str:
    """An opaque cursor pointing just past ``(score, member)`` of an index."""
    return base64.urlsafe_b64encode(f"{score!r}|{member}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """Inverse of :func:`encode_cursor`; :class:`InvalidFilterError` for anything else."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        score, _, member = text.partition("|")
        return float(score), member
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidFilterError(f"invalid cursor {cursor!r}: pass a next_cursor returned by a previous page") from None


_AGE = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(value: str | None, now: datetime | None = None) -> datetime | None:
    """A ``since`` filter as text: an age (``45s``, ``30m``, ``2h``, ``7d`` before ``now``) or an
    ISO date/datetime (naive = UTC); empty or ``None`` -> ``None``; :class:`InvalidFilterError` else.

    Example::

        >>> parse_since("2030-01-02").isoformat()
        '2030-01-02T00:00:00+00:00'
        >>> parse_since("2h", now=datetime(2030, 1, 2, tzinfo=UTC)).isoformat()
        '2030-01-01T22:00:00+00:00'
    """
    if value is None or not value.strip():
        return None
    age = _AGE.fullmatch(value.strip())
    if age:
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[age.group(2)]: float(age.group(1))})
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidFilterError(f"{value!r} is not a date: use ISO 8601 (2024-05-01, 2024-05-01T12:00) "
                                 "or an age like 30m, 2h, 7d") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
