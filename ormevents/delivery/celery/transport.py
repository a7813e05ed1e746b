"""kombu's Redis transport, hardened against queue entries that are not kombu envelopes.

kombu decodes each entry it pops from a Redis queue list as JSON and builds a message from its
``properties`` *before* Celery sees it. An entry that is not JSON, or JSON that is not an
envelope (``{"foo": 1}``, ``[1, 2]``, a body that is not the base64 it claims to be), raises out
of the consumer loop: the worker reconnects, requeues the messages its pool is still running
(which then run twice), or stops with "Unrecoverable error" (kombu 5.7). This transport turns
such an entry into a small, well-formed message carrying the entry's text and what is wrong
with it (``{"ormevents_malformed": {"raw": ..., "problem": ...}}``, no task name). Celery rejects
it as an unknown message and the worker parks it as a failed job with reason
``malformed_message`` (:func:`ormevents.delivery.celery.malformed.unwrap`); nothing else is disturbed.

It also keeps a worker alive when Redis goes away while messages are unacknowledged (:class:`QoS`),
and closes kombu's window of loss (celery/celery#7950): kombu pops a message with ``BRPOP`` and
only then records it in its ``unacked`` hash, so a worker killed between the two loses it. Every
``ormevents.*`` message is recorded in that hash *when it is pushed*, in the same transaction
(:meth:`Channel._put`; the outbox's Lua push does the same with :data:`UNACKED_KEYS`); kombu then
restores it after the ``visibility_timeout`` unless a worker acknowledged it. A message still
queued after that long is restored too, as a second copy: the run ledger skips it.

Workers use it automatically for ``redis://`` brokers (``broker_transport`` setting). It
overrides private kombu methods (``Channel._brpop_read``, ``Channel._get``,
``Transport._deliver``), so ``pyproject.toml`` bounds kombu's version.

Example::

    app.conf.broker_transport = "ormevents.delivery.celery.transport:Transport"
"""

from __future__ import annotations

import binascii
import json
import logging
import time
import uuid
from base64 import b64decode
from typing import Any, cast

from kombu.transport import redis as kombu_redis

logger = logging.getLogger("ormevents.delivery.celery.transport")

_UNDECODABLE = (json.JSONDecodeError, UnicodeDecodeError, RecursionError)
MALFORMED_KEY = "ormevents_malformed"
"""The body key of a wrapped malformed entry."""


def envelope_problem(payload: Any) -> str | None:
    """What keeps ``payload`` (a decoded queue entry) from being a kombu message, or ``None``."""
    if not isinstance(payload, dict):
        return f"a JSON {type(payload).__name__}, not a kombu envelope (an object with properties)"
    properties = payload.get("properties")
    if not isinstance(properties, dict):
        return "no 'properties' object: not a kombu envelope"
    if not isinstance(properties.get("delivery_tag"), str):
        return "no 'properties.delivery_tag' string: not a kombu envelope"
    if not isinstance(properties.get("delivery_info", {}), dict) or not isinstance(payload.get("headers", {}), dict):
        return "'properties.delivery_info' and 'headers' must be objects"
    body = payload.get("body")
    if body is not None and not isinstance(body, str):
        return "'body' must be a string"
    for name in ("content-type", "content-encoding"):
        if payload.get(name) is not None and not isinstance(payload[name], str):
            return f"{name!r} must be a string"
    encoding = properties.get("body_encoding")
    if encoding and not (isinstance(encoding, str) and (encoding == "base64" or encoding.lower() == "utf-8")):
        return f"'properties.body_encoding' {encoding!r} is not one kombu can decode ('base64' or 'utf-8')"
    if body and encoding == "base64":
        try:
            b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return "'body' is not the base64 its 'properties.body_encoding' claims"
    return None


def wrap(raw: str | bytes, problem: str, queue: str) -> dict[str, Any]:
    """A well-formed kombu message (no task name) carrying a malformed entry of ``queue``."""
    text = raw.decode("utf-8", "backslashreplace") if isinstance(raw, bytes) else raw
    logger.error("rejecting malformed message: a Redis queue entry is not a kombu message (%s); parking it", problem)
    body = json.dumps({MALFORMED_KEY: {"raw": text[:20000], "problem": problem, "queue": queue}})
    return {"body": body, "content-type": "application/json", "content-encoding": "utf-8", "headers": {},
            "properties": {"delivery_tag": str(uuid.uuid4()), "priority": 0,
                           "delivery_info": {"exchange": "", "routing_key": queue}}}


def _raw_of(exc: Exception) -> str | bytes:
    if isinstance(exc, RecursionError):  # json gives up before returning anything: the text is gone
        return f"(not kept: the entry was JSON nested too deep to decode; entry {uuid.uuid4()})"
    return exc.doc if isinstance(exc, json.JSONDecodeError) else exc.object  # type: ignore[attr-defined]  # UnicodeDecodeError


_GONE = (AttributeError, OSError, kombu_redis.redis.RedisError)


