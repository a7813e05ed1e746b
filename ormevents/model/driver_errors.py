"""Driver errors as ormevents errors: what a write raises when MongoDB is unreachable or a
document is too large (the driver's error is always the ``__cause__``).

| driver error                                                   | raised as                   |
|----------------------------------------------------------------|-----------------------------|
| ``AutoReconnect``, ``NetworkTimeout``, ``ServerSelectionTimeoutError`` and other ``ConnectionFailure`` | :class:`DatabaseUnavailableError` |
| ``DocumentTooLarge`` (client side), ``BSONObjectTooLarge`` (server, code 10334) | :class:`DocumentTooLargeError` naming the largest fields |
| inside a transaction, anything labelled ``TransientTransactionError`` or ``UnknownTransactionCommitResult`` | unchanged, so the transaction's retry loop sees the label |

Anything else (a duplicate key, a validation error of the server) is raised unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..delivery.outbox.records import human
from ..errors import DatabaseUnavailableError, DocumentTooLargeError, OrmEventsError
from ..urls import redact_url

_TOO_LARGE_CODES = frozenset({10334, 17419, 17420})
RETRY_LABELS = ("TransientTransactionError", "UnknownTransactionCommitResult")


def retryable_in_transaction(error: BaseException) -> bool:
    """True for a driver error a transaction's retry loop handles (it carries a retry label)."""
    has_label = getattr(error, "has_error_label", None)
    return has_label is not None and any(has_label(label) for label in RETRY_LABELS)


def translate(error: BaseException, what: str, document: Mapping[str, Any] | None = None) -> OrmEventsError | None:
    """The ormevents error for driver ``error`` raised by ``what`` (e.g. ``"update of User 42"``),
    or ``None`` to raise it unchanged. ``document`` (the document or the values written) lets
    a size error name its largest fields."""
    from bson.errors import InvalidDocument
    from pymongo.errors import ConnectionFailure, DocumentTooLarge, OperationFailure

    if isinstance(error, DocumentTooLarge) or (
            isinstance(error, OperationFailure) and error.code in _TOO_LARGE_CODES):
        fields = largest_fields(document or {})
        named = ", ".join(f"{name} ({human(size)})" for name, size in fields) or "unknown fields"
        return DocumentTooLargeError(
            f"{what}: the document is over MongoDB's 16 MiB limit; largest fields: {named}. Nothing was "
            "written. Keep large values out of the document (GridFS or object storage, keeping a reference)",
            fields)
    if isinstance(error, ConnectionFailure):
        return DatabaseUnavailableError(
            f"{what}: MongoDB is unreachable ({redact_url(_text(error))}). The write may or may not have been "
            "applied: reload the document before trying again (if it was applied, its event is delivered)")
    if isinstance(error, InvalidDocument) and "too large" in str(error):
        return translate(DocumentTooLarge(str(error)), what, document)
    return None


def largest_fields(document: Mapping[str, Any], count: int = 3) -> tuple[tuple[str, int], ...]:
    """The ``count`` largest top-level fields of ``document`` as ``(name, BSON bytes)``, largest first
    (the model's fields only: the outbox's own fields and operators are left out)."""
    import bson

    sizes: list[tuple[str, int]] = []
    for name, value in document.items():
        if name in ("$set", "$setOnInsert") and isinstance(value, Mapping):  # an update: its values
            sizes.extend(largest_fields(value, count))
            continue
        if name.startswith(("$", "_oe_")):
            continue
        try:
            sizes.append((name, len(bson.encode({"v": value}))))
        except Exception:  # not encodable: it is not what made the document too large
            continue
    return tuple(sorted(sizes, key=lambda item: -item[1])[:count])


def _text(error: BaseException) -> str:
    text = str(error)
    return text if len(text) < 300 else text[:300] + "..."
