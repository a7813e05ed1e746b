"""ormevents' two Celery tasks and the worker signals that give each process its runtime.

Tasks (stable names, JSON arguments, late acks, rejected on worker loss):
``ormevents.dispatch``, ``ormevents.dispatch_batch``, ``ormevents.run_handler`` and
``ormevents.run_handler_batch`` (see :mod:`ormevents.delivery.celery.sending`).
Celery's soft time limit interrupts a handler only, never ormevents' bookkeeping around it
(:mod:`ormevents.delivery.celery.soft_time_limit`).

Signals: ``worker_process_init`` starts the process's event loop and the
:func:`~ormevents.delivery.celery.runtime.on_worker_start` hooks; ``worker_process_shutdown`` runs the
stop hooks and closes the loop; ``worker_ready`` starts the schedule poller thread in the
main worker process, its heartbeat (:mod:`ormevents.delivery.celery.heartbeat`), the outbox
relay when ``ORMEVENTS_MONGO_URL``/``ORMEVENTS_DATABASE`` are set
(:mod:`ormevents.delivery.celery.relay_runner`; otherwise it logs that it runs none) and, with
``ORMEVENTS_METRICS_PORT``, the metrics endpoint; ``worker_shutdown`` stops them; ``task_rejected`` and ``task_unknown`` (a message Celery itself
could not use, or whose task it does not know) park the message as a failed job with reason
``malformed_message`` (:mod:`ormevents.delivery.celery.malformed`), counted as ``stats.rejected``.

A worker bootstep checks the handlers before any message is consumed: a handler that takes a
MongoDB session on a worker without ``ORMEVENTS_MONGO_URL``/``ORMEVENTS_DATABASE`` stops the
worker at startup ("Unrecoverable error: ConfigurationError(...)", exit code 1), so its events
wait in the queue instead of failing one by one.

Example::

    app = Celery("ormevents")
    delivery = WorkerDelivery(settings, registry, app)
    install(app, delivery)
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from celery import Celery, bootsteps, signals  # type: ignore[import-untyped]  # celery ships no type hints
from celery.exceptions import Reject  # type: ignore[import-untyped]  # celery ships no type hints

from ...errors import BrokerUnavailableError
from ..metrics import serve_worker_metrics
from ..tracing import instrument_celery
from .heartbeat import Heartbeat, consumed_queues
from .malformed import unwrap
from .poller import SchedulerThread
from .restorer import Restorer
from .sending import DISPATCH_BATCH_TASK, DISPATCH_TASK, RUN_BATCH_TASK, RUN_HANDLER_TASK
from .soft_time_limit import SoftTimeLimitGuard, soft_limit_of
from .worker import WorkerDelivery

logger = logging.getLogger("ormevents.delivery.celery.tasks")


def install(app: Celery, delivery: WorkerDelivery) -> None:
    """Register the tasks on ``app`` and connect the worker signals for ``delivery``."""

    @app.task(name=DISPATCH_TASK, bind=True, acks_late=True, reject_on_worker_lost=True, acks_on_timeout=False,
              ignore_result=True)  # type: ignore[untyped-decorator]  # celery is untyped
    def dispatch(task: Any, *args: Any, options: Any = None, due: float | None = None, **kwargs: Any) -> Any:
        # the fan-out is never cut half-way; the handlers it runs may be, each within the limit's window
        with SoftTimeLimitGuard(soft_limit_of(task)) as guard:
            return requeue_on_infrastructure_error(delivery.dispatch, args, options=options, due=due, guard=guard)

    @app.task(name=DISPATCH_BATCH_TASK, bind=True, acks_late=True, reject_on_worker_lost=True, acks_on_timeout=False,
              ignore_result=True)  # type: ignore[untyped-decorator]  # celery is untyped
    def dispatch_batch(task: Any, *args: Any, options: Any = None, due: float | None = None, **kwargs: Any) -> Any:
        with SoftTimeLimitGuard(soft_limit_of(task)) as guard:  # as dispatch: one window for the whole batch
            return requeue_on_infrastructure_error(delivery.dispatch_batch, args, options=options, due=due,
                                                   guard=guard)

    @app.task(name=RUN_HANDLER_TASK, bind=True, acks_late=True, reject_on_worker_lost=True, acks_on_timeout=False,
              ignore_result=True)  # type: ignore[untyped-decorator]  # celery is untyped
    def run_handler(task: Any, *args: Any, first_at: float | None = None, first_failed_at: float | None = None,
                    options: Any = None, due: float | None = None, queue: str | None = None, run_id: Any = None,
                    **kwargs: Any) -> Any:
        with SoftTimeLimitGuard() as guard:  # interrupts the handler only, never the bookkeeping
            return requeue_on_infrastructure_error(delivery.run, args, first_at=first_at,
                                                   first_failed_at=first_failed_at, options=options, due=due,
                                                   queue=queue, run_id=run_id, task_id=task.request.id, guard=guard)

    @app.task(name=RUN_BATCH_TASK, bind=True, acks_late=True, reject_on_worker_lost=True, acks_on_timeout=False,
              ignore_result=True)  # type: ignore[untyped-decorator]  # celery is untyped
    def run_handler_batch(task: Any, *args: Any, first_at: float | None = None, options: Any = None,
                          due: float | None = None, queue: str | None = None, run_id: Any = None, **kwargs: Any) -> Any:
        with SoftTimeLimitGuard(soft_limit_of(task)) as guard:  # one window for the batch, as dispatch_batch
            return requeue_on_infrastructure_error(delivery.run_batch, args, guard=guard, first_at=first_at,
                                                   options=options, due=due, queue=queue, run_id=run_id)

    poller: dict[str, Any] = {}  # the poller, heartbeat and relay threads of the main process

    def process_init(**_: Any) -> None:
        instrument_celery()  # Celery's task spans, per process as the instrumentation asks
        delivery.process_started()

    def process_shutdown(**_: Any) -> None:
        delivery.process_stopping()

    def worker_ready(sender: Any = None, **_: Any) -> None:
        instrument_celery()  # a solo or threads pool runs tasks in this process
        if delivery.metrics_port is not None:
            serve_worker_metrics(delivery.metrics_port)
        thread = SchedulerThread(delivery.sender.schedule, delivery.sender.send, delivery.settings.scheduler_poll)
        thread.start()
        poller["thread"] = thread
        beat = Heartbeat(delivery.redis, delivery.keys, str(getattr(sender, "hostname", delivery.worker_name)),
                         consumed_queues(app), handlers={h: getattr(delivery.registry.get(h), "queue", None)
                                                         for h in delivery.registry.names()},
                         patterns={h: handler.pattern.text for h in delivery.registry.names()
                                   if (handler := delivery.registry.get(h)) is not None})
        beat.start()
        beat.first_tick.wait(5.0)  # "ready" means this worker's handlers can be read (a replay checks them)
        poller["heartbeat"] = beat
        if delivery.settings.broker_is_redis_url:
            options = app.conf.broker_transport_options or {}
            restorer = Restorer(delivery.redis, consumed_queues(app), options.get("visibility_timeout"))
            restorer.start()
            poller["restorer"] = restorer
            logger.info("ormevents restorer started for queues %s (visibility timeout %.0f s)",
                        ", ".join(restorer.queues), restorer.visibility_timeout)
        start_relay(delivery.settings, poller)
        logger.info("ormevents schedule poller started for queue %s", delivery.settings.queue_name)

    def worker_shutdown(**_: Any) -> None:
        for name in ("relay", "thread", "heartbeat", "restorer"):
            thread = poller.pop(name, None)
            if thread is not None:
                thread.stop()
        if delivery.loop.running:  # solo pool: the loop lived in the main process
            delivery.process_stopping()

    def park(message: Any, exc: Any = None, unknown_task: str | None = None) -> None:
        raw, problem, queue = unwrap(message, exc, unknown_task)
        try:
            delivery.park(raw, problem, queue)
        except redis.RedisError:  # Celery already rejected it: this log line is all that is left of it
            logger.exception("could not park a malformed message of queue %s (%s): Redis is unreachable; the "
                             "message is dropped, it began: %.2000r", queue, problem, raw)

    def task_rejected(message: Any = None, exc: Any = None, **_: Any) -> None:
        logger.error("a message on queue %s was rejected by Celery", delivery.settings.queue_name)
        park(message, exc)

    def task_unknown(message: Any = None, name: str | None = None, **_: Any) -> None:
        park(message, unknown_task=str(name))

    class CheckHandlers(bootsteps.StartStopStep):  # type: ignore[misc]  # celery is untyped
        """Refuses to start a worker whose handlers cannot run (see module doc)."""

        def start(self, parent: Any) -> None:
            delivery.check_startup()

    app.steps["worker"].add(CheckHandlers)

    uid = f"ormevents:{id(app)}"
    signals.worker_process_init.connect(process_init, weak=False, dispatch_uid=f"{uid}:pinit")
    signals.worker_process_shutdown.connect(process_shutdown, weak=False, dispatch_uid=f"{uid}:pshut")
    signals.worker_ready.connect(worker_ready, weak=False, dispatch_uid=f"{uid}:ready")
    signals.worker_shutdown.connect(worker_shutdown, weak=False, dispatch_uid=f"{uid}:shutdown")
    signals.task_rejected.connect(task_rejected, weak=False, dispatch_uid=f"{uid}:rejected")
    signals.task_unknown.connect(task_unknown, weak=False, dispatch_uid=f"{uid}:unknown")


def start_relay(settings: Any, threads: dict[str, Any]) -> None:
    """Start the outbox relay thread of this worker's main process, or log why there is none."""
    from .relay_runner import RelayThread, relay_settings_problem

    problem = relay_settings_problem(settings)
    if problem is not None:
        (logger.info if not settings.relay else logger.warning)("no outbox relay in this worker: %s", problem)
        return
    threads["relay"] = RelayThread(settings)
    threads["relay"].start()
    logger.info("ormevents outbox relay started for queue %s", settings.queue_name)


def requeue_on_infrastructure_error(func: Any, *args: Any, pause: float = 1.0, **kwargs: Any) -> Any:
    """Call ``func``; if Redis or the broker fail under it, requeue the message instead of losing it.

    With late acks a task that raises is still acknowledged, which would drop the event when
    ormevents' own bookkeeping (schedule, results, failed jobs, fan-out sends) cannot reach
    Redis or the broker. Those errors become ``Reject(requeue=True)`` after ``pause`` seconds
    (no hot loop while the outage lasts). Handler errors never get here: they are retried.
    """
    try:
        return func(*args, **kwargs)
    except (redis.RedisError, BrokerUnavailableError) as exc:
        logger.error("infrastructure error, requeueing the message in %.1f s: %r", pause, exc)
        time.sleep(pause)
        raise Reject(repr(exc), requeue=True) from exc