class QoS(kombu_redis.QoS):
    """kombu's Redis QoS, surviving a broker that went away while messages were unacknowledged.

    When the connection to Redis breaks, the consumer closes the channel, which tries to put the
    unacknowledged messages back through that same (gone) connection; and a task finishing just
    after the reconnect acknowledges on the closed channel. kombu 5.7 raises ``AttributeError``
    in both cases and the worker stops with "Unrecoverable error" (issue 12's fault scenario 1:
    about one Redis restart in three). The messages are still in Redis's ``unacked`` hash and
    kombu restores them after the ``visibility_timeout`` (a finished run is then skipped by the
    run ledger): log, and let the worker reconnect instead of dying.
    """

    def restore_unacked(self, client: Any = None) -> Any:
        try:
            return super().restore_unacked(client)  # type: ignore[no-untyped-call]  # kombu is untyped
        except _GONE as exc:
            # kombu declares ``_delivered = None`` on the class; every QoS instance sets a dict
            delivered = cast("dict[Any, Any]", self._delivered)
            logger.warning("could not put %d unacknowledged messages back while the broker connection closed "
                           "(%r); they come back after the visibility timeout", len(delivered), exc)
            delivered.clear()
            return None

    def ack(self, delivery_tag: Any) -> None:
        try:
            super().ack(delivery_tag)  # type: ignore[no-untyped-call]  # kombu is untyped
        except _GONE as exc:
            logger.warning("could not acknowledge message %s on a closed broker connection (%r); it comes back "
                           "after the visibility timeout", delivery_tag, exc)

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        try:
            super().reject(delivery_tag, requeue=requeue)  # type: ignore[no-untyped-call]  # kombu is untyped
        except _GONE as exc:
            logger.warning("could not reject message %s on a closed broker connection (%r); it comes back "
                           "after the visibility timeout", delivery_tag, exc)


def _problem_of(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "JSON nested too deep to decode"
    return f"not JSON text ({exc})"


UNACKED_KEYS = ("unacked", "unacked_index")
"""kombu's unacknowledged-message hash and its time index (kombu's default names; ormevents does not rename them)."""


def push_registered(pipe: Any, queue: str, tagged: list[tuple[str, str]], exchange: str = "",
                    routing_key: str | None = None, keys: tuple[str, str] = UNACKED_KEYS) -> None:
    """Queue on ``pipe`` (a MULTI/EXEC pipeline, for all or nothing) the ``LPUSH`` of ``tagged``
    messages ((delivery tag, envelope JSON) pairs) onto ``queue``, and their records as
    unacknowledged in kombu's hash ``keys[0]`` and index ``keys[1]``, as kombu writes them."""
    where = f", {json.dumps(exchange)}, {json.dumps(routing_key or queue)}]"
    pipe.lpush(queue, *[message for _, message in tagged])
    pipe.hset(keys[0], mapping={tag: f"[{message}{where}" for tag, message in tagged})
    pipe.zadd(keys[1], dict.fromkeys((tag for tag, _ in tagged), time.time()))


def registered(message: dict[str, Any]) -> bool:
    """True for the messages recorded as unacknowledged when pushed: those of ``ormevents.*`` tasks."""
    return str(message.get("headers", {}).get("task", "")).startswith("ormevents.")


class Channel(kombu_redis.Channel):
    """A Redis channel that wraps undecodable queue entries, survives a lost broker and records
    ``ormevents.*`` messages as unacknowledged when it pushes them (see module doc)."""

    QoS = QoS

    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:
        if (not registered(message) or kwargs.get("_publish_batch") is not None
                or (self._expires and queue in self._expires)):
            return super()._put(queue, message, **kwargs)  # type: ignore[no-untyped-call]  # kombu is untyped
        properties = message["properties"]
        info, tag = properties["delivery_info"], properties["delivery_tag"]
        key = self._q_for_pri(queue, self._get_message_priority(message, reverse=False))
        with self.conn_or_acquire() as client, client.pipeline() as pipe:  # MULTI/EXEC: all or nothing
            push_registered(pipe, key, [(tag, json.dumps(message))], info["exchange"], info["routing_key"],
                            (self.unacked_key, self.unacked_index_key))
            pipe.execute()

    def _brpop_read(self, **options: Any) -> Any:
        try:
            return super()._brpop_read(**options)  # type: ignore[no-untyped-call]  # kombu is untyped
        except _UNDECODABLE as exc:
            # kombu rotated the queue the entry came from to the end of its cycle before decoding it
            items = getattr(self._queue_cycle, "items", None) or list(self._active_queues)
            queue = items[-1] if items else ""
            self.connection._deliver(wrap(_raw_of(exc), _problem_of(exc), queue), queue)
            return True

    def _get(self, queue: str, timeout: Any = None) -> Any:
        try:
            return super()._get(queue)  # type: ignore[no-untyped-call]  # kombu is untyped
        except _UNDECODABLE as exc:
            return wrap(_raw_of(exc), _problem_of(exc), queue)


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with :class:`Channel`; wraps decoded entries that are not envelopes."""

    Channel = Channel

    def _deliver(self, message: Any, queue: str) -> Any:
        problem = envelope_problem(message)
        if problem is not None:
            message = wrap(json.dumps(message), problem, queue)
        return super()._deliver(message, queue)  # type: ignore[no-untyped-call]  # kombu is untyped
