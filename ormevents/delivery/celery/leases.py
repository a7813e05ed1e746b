"""The run leases a worker process holds while its handlers run, and who may take one over.

A run takes a lease on its (event, handler) in :meth:`~ormevents.delivery.celery.run_ledger.RunLedger.begin`:
a Redis key holding the run's *token* (``<host>:<pid>:<random>``) that expires after the lease
time (default 30 s, ``ORMEVENTS_RUN_LEASE``). While another run holds it, a second delivery of
the same (event, handler) is not started: it waits in the schedule until the lease ends. The
:class:`LeaseKeeper` (one daemon thread per worker process, so sync handlers in the task thread
and async ones on the process's loop are both covered) renews every lease older than a third of
the lease time; a run shorter than that costs no renewal. A renewal that finds the token gone
(the lease lapsed and another run took it over, e.g. after this process was frozen for a whole
lease) marks the lease *lost*: the run goes on, and its completion is reported as fenced.

A process that dies stops renewing, so its lease expires. When the holder ran on this host,
:func:`holder_is_dead` sees at once that its process is gone (or a zombie), and the new delivery
takes the lease over without waiting; a holder on another host is waited for.

Example::

    keeper = LeaseKeeper(ledger.renew, lease=30.0)
    token = new_token()
    with keeper.hold(keys.lease(event_id, handler), token) as held:
        ...                                   # the handler runs; renewed every 10 s
    held.lost                                  # True if another run took the lease over
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from .forks import generation

logger = logging.getLogger("ormevents.delivery.celery.leases")


def new_token(session_id: str = "") -> str:
    """A token naming one run in its lease: ``<host>:<pid>:<random>``, then ``:<session id>`` when
    the run's handler writes in a MongoDB transaction (see :func:`session_of`)."""
    token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    return f"{token}:{session_id}" if session_id else token


def session_of(token: str) -> str:
    """The MongoDB session id (hex) a run's token carries, or ``""``: a worker taking over the run
    of a dead process kills that session, aborting the transaction it left open."""
    parts = token.split(":")
    return parts[3] if len(parts) == 4 and len(parts[3]) == 32 else ""


def holder_is_dead(token: str, wait: float = 0.5) -> bool:
    """True if ``token``'s process ran on this host and is gone (or a zombie).

    A holder on another host, or one whose process still runs, is not known dead. Celery may
    hand a message out again just before the dead pool process is reaped, so a local holder
    that still exists is watched for up to ``wait`` seconds.
    """
    host, _, rest = token.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False  # this very process runs it (threads pool, or a sibling thread)
    deadline = time.monotonic() + wait
    while True:
        if not _alive(pid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process now holds that pid
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True  # no /proc: trust kill(0)
    return state not in ("Z", "X")


@dataclass
class HeldLease:
    """One lease this process holds for a run in progress."""

    key: str
    token: str
    renew_at: float
    lost: bool = False
    renewals: int = field(default=0)


class LeaseKeeper:
    """Renews the leases of this process's runs from a daemon thread (see module doc).

    ``renew`` is :meth:`~ormevents.delivery.celery.run_ledger.RunLedger.renew`: (key, token)
    pairs in, one flag per pair out, one round trip per tick whatever the number of leases.
    """

    def __init__(self, renew: Callable[[list[tuple[str, str]]], list[bool]], lease: float) -> None:
        self.renew = renew
        self.lease = lease
        self._held: dict[str, HeldLease] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._generation = generation()

    @contextmanager
    def hold(self, key: str, token: str) -> Iterator[HeldLease]:
        """Keep ``key`` (taken for ``token``) renewed for the duration of the block."""
        held = HeldLease(key, token, time.monotonic() + self.lease / 3)
        with self._lock:
            self._held[token] = held
        self._ensure_thread()
        try:
            yield held
        finally:
            with self._lock:
                self._held.pop(token, None)

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive() and self._generation == generation():
            return
        self._generation = generation()  # a forked child gets its own thread
        self._thread = threading.Thread(target=self._serve, name="ormevents-leases", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            self._wake.wait(max(self.lease / 6, 0.01))
            self.tick()

    def tick(self, now: float | None = None) -> int:
        """Renew the leases due for renewal; returns how many were renewed."""
        now = time.monotonic() if now is None else now
        with self._lock:
            due = [held for held in self._held.values() if held.renew_at <= now and not held.lost]
        if not due:
            return 0
        try:
            kept = self.renew([(held.key, held.token) for held in due])
        except redis.RedisError:
            logger.warning("renewing %d run lease(s) failed; retrying", len(due), exc_info=True)
            return 0
        renewed = 0
        for held, ok in zip(due, kept, strict=True):
            if ok:
                held.renew_at = now + self.lease / 3
                held.renewals += 1
                renewed += 1
            else:
                held.lost = True
                logger.warning("run lease %s was taken over by another run while this one (%s) still runs: "
                               "its completion will be reported as fenced (possible double effect); raise "
                               "ORMEVENTS_RUN_LEASE if this process is often paused that long", held.key, held.token)
        return renewed
