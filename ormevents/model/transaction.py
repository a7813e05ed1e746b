"""Transactions: ``async with ormevents.transaction() as tx:``, ``await ormevents.transaction().run(fn)``
and ``save(session=...)`` with your own ``ClientSession``.

Model writes inside a transaction record their events in the transaction (in the documents
they write, or in ``_oe_events``); the events are handed to the broker, and the ``after_commit``
hooks run, only once the transaction commits. If it aborts, nothing was recorded, nothing is
published, and every instance written in it has its tracking state put back (its changes show
as pending again, a deleted instance is writable again). After-hooks (``after_update``...) run
right after each write, inside the transaction, like Rails' ``after_save``.

How ormevents learns of the commit: the first write on a session in a transaction attaches a
:class:`~ormevents.model.storage.Unit` to it, and that session's ``commit_transaction`` /
``abort_transaction`` / ``start_transaction`` are wrapped *on that session object only*, so the
commit of PyMongo's or Motor's ``with_transaction``, of ``async with s.start_transaction()`` and
your own call are all seen. A commit that fails with ``UnknownTransactionCommitResult`` keeps the
unit until it is retried; if the outcome stays unknown, records that did commit are delivered by
the relay.

Example::

    async with ormevents.transaction() as tx:        # one attempt
        order.status = "paid"
        await order.save()                           # joins the transaction
        await Payment.create(order_id=order.id)
    # committed: order.updated and payment.created are handed to the broker now

    await ormevents.transaction().run(pay)           # pay(tx) re-run on transient errors
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, TypeVar

from ..errors import ConfigurationError, DatabaseUnavailableError, TransactionAbortedError
from ..runtime import get_runtime
from .storage import Unit

logger = logging.getLogger("ormevents.model.transaction")
T = TypeVar("T")
_session: ContextVar[Any] = ContextVar("ormevents_session", default=None)
_UNIT = "_ormevents_unit"  # the attribute holding a session's unit (Motor sessions are not hashable)
_COMMIT_RETRY_SECONDS = 120.0  # PyMongo's with_transaction limit


def current_session() -> Any:
    """The session of the enclosing :func:`transaction` block, or ``None``."""
    return _session.get()


def unit_for(session: Any = None) -> Unit:
    """The unit a write joins: the open transaction of ``session`` (default: the enclosing
    :func:`transaction`'s), else a unit of its own."""
    session = session if session is not None else _session.get()
    if session is None:
        return Unit()
    unit = getattr(session, _UNIT, None)
    if unit is not None and unit.open:
        return unit
    if not getattr(session, "in_transaction", False):
        return Unit(session)
    unit = Unit(session, transactional=True)
    _attach(session, unit)
    return unit


def _attach(session: Any, unit: Unit) -> None:
    commit, abort, start = session.commit_transaction, session.abort_transaction, session.start_transaction

    async def commit_transaction(*args: Any, **kwargs: Any) -> None:
        try:
            await commit(*args, **kwargs)
        except Exception as error:
            has_label = getattr(error, "has_error_label", None)
            if has_label is not None and has_label("UnknownTransactionCommitResult"):
                raise  # not known yet: a retried commit settles it
            _detach(session, unit)
            unit.aborted()
            raise
        _detach(session, unit)
        await unit.committed()

    async def abort_transaction(*args: Any, **kwargs: Any) -> None:
        try:
            await abort(*args, **kwargs)
        finally:
            _detach(session, unit)
            unit.aborted()

    def start_transaction(*args: Any, **kwargs: Any) -> Any:
        _detach(session, unit)
        if unit.open:  # the last commit's outcome stayed unknown
            logger.warning("a transaction ended with an unknown commit outcome; its recorded events are "
                           "delivered by the relay if it committed")
            unit.aborted()
        return start(*args, **kwargs)

    session.commit_transaction = commit_transaction
    session.abort_transaction = abort_transaction
    session.start_transaction = start_transaction
    setattr(session, _UNIT, unit)


def _detach(session: Any, unit: Unit) -> None:
    if getattr(session, _UNIT, None) is unit:
        for name in (_UNIT, "commit_transaction", "abort_transaction", "start_transaction"):
            session.__dict__.pop(name, None)


class Transaction:
    """A MongoDB transaction the model writes inside it join (see module doc).

    ``session``: your own ``ClientSession`` (ormevents starts and ends the transaction on it, and
    leaves the session open); default: a session of the runtime's client, ended afterwards.
    ``options``: ``start_transaction`` keywords (``read_concern``, ``write_concern``, ...).
    """

    def __init__(self, session: Any = None, **options: Any) -> None:
        self.session = session
        self.options = options
        self._own = session is None
        self._token: Any = None

    async def __aenter__(self) -> Transaction:
        await self._open()
        await _maybe_await(self.session.start_transaction(**self.options))
        self._token = _session.set(self.session)
        return self

    async def __aexit__(self, kind: Any, error: BaseException | None, traceback: Any) -> None:
        _session.reset(self._token)
        try:
            if error is not None:
                if self.session.in_transaction:
                    await self.session.abort_transaction()
                typed = _typed(error)
                if typed is not None:
                    raise typed from error
                return
            await _commit(self.session)
        finally:
            await self._close()

    async def run(self, callback: Callable[[Transaction], Awaitable[T]]) -> T:
        """Run ``await callback(tx)`` in a transaction, committed with PyMongo's ``with_transaction``
        rules: the whole callback is run again after a ``TransientTransactionError`` (a write
        conflict), the commit alone after ``UnknownTransactionCommitResult``, for up to 120 s.
        Events of an attempt that did not commit are never published: only the committed
        attempt's are. Returns what ``callback`` returned."""
        await self._open()

        async def attempt(session: Any) -> T:
            token = _session.set(session)
            try:
                return await callback(self)
            finally:
                _session.reset(token)

        try:
            return await self.session.with_transaction(attempt, **self.options)
        except Exception as error:
            typed = _typed(error)
            if typed is None:
                raise
            raise typed from error
        finally:
            await self._close()

    async def _open(self) -> None:
        if self.session is not None:
            return
        database = get_runtime().database
        start = getattr(getattr(database, "client", None), "start_session", None)
        try:
            if start is None:
                raise NotImplementedError
            self.session = await _maybe_await(start())
        except NotImplementedError:  # mongomock
            raise ConfigurationError(
                "transactions need a MongoDB replica set (or SecantusDB) through PyMongo or Motor; the runtime's "
                f"database is a {type(database).__module__}.{type(database).__name__}, which has no sessions") from None

    async def _close(self) -> None:
        if self._own and self.session is not None:
            session, self.session = self.session, None
            await _maybe_await(session.end_session())


def transaction(*, session: Any = None, **options: Any) -> Transaction:
    """A transaction the model writes inside it join: ``async with ormevents.transaction() as tx``
    (one attempt) or ``await ormevents.transaction().run(fn)`` (retried like ``with_transaction``).

    ``tx.session`` is the driver session, for your own driver calls in the same transaction.
    Needs a replica set (SecantusDB runs as one; mongomock has no transactions). See the module doc.
    """
    return Transaction(session, **options)


async def _commit(session: Any) -> None:
    """Commit, retrying the commit alone after ``UnknownTransactionCommitResult`` (as ``with_transaction``)."""
    started = time.monotonic()
    while True:
        try:
            await session.commit_transaction()
            return
        except Exception as error:
            has_label = getattr(error, "has_error_label", None)
            unknown = has_label is not None and has_label("UnknownTransactionCommitResult")
            if unknown and time.monotonic() - started < _COMMIT_RETRY_SECONDS:
                continue
            typed = _typed(error)
            if typed is None:
                raise
            raise typed from error


def _typed(error: BaseException) -> Exception | None:
    has_label = getattr(error, "has_error_label", None)
    if has_label is not None and has_label("TransientTransactionError"):
        return TransactionAbortedError(
            f"the transaction was aborted by a transient error ({error}); nothing it wrote or emitted remains. "
            "Run it again, or use `await ormevents.transaction().run(fn)`, which retries it")
    from .driver_errors import translate

    typed = translate(error, "transaction")
    return typed if isinstance(typed, DatabaseUnavailableError) else None


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value
