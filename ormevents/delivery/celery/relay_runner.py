"""Running the outbox relay for a queue: in the worker's main process, or alone (``ormevents relay``).

:func:`relay_settings_problem` says why a worker runs no relay (no ``ORMEVENTS_MONGO_URL`` /
``ORMEVENTS_DATABASE``, or ``ORMEVENTS_RELAY=off``); :class:`RelayThread` runs one in a daemon
thread with its own event loop (started on ``worker_ready``, stopped on ``worker_shutdown``);
:func:`serve` runs one on the current loop until stopped. Each builds its own clients: a PyMongo
``AsyncMongoClient``, a :class:`~.publisher.CeleryPublisher` (whose ``publish_many`` it uses)
and its ``redis.asyncio`` client, and refreshes the outbox gauges every 5 s.

Example::

    thread = RelayThread(DeliverySettings.from_env())
    thread.start()
    ...
    thread.stop()
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from ...urls import redact_url
from ..outbox.relay import Relay
from ..outbox.status import export, outbox_status
from .config import DeliverySettings

logger = logging.getLogger("ormevents.delivery.celery.relay_runner")
STATUS_EVERY = 5.0


def relay_settings_problem(settings: DeliverySettings) -> str | None:
    """Why ``settings`` give no relay, or ``None`` when they do."""
    if not settings.relay:
        return "ORMEVENTS_RELAY=off: run `ormevents relay` somewhere, or pending events are never re-published"
    if not settings.mongo_url or not settings.database:
        return ("set ORMEVENTS_MONGO_URL and ORMEVENTS_DATABASE (the models' MongoDB and database) for the worker to "
                "run the outbox relay, or run `ormevents relay`; without a relay, events whose hand-off failed "
                "(broker down, process killed) stay pending")
    return None


async def serve(settings: DeliverySettings, stop: asyncio.Event, *, poll: float = 1.0, once: bool = False) -> Relay:
    """Relay ``settings``' queue on the current loop until ``stop`` is set (``once``: one pass);
    returns the relay."""
    import redis.asyncio
    from pymongo import AsyncMongoClient

    from .publisher import CeleryPublisher

    client: Any = AsyncMongoClient(settings.mongo_url, tz_aware=True, uuidRepresentation="standard")
    publisher = CeleryPublisher(settings, threads=2)
    redis_client = redis.asyncio.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    database = client[settings.database]
    publisher.outbox.bind(lambda: database, publisher.outbox.config)
    relay = Relay(database, publisher, redis_client, settings.keys, grace=settings.relay_grace, poll=poll,
                  history_seconds=settings.history_seconds)
    gauges = asyncio.ensure_future(_export_until(stop, database, redis_client, settings))
    logger.info("outbox relay for %s database %s, queue %s", redact_url(settings.mongo_url), settings.database,
                settings.queue_name)
    try:
        await relay.run(stop, once=once)
    finally:
        gauges.cancel()
        await asyncio.gather(gauges, return_exceptions=True)
        await publisher.close()
        await redis_client.aclose()
        await client.close()
    return relay


async def _export_until(stop: asyncio.Event, database: Any, redis_client: Any, settings: DeliverySettings) -> None:
    while not stop.is_set():
        try:
            export(await outbox_status(database, redis_client, settings.keys))
        except Exception as error:  # the relay logs the outage; the gauges keep their last values
            logger.debug("outbox status failed: %r", error)
        await asyncio.sleep(STATUS_EVERY)


class RelayThread(threading.Thread):
    """The relay in a daemon thread with its own event loop (the worker's main process)."""

    def __init__(self, settings: DeliverySettings) -> None:
        super().__init__(name="ormevents-relay", daemon=True)
        self.settings = settings
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()

    def run(self) -> None:
        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            self._ready.set()
            while not self._stop.is_set():
                try:
                    await serve(self.settings, self._stop)
                except Exception:  # e.g. a bad URL: log, wait, try again
                    logger.exception("the outbox relay stopped; restarting it in 5 s")
                    try:
                        await asyncio.wait_for(self._stop.wait(), 5.0)
                    except TimeoutError:
                        pass

        asyncio.run(main())

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the relay to finish its pass, release its leases and stop; wait for the thread."""
        self._ready.wait(timeout)
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self.join(timeout)
