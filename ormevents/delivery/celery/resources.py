"""The per-process resources of a worker: its Redis client, sender, failed-job store, run ledger,
lease keeper, MongoDB inbox and event loop, created anew in each process (never shared across fork).

:class:`~ormevents.delivery.celery.worker.WorkerDelivery` builds on :class:`WorkerResources`;
:mod:`ormevents.delivery.celery.outcomes` reaches them through the same properties.

Example::

    resources = WorkerResources(DeliverySettings.from_env(), registry, app)
    resources.check_startup()          # ConfigurationError: a handler takes a session, no MongoDB
    resources.ledger.begin(...)        # the clients are created on first use in each process
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import redis
from celery import Celery  # type: ignore[import-untyped]  # celery ships no type hints

from ...errors import ConfigurationError
from ...handlers.registry import Handler, HandlerRegistry
from ...jobs.redis_store import FailedJobStore
from ...jobs.status import StatusWriter
from .config import DeliverySettings
from .forks import generation
from .inbox import MongoInbox
from .leases import LeaseKeeper, session_of
from .run_ledger import RunLedger
from .runtime import WorkerLoop, as_coroutine, hooks
from .scheduler import RedisSchedule
from .sending import Sender

logger = logging.getLogger("ormevents.delivery.celery.worker")


class WorkerResources:
    """The settings, registry and per-process clients of a worker delivery (see module doc)."""

    def __init__(self, settings: DeliverySettings, registry: HandlerRegistry, app: Celery) -> None:
        self.settings = settings
        self.registry = registry
        self.app = app
        self.keys = settings.keys
        self.loop = WorkerLoop()
        self.status = StatusWriter(self.keys)
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}"
        self.metrics_port: int | None = None
        self._generation: int | None = None  # the fork count its clients were made in
        self._redis: redis.Redis | None = None
        self._sender: Sender | None = None
        self._store: FailedJobStore | None = None
        self._ledger: RunLedger | None = None
        self._leases: LeaseKeeper | None = None
        self._inbox: MongoInbox | None = None

    @property
    def redis(self) -> redis.Redis:
        """This process's Redis client."""
        self._ensure_process()
        assert self._redis is not None
        return self._redis

    @property
    def sender(self) -> Sender:
        """This process's :class:`Sender` (broker + schedule)."""
        self._ensure_process()
        assert self._sender is not None
        return self._sender

    @property
    def ledger(self) -> RunLedger:
        """This process's :class:`RunLedger` (deliveries of run_handler messages)."""
        self._ensure_process()
        assert self._ledger is not None
        return self._ledger

    @property
    def leases(self) -> LeaseKeeper:
        """This process's :class:`LeaseKeeper` (renews the leases of its runs)."""
        self._ensure_process()
        assert self._leases is not None
        return self._leases

    @property
    def inbox(self) -> MongoInbox:
        """This process's MongoDB inbox; :class:`ConfigurationError` without ``ORMEVENTS_MONGO_URL``
        and ``ORMEVENTS_DATABASE``."""
        self._ensure_process()
        if self._inbox is None:
            raise ConfigurationError(self._inbox_missing())
        return self._inbox

    @property
    def store(self) -> FailedJobStore:
        """This process's :class:`FailedJobStore`."""
        self._ensure_process()
        assert self._store is not None
        return self._store

    def _ensure_process(self) -> None:
        # the fork counter, not os.getpid() (a system call, ~3% of a no-op run: called per property use)
        if self._generation == generation() and self._redis is not None:
            return
        client = redis.Redis.from_url(self.settings.redis_url, socket_timeout=10, socket_connect_timeout=5)
        self._redis = client
        self._sender = Sender(self.app, RedisSchedule(client, self.keys), self.settings)
        self._store = FailedJobStore(client, self.settings.queue_name, self.settings.failed_jobs)
        self._ledger = RunLedger(client, self.keys, self.settings.result_ttl, self.settings.run_lease)
        self._leases = LeaseKeeper(self._ledger.renew, self.settings.run_lease)
        if self.settings.mongo_url and self.settings.database:
            self._inbox = MongoInbox(self.settings.mongo_url, self.settings.database)
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}"
        self._generation = generation()

    def process_started(self) -> None:
        """Start this process's loop and run the start hooks (from ``worker_process_init``)."""
        self._generation = None
        self.loop = WorkerLoop()
        self.loop.start(hooks.start)

    def process_stopping(self) -> None:
        """Run the stop hooks, close the inbox's clients and the loop (from ``worker_process_shutdown``)."""
        inbox = self._inbox if self._generation == generation() else None
        self.loop.close([*hooks.stop, *([inbox.close_async] if inbox is not None else [])])
        if inbox is not None:
            inbox.close_sync()

    def check_startup(self) -> None:
        """Refuse to start when a registered handler takes a session and the worker has no
        MongoDB for its inbox (:class:`ConfigurationError`, before any message is consumed)."""
        if not (self.settings.mongo_url and self.settings.database) and self._session_handlers():
            raise ConfigurationError(self._inbox_missing())

    def _session_handlers(self) -> list[str]:
        return [name for name in self.registry.names() if (h := self.registry.get(name)) and h.wants_session]

    def _inbox_missing(self) -> str:
        return (f"handlers {', '.join(self._session_handlers()) or '(taking a session)'} take a MongoDB session "
                "(exactly-once effects with the inbox), but the worker has no MongoDB: set ORMEVENTS_MONGO_URL "
                "(a replica set, for transactions) and ORMEVENTS_DATABASE")

    def open_session(self, handler: Handler) -> Any:
        """A MongoDB session for a run of ``handler`` if it takes one (else ``None``): sync handlers
        get a ``ClientSession``, async ones an ``AsyncClientSession`` of the worker loop's client."""
        if not handler.wants_session:
            return None
        if not handler.is_async:
            return self.inbox.open_sync()
        self._ensure_loop()
        return self.loop.run(self.inbox.open_async())

    def end_session(self, handler: Handler, session: Any) -> None:
        """End ``session`` (a no-op once the run's transaction ended it)."""
        try:
            if handler.is_async:
                self.loop.run(as_coroutine(session.end_session()))
            else:
                session.end_session()
        except Exception:  # the session is only returned to the driver's pool: never fail the run for it
            logger.warning("could not end a MongoDB session of handler %s", handler.name, exc_info=True)

    def abort_orphan(self, handler: Handler, holder: str, extra: dict[str, Any]) -> None:
        """Kill the MongoDB session of a dead run (from its lease ``holder`` token): the transaction it
        left open, which holds its inbox record, is aborted now instead of after the server's
        transaction lifetime (60 s by default)."""
        session_id = session_of(holder)
        if not session_id:
            return
        try:
            if handler.is_async:
                self.loop.run(self.inbox.kill_async(session_id))
            else:
                self.inbox.kill_sync(session_id)
        except Exception:
            logger.warning("could not kill the MongoDB session %s of the dead run %s; its open transaction ends "
                           "with the server's transaction lifetime", session_id, holder, exc_info=True, extra=extra)
            return
        logger.info("aborted the open transaction of the dead run %s of handler %s (killed session %s)", holder,
                    handler.name, session_id, extra=extra)

    def _ensure_loop(self) -> None:
        if not self.loop.running:  # solo/threads pools send no worker_process_init
            self.loop.start(hooks.start)

