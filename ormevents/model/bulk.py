"""Class-level bulk and query writes of :class:`~ormevents.model.base.EventModel`: ``insert_many``,
``update_one``, ``update_many``, ``find_one_and_update``, ``delete_many``. None of them skips
events silently.

Every method takes ``events=``:

* ``"per_document"`` (the default): each document touched gets its own ``<model>.created`` /
  ``updated`` / ``deleted`` event with the exact diff of that document, recorded in the outbox by
  the same single-document write (see :mod:`.bulk_updates` for why ``old`` is always the value
  replaced). Handler conditions (``when="status"``) apply to these events as to any other.
  Handlers usually live in worker processes the writer cannot see, so the writer does not try
  to guess that none matches: per-document events are the default whatever is registered.
* ``"bulk"``: one ``<model>.bulk_updated`` / ``bulk_deleted`` / ``bulk_created`` event with the
  filter, the update, the server's counts, the ids matching just before the write (the first
  1,000 by ``_id``; ``ids_truncated``) and the paths the update touches. The update is sent as
  given, in one driver call. The event is recorded in ``_oe_events`` after the write (in the
  transaction when there is one; outside one, a crash between the two loses it).
* ``"off"``: no event; a debug line on ``ormevents.model.bulk`` says so.

``hooks=True`` runs the per-document hooks (one write per document); inside
``hooks_disabled(Model)`` they do not run. An update spec is checked before anything is written
(:class:`~ormevents.errors.InvalidUpdateError`: unknown operator, unknown field, bad value).
Documents are read and written in pages of 500: memory stays bounded whatever the count.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, Self

from ..errors import InvalidUpdateError
from .bulk_common import BulkResult
from .bulk_others import delete_matching, insert_documents
from .bulk_updates import update_matching

Events = Literal["per_document", "bulk", "off"] | None


class BulkMixin:
    """Bulk and query writes shared by every :class:`~ormevents.model.base.EventModel`."""

    @classmethod
    async def insert_many(cls, documents: Iterable[Self | Mapping[str, Any]], *, events: Events = None,
                          hooks: bool = False, session: Any = None) -> BulkResult:
        """Insert new instances (or dicts of fields, validated), in order; ``<model>.created``
        each (see the module doc for ``events=``/``hooks=``). A duplicate key stops the call:
        the documents before it are inserted with their events, and the driver error is raised.

        Example::

            result = await User.insert_many([User(name="a"), {"name": "b"}])
            result.inserted_ids
        """
        return await insert_documents(cls, documents, events=events, hooks=hooks, session=session)

    @classmethod
    async def update_many(cls, filter: Mapping[str, Any] | None, update: Mapping[str, Any], *,
                          events: Events = None, hooks: bool = False, session: Any = None) -> BulkResult:
        """Apply the MongoDB update ``update`` (``$set``, ``$unset``, ``$inc``, ``$push``,
        ``$pull``, ``$addToSet``, ``$rename``, ``$currentDate``) to every document matching
        ``filter``; ``<model>.updated`` with its diff for each document changed.

        Example::

            await User.update_many({"status": "trial"}, {"$set": {"status": "active"}, "$inc": {"logins": 1}})
        """
        return await update_matching(cls, filter, update, limit=0, events=events, hooks=hooks, session=session)

    @classmethod
    async def update_one(cls, filter: Mapping[str, Any] | None, update: Mapping[str, Any], *,
                         events: Events = None, hooks: bool = False, session: Any = None) -> BulkResult:
        """:meth:`update_many` of the first matching document (by ``_id``)."""
        return await update_matching(cls, filter, update, limit=1, events=events, hooks=hooks, session=session)

    @classmethod
    async def find_one_and_update(cls, filter: Mapping[str, Any] | None, update: Mapping[str, Any], *,
                                  return_document: bool | str = "before", hooks: bool = False,
                                  events: Literal["per_document", "off"] | None = None,
                                  session: Any = None) -> Self | None:
        """:meth:`update_one`, returning the document as it was before the update
        (``return_document=ReturnDocument.BEFORE`` or ``"before"``, the default) or after it
        (``ReturnDocument.AFTER`` / ``"after"``); ``None`` if nothing matched.

        Example::

            job = await Job.find_one_and_update({"state": "queued"}, {"$set": {"state": "running"}},
                                                return_document="after")
        """
        after = _return_after(return_document)
        if events == "bulk":
            raise InvalidUpdateError("find_one_and_update takes events='per_document' or 'off', not 'bulk'")
        found: list[Any] = []
        await update_matching(cls, filter, update, limit=1, events=events, hooks=hooks, session=session,
                              seen=lambda before, later: found.append(later if after else before))
        return found[0] if found else None

    @classmethod
    async def delete_many(cls, filter: Mapping[str, Any] | None, *, events: Events = None, hooks: bool = False,
                          session: Any = None) -> BulkResult:
        """Delete every document matching ``filter`` (``{}``: all); ``<model>.deleted`` with the
        state removed for each."""
        return await delete_matching(cls, filter, events=events, hooks=hooks, session=session)


def _return_after(value: bool | str) -> bool:
    if isinstance(value, str) and value.lower() in ("before", "after"):
        return value.lower() == "after"
    if isinstance(value, bool):  # ReturnDocument.BEFORE is False, AFTER is True
        return value
    raise InvalidUpdateError(f"return_document takes ReturnDocument.BEFORE/AFTER or 'before'/'after', got {value!r}")
