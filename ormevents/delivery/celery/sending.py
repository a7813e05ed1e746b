"""Building and sending ormevents' Celery messages (synchronous; callers choose the thread).

Three task names travel on the queue (stable strings):

* ``ormevents.dispatch(event, retry_policy)`` — one per published event; the worker matches
  it against its handler registry and sends one ``run_handler`` per matching handler;
* ``ormevents.dispatch_batch(events, retry_policy)`` — several events handed over together
  (outbox hand-off, relay, ``publish_many``, bulk writes): the worker dispatches each as if it
  had come alone (:mod:`ormevents.delivery.celery.batch`);
* ``ormevents.run_handler_batch(events, handler, attempt, retry_policy)`` — the same run of one
  handler on several events (a replay's batches), each run as if its ``run_handler`` had come alone;
* ``ormevents.run_handler(event, handler, attempt, retry_policy)`` — one (event, handler)
  pair, its own unit of work, retried alone.

A message is ``{"task": name, "args": [...], "kwargs": {...}, "id": task_id}`` (``kwargs["queue"]``
when a handler is routed to its own queue); the same dict is what the Redis schedule stores, so
a delayed message is sent exactly as an immediate one.

Example::

    sender = Sender(app, schedule, settings)
    sender.publish(Event(name="user.created"), due=None)          # sent now
    sender.publish(Event(name="user.created"), due=time.time() + 60)  # kept in Redis
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import redis
from celery import Celery  # type: ignore[import-untyped]  # celery ships no type hints
from kombu.exceptions import OperationalError

from ...errors import BrokerUnavailableError
from ...events.event import Event
from ...jobs.schedule_codec import DISPATCH_BATCH_TASK, DISPATCH_TASK, RUN_BATCH_TASK, RUN_HANDLER_TASK, event_member
from ...jobs.status import StatusWriter
from ...urls import redact_url
from .config import DeliverySettings
from .scheduler import RedisSchedule

logger = logging.getLogger("ormevents.delivery.celery.sending")

__all__ = ["DISPATCH_BATCH_TASK", "DISPATCH_TASK", "RUN_BATCH_TASK", "RUN_HANDLER_TASK", "Sender", "batch_id",
           "dispatch_batch_message", "dispatch_message", "event_member", "run_batch_message", "run_message"]


def dispatch_message(event_wire: dict[str, Any], retry_policy: dict[str, Any] | None,
                     options: dict[str, Any] | None = None, due: float | None = None) -> dict[str, Any]:
    """The message that delivers ``event_wire`` (an :meth:`Event.to_dict`) to the worker.

    ``options`` (:meth:`DeliverySettings.message_options`) and ``due`` (when the event was
    published or became due, for the publish-to-start latency) travel as keyword arguments.
    """
    kwargs = {"options": options, "due": due}
    return {"task": DISPATCH_TASK, "args": [event_wire, retry_policy],
            "kwargs": {k: v for k, v in kwargs.items() if v is not None}, "id": f"{event_wire['id']}:dispatch"}


def dispatch_batch_message(event_wires: list[Any], retry_policy: dict[str, Any] | None,
                           options: dict[str, Any] | None = None, due: float | None = None) -> dict[str, Any]:
    """The ``ormevents.dispatch_batch`` delivering each event of ``event_wires`` (as
    :func:`dispatch_message`); one event is its :func:`dispatch_message`."""
    if len(event_wires) == 1 and isinstance(event_wires[0], dict):
        return dispatch_message(event_wires[0], retry_policy, options, due)
    kwargs = {"options": options, "due": due}
    return {"task": DISPATCH_BATCH_TASK, "args": [event_wires, retry_policy],
            "kwargs": {k: v for k, v in kwargs.items() if v is not None},
            "id": batch_id(_first_id(event_wires), len(event_wires))}


def batch_id(first_event_id: Any, count: int, run: str = "") -> str:
    """The task id of a batch of ``count`` events starting with ``first_event_id``: a dispatch
    batch's, or with ``run`` (``<handler>:<attempt>``) a run batch's."""
    return f"{first_event_id}:{run + ':' if run else ''}batch{count}"


def _first_id(event_wires: list[Any]) -> Any:
    return event_wires[0].get("id") if event_wires and isinstance(event_wires[0], dict) else None


def run_message(
    event_wire: dict[str, Any], handler: str, attempt: int, retry_policy: dict[str, Any] | None,
    first_at: float | None = None, *, queue: str | None = None, run_id: str | None = None, **extra: Any,
) -> dict[str, Any]:
    """The message that runs ``handler`` on ``event_wire`` (``attempt`` counts from 0).

    ``first_at`` (epoch seconds of the first attempt) rides along for the failed-job record,
    and so do ``extra`` keywords (``first_failed_at``, ``options``, ``due``) that are not ``None``.
    ``run_id`` names this message in the worker's run ledger: its redeliveries share it, a new
    message (a retry, a retried failed job) gets a random one; a dispatch passes
    :func:`~ormevents.delivery.celery.run_ledger.dispatch_run_id`, so a duplicate event's runs are
    copies of one message, and a run rescheduled because another run held its lease keeps its own.
    ``queue`` (the handler's own broker queue, if it has one) is kept in the keywords: the
    :class:`Sender` sends the message there (a retry waiting in the schedule too), and a worker
    that does not know the handler still records it in the failed job.
    """
    message: dict[str, Any] = {
        "task": RUN_HANDLER_TASK,
        "args": [event_wire, handler, attempt, retry_policy],
        "kwargs": {"first_at": first_at, **{k: v for k, v in extra.items() if v is not None},
                   "run_id": run_id or uuid.uuid4().hex[:16]},
        "id": f"{event_wire['id']}:{handler}:{attempt}",
    }
    if queue:
        message["kwargs"]["queue"] = queue
    return message


def run_batch_message(event_wires: list[dict[str, Any]], handler: str, attempt: int,
                      retry_policy: dict[str, Any] | None, **kwargs: Any) -> dict[str, Any]:
    """The message that runs ``handler`` on each event of ``event_wires`` (keywords as
    :func:`run_message` takes them; its ``run_id`` names every run); one event is its
    :func:`run_message`."""
    if len(event_wires) == 1 and isinstance(event_wires[0], dict):
        return run_message(event_wires[0], handler, attempt, retry_policy, **kwargs)
    return {"task": RUN_BATCH_TASK, "args": [event_wires, handler, attempt, retry_policy],
            "kwargs": {k: v for k, v in kwargs.items() if v is not None},
            "id": batch_id(_first_id(event_wires), len(event_wires), f"{handler}:{attempt}")}


def retry_member(event_id: str, handler: str, attempt: int) -> str:
    """The schedule member of a handler retry."""
    return f"run:{event_id}:{handler}:{attempt}"


def recheck_member(event_id: str, handler: str, run_id: str) -> str:
    """The schedule member of a run message waiting for another run's lease to end (copies of
    one message share it: they wait as one entry)."""
    return f"recheck:{event_id}:{handler}:{run_id}"


class Sender:
    """Sends messages to the broker (with the publish-retry policy) or into the schedule."""

    def __init__(self, app: Celery, schedule: RedisSchedule, settings: DeliverySettings) -> None:
        self.app = app
        self.schedule = schedule
        self.settings = settings

    def send(self, message: dict[str, Any]) -> None:
        """Send ``message`` now (to its ``kwargs["queue"]``, else the event queue).

        Raises :class:`BrokerUnavailableError` after the publish retries.
        """
        try:
            self.app.send_task(
                message["task"],
                args=message["args"],
                kwargs=message.get("kwargs") or {},
                task_id=message["id"],
                # Celery would saferepr() the whole event into the headers: ~0.5 ms per send
                # (measured), and event data has no place in monitoring headers anyway.
                argsrepr=f"<{message['task']} {message['id']}>",
                kwargsrepr="{}",
                queue=(message.get("kwargs") or {}).get("queue") or self.settings.queue_name,
                serializer="json",  # messages are data: JSON even on an app whose own tasks use another
                retry=True,
                retry_policy=self.settings.publish_retry.as_celery(),
            )
        except (OperationalError, OSError, redis.RedisError) as exc:
            raise BrokerUnavailableError(
                f"could not send {message['task']} {message['id']} to {redact_url(self.settings.broker)}: {exc}"
            ) from exc

    def publish(self, event: Event, due: float | None, retry_policy: dict[str, Any] | None = None) -> None:
        """Deliver ``event`` now (``due`` is ``None`` or past) or at ``due`` (epoch seconds)."""
        message = dispatch_message(event.to_dict(), retry_policy,
                                   self.settings.message_options(), due or time.time())
        if due is None or due <= time.time():
            self.send(message)
            return
        try:
            # no status record while it waits: the schedule entry is its status (jobs.status.read_status)
            self.schedule.add(event_member(event.id), message, due)
        except redis.RedisError as exc:
            raise BrokerUnavailableError(
                f"could not schedule event {event.id} in Redis at {redact_url(self.settings.redis_url)}: {exc}"
            ) from exc

    def cancel(self, event_id: uuid.UUID | str) -> bool:
        """Cancel a pending delayed event; ``True`` if it was pending."""
        try:
            message = self.schedule.remove(event_member(event_id))
            if message is not None and isinstance((message.get("args") or [None])[0], dict):
                pipe = self.schedule.client.pipeline(transaction=False)
                StatusWriter(self.settings.keys).event(pipe, message["args"][0], "cancelled", self.settings.status_ttl,
                                                       due=(message.get("kwargs") or {}).get("due"))
                pipe.execute()
            return message is not None
        except redis.RedisError as exc:
            raise BrokerUnavailableError(f"could not cancel event {event_id}: {exc}") from exc
