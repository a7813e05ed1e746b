"""kombu's Redis transport, hardened against list entries that are not kombu envelopes.

kombu decodes each entry it pops from a Redis queue list as JSON *before* Celery sees it;
an entry that is not JSON (something else pushed onto the list) raises out of the consumer
loop and the worker stops with "Unrecoverable error" (kombu 5.7). This transport drops
such an entry with an error log line instead, and the worker keeps consuming. Messages
with a valid envelope but a bad body are already handled by Celery (rejected, logged).

Workers use it automatically for ``redis://`` brokers (``broker_transport`` setting):

Example::

    app.conf.broker_transport = "ormevents.delivery.celery.transport:Transport"
"""

from __future__ import annotations

import json
import logging
from queue import Empty
from typing import Any

from kombu.transport import redis as kombu_redis

logger = logging.getLogger("ormevents.delivery.celery.transport")

_UNDECODABLE = (json.JSONDecodeError, UnicodeDecodeError)


class Channel(kombu_redis.Channel):
    """A Redis channel that drops undecodable queue entries (see module doc)."""

    def _brpop_read(self, **options: Any) -> Any:
        try:
            return super()._brpop_read(**options)  # type: ignore[no-untyped-call]  # kombu is untyped
        except _UNDECODABLE as exc:
            _dropped(exc)
            return True

    def _get(self, queue: str, timeout: Any = None) -> Any:
        try:
            return super()._get(queue)  # type: ignore[no-untyped-call]  # kombu is untyped
        except _UNDECODABLE as exc:
            _dropped(exc)
            raise Empty() from None


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with :class:`Channel`."""

    Channel = Channel


def _dropped(exc: Exception) -> None:
    logger.error("rejecting malformed message: a Redis queue entry is not a kombu message (%s); dropped", exc)
