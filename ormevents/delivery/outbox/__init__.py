"""The transactional outbox, MongoDB side: the record format, the batched clean-up, the relay and
its lease, and the outbox status (pending count, oldest age, relay lag).

A model write stores its pending event in the document it writes (``_oe_outbox``, with
``_oe_pending_at``), or in the ``_oe_events`` collection for deletes and custom events, in the
same single-document write or transaction; the publisher hands it to the broker right after the
commit (:mod:`ormevents.delivery.celery.dispatcher`), and the relay (:mod:`.relay`) publishes
whatever is still pending after a grace period. See ``docs/guarantees.md``.

Imported by the model layer (:mod:`ormevents.model.storage` writes the records), the Celery
publisher, the worker (which runs the relay) and the ``ormevents`` command line; it imports
``events``, ``jobs`` and ``delivery.base`` only, and the driver lazily.
"""
