"""Messages a worker cannot use, parked as failed jobs with reason ``malformed_message``.

A message is data, never code: a worker looks names in it up only in its own registries and
never imports what a message names. One it cannot use at all is kept, not dropped, as a
:class:`~ormevents.jobs.records.FailedJob` with ``error_type`` ``ormevents.MalformedMessage``, the
message itself in ``raw_message`` (at most 20,000 characters) and ``handler`` and
``event_name`` ``"(malformed)"``. It comes from one of three places:

* the Redis transport (:mod:`ormevents.delivery.celery.transport`): a queue entry that is not a kombu
  envelope, wrapped and rejected by Celery as an unknown message (``task_rejected`` signal);
* Celery itself: a message it rejects (no task name, content it may not decode) or whose task
  it does not know (``task_rejected``, ``task_unknown``);
* ormevents' tasks: arguments that are not an event, a handler name and an attempt
  (:class:`MalformedMessages`, which the worker's delivery inherits, parses them and parks the rest).

Its id is ``malformed:<digest of the message>``, so the same message parked twice is one job.
It cannot be retried (there is no event to run); read it with ``ormevents failed show`` and
remove it.

Example::

    job = malformed_job('{"foo": 1}', "not a kombu envelope", "shop:events", "host:42", "shop:events")
    job.reason, job.retryable      # ('malformed_message', False)
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from celery.exceptions import Reject  # type: ignore[import-untyped]  # celery ships no type hints
from pydantic import ValidationError

from ...errors import OrmEventsError
from ...events.event import Event
from ...jobs.records import FailedJob
from .transport import MALFORMED_KEY

if TYPE_CHECKING:
    import redis

    from ...jobs.keys import Keys
    from ...jobs.redis_store import FailedJobStore
    from .config import DeliverySettings

logger = logging.getLogger("ormevents.delivery.celery.worker")

MALFORMED = "ormevents.MalformedMessage"
"""The ``error_type`` of a parked malformed message."""

PLACEHOLDER = "(malformed)"
"""The ``handler`` and ``event_name`` of a parked malformed message (it has neither)."""


def malformed_job(raw: str, problem: str, queue_name: str, worker: str, broker_queue: str | None,
                  now: float | None = None) -> FailedJob:
    """The failed-job record of a message the worker could not use (see module doc)."""
    when = datetime.fromtimestamp(now, UTC) if now is not None else datetime.now(UTC)
    digest = hashlib.sha256(raw.encode("utf-8", "backslashreplace")).hexdigest()[:20]
    return FailedJob(
        id=f"malformed:{digest}", queue=queue_name, handler=PLACEHOLDER, event={}, event_id="",
        event_name=PLACEHOLDER, error_type=MALFORMED, error_message=problem[:2000], attempts=0,
        first_failed_at=when, failed_at=when, worker=worker, handler_queue=broker_queue or None,
        reason="malformed_message", raw_message=raw[:20000],
    )


def unwrap(message: Any, exc: Any = None, unknown_task: str | None = None) -> tuple[str, str, str | None]:
    """``(raw text, problem, broker queue)`` of a kombu ``message`` Celery refused.

    A message the transport wrapped gives back the original entry; any other is described by
    its headers, properties and body.
    """
    routing = (getattr(message, "delivery_info", None) or {}).get("routing_key")
    try:
        payload = message.payload
    except Exception:  # the body does not decode: describe it as it is
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get(MALFORMED_KEY), dict):
        wrapped = payload[MALFORMED_KEY]
        return str(wrapped.get("raw", "")), str(wrapped.get("problem", "")), wrapped.get("queue") or routing
    body = getattr(message, "body", b"")
    text = body.decode("utf-8", "backslashreplace") if isinstance(body, bytes) else str(body)
    raw = json.dumps({"headers": getattr(message, "headers", None), "content-type": getattr(message, "content_type", None),
                      "body": text[:20000]}, default=repr)
    if unknown_task is not None:
        problem = f"no task named {unknown_task!r} in this worker (ormevents handles ormevents.dispatch, ormevents.run_handler and their _batch forms)"
    elif exc is not None:
        problem = f"Celery could not use it: {exc!r}"
    else:
        problem = "not a Celery task message (no task name)"
    return raw, problem, routing


class MalformedMessages:
    """Parsing a task's arguments, and parking what cannot be used (for
    :class:`~ormevents.delivery.celery.worker.WorkerDelivery`, which has these attributes)."""

    if TYPE_CHECKING:
        settings: DeliverySettings
        keys: Keys
        worker_name: str

        @property
        def redis(self) -> redis.Redis: ...

        @property
        def store(self) -> FailedJobStore: ...

    def parse(self, args: tuple[Any, ...], policy_index: int, task: str) -> tuple[Event, Any]:
        """The event and the retry policy config of a message's ``args``; a malformed one is parked
        and rejected."""
        if len(args) <= policy_index or not isinstance(args[0], dict):
            self.reject(f"{task} got malformed arguments {args!r:.300}", task, args)
        try:
            event = Event.from_dict(args[0])
        except (ValidationError, OrmEventsError, KeyError, TypeError, ValueError) as exc:
            self.reject(f"{task} got an invalid event {args[0]!r:.300}: {exc}", task, args)
        return event, args[policy_index]

    def reject(self, reason: str, task: str, args: tuple[Any, ...]) -> Any:
        """Park a message whose arguments this worker cannot use (:meth:`park`) and reject it (raises ``Reject``)."""
        logger.error("rejecting malformed message: %s", reason)
        self.park(json.dumps({"task": f"ormevents.{task}", "args": list(args)}, default=repr), reason, None)
        raise Reject(reason, requeue=False)

    def park(self, raw: str, problem: str, broker_queue: str | None) -> FailedJob:
        """Keep a message this worker cannot use as a failed job with reason ``malformed_message``
        (see :mod:`ormevents.delivery.celery.malformed`), counted as ``stats.rejected``."""
        now = time.time()
        job = malformed_job(raw, problem, self.settings.queue_name, self.worker_name, broker_queue, now)
        pipe = self.redis.pipeline(transaction=True)
        self.store.record(job, pipe=pipe, now=now)
        pipe.hincrby(self.keys.stats, "rejected", 1)
        pipe.execute()
        logger.error("parked a malformed message as failed job %s: %s", job.id, problem,
                     extra={"job_id": job.id, "state": "failed"})
        return job
