"""The :class:`Event` record: what a write (or a custom emit) produced, ready to deliver.

Pure schema plus its JSON form; no I/O. Wire format (``Event.to_json``)::

    {"id": "<uuid>", "name": "user.updated", "model": "user", "action": "updated",
     "object_id": {"$oid": "..."}, "data": {...}, "changes": {"status": ["inactive", "active"]},
     "metadata": {...}, "created_at": "2024-05-01T12:00:00+00:00", "version": 1}

Rich values inside ``object_id``, ``data``, ``changes`` and ``metadata`` use the tagged codec
of :mod:`ormevents.events.codec`, so ``Event.from_json(e.to_json()) == e`` exactly.

pydantic's JSON mode gives the same tagged values (``model_dump_json()``,
``model_dump(mode="json")``, a FastAPI response), and ``Event.model_validate_json`` reads them
back exactly; only ``id`` and ``created_at`` are formatted by pydantic. ``Event.model_validate``
(Python mode) does not decode tags, a dict in event data may look like one: rebuild a parsed
JSON-mode dict with :meth:`Event.from_dict`.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from ..errors import InvalidEventNameError
from . import codec

EVENT_SCHEMA_VERSION = 1
_NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
_SEGMENT_PATTERN = re.compile(r"[a-z][a-z0-9_]*")


def validate_event_name(name: object) -> str:
    """Return ``name`` if it is a valid event name, else raise :class:`InvalidEventNameError`.

    Valid: two or more dot-separated segments of lowercase letters, digits and ``_``, each
    starting with a letter (``user.created``, ``order.payment.completed``).
    """
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
        raise InvalidEventNameError(
            f"invalid event name {name!r}: use lowercase dot-separated segments such as "
            "'user.created' (letters, digits and '_', each segment starting with a letter)"
        )
    return name


def validate_action(action: object) -> str:
    """Return ``action`` if it can follow ``<model>.`` in an event name (``status_changed``)."""
    if not isinstance(action, str) or not all(_SEGMENT_PATTERN.fullmatch(p) for p in action.split(".")):
        raise InvalidEventNameError(
            f"invalid event action {action!r}: use lowercase letters, digits and '_' "
            "(for example 'status_changed')"
        )
    return action


def wire_json(wire: dict[str, Any]) -> str:
    """The compact JSON text of a :meth:`Event.to_dict` result (what :meth:`Event.to_json` returns):
    for a caller that needs the dict too, so the event is encoded once."""
    return json.dumps(wire, separators=(",", ":"), allow_nan=False)


class Event(BaseModel):
    """An immutable record of something that happened to a model (or any custom fact).

    ``model`` and ``action`` default to the first segment of ``name`` and the rest of it.
    ``changes`` maps dotted paths to ``(old, new)`` pairs. ``created_at`` is UTC-aware.
    ``version`` is the schema version of this envelope.

    Example::

        >>> e = Event(name="user.created", data={"email": "a@x.io"})
        >>> (e.model, e.action)
        ('user', 'created')
        >>> Event.from_json(e.to_json()) == e
        True
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    name: str
    model: str | None = None
    action: str | None = None
    object_id: Any = None
    data: dict[str, Any] = Field(default_factory=dict)
    changes: dict[str, tuple[Any, Any]] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    version: int = EVENT_SCHEMA_VERSION

    @model_validator(mode="before")
    @classmethod
    def _derive_model_and_action(cls, values: Any) -> Any:
        if isinstance(values, dict) and "name" in values:
            name = validate_event_name(values["name"])
            model, _, action = name.partition(".")
            values = {"model": model, "action": action, **values}
        return values

    @field_validator("object_id", "data", "metadata", mode="before")
    @classmethod
    def _plain(cls, value: Any, info: ValidationInfo) -> Any:
        if info.mode == "json":  # tagged values, as model_dump_json() writes them
            value = codec.decode(value)
        return codec.to_plain(value, info.field_name or "")

    @field_validator("changes", mode="before")
    @classmethod
    def _plain_changes(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, dict):
            return value
        if info.mode == "json":
            value = {path: codec.decode(pair) for path, pair in value.items()}
        return {path: tuple(codec.to_plain(list(pair), f"changes.{path}")) for path, pair in value.items()}

    @field_serializer("object_id", "data", "metadata", when_used="json")
    def _json_value(self, value: Any) -> Any:
        return codec.encode(value)

    @field_serializer("changes", when_used="json")
    def _json_changes(self, value: dict[str, tuple[Any, Any]]) -> dict[str, list[Any]]:
        return {path: [codec.encode(old), codec.encode(new)] for path, (old, new) in value.items()}

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-compatible wire form (see module doc)."""
        return {
            "id": str(self.id),
            "name": self.name,
            "model": self.model,
            "action": self.action,
            "object_id": codec.encode(self.object_id),
            "data": codec.encode(self.data),
            "changes": {path: [codec.encode(old), codec.encode(new)] for path, (old, new) in self.changes.items()},
            "metadata": codec.encode(self.metadata),
            "created_at": self.created_at.isoformat(),
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, wire: dict[str, Any]) -> Event:
        """Rebuild an event from :meth:`to_dict` or ``model_dump(mode="json")`` output, decoding
        its tagged values (``Event.model_validate`` of such a dict keeps them as dicts: Python
        mode takes values as they are; see docs/events.md)."""
        return cls(
            id=wire["id"],
            name=wire["name"],
            model=wire.get("model"),
            action=wire.get("action"),
            object_id=codec.decode(wire.get("object_id")),
            data=codec.decode(wire.get("data") or {}),
            changes={path: tuple(codec.decode(pair)) for path, pair in (wire.get("changes") or {}).items()},
            metadata=codec.decode(wire.get("metadata") or {}),
            created_at=wire["created_at"],
            version=wire.get("version", EVENT_SCHEMA_VERSION),
        )

    def to_json(self) -> str:
        """Compact JSON text of :meth:`to_dict`."""
        return wire_json(self.to_dict())

    @classmethod
    def from_json(cls, text: str | bytes) -> Event:
        """Rebuild an event from :meth:`to_json` output."""
        return cls.from_dict(json.loads(text))

    def idempotency_key(self, handler: object) -> str:
        """A stable key for the effect of ``handler`` on this event, for external APIs.

        Pass it as the idempotency key of a payment, an email or any call that must happen once
        per (event, handler): it is the same on every attempt, redelivery and worker, and differs
        between handlers and events. ``handler`` is the handler's registered name, or anything
        with a ``name`` (a :class:`~ormevents.handlers.registry.Handler`). The key is
        ``"<event id>:<handler name>"``, at most 255 characters (Stripe's limit): a longer name
        is replaced by the first 32 hex digits of its SHA-256. The MongoDB inbox uses the same key.

        Example::

            >>> e = Event(id="0190a5d6-2a4b-7c1e-9f00-5a1b2c3d4e5f", name="order.paid")
            >>> e.idempotency_key("billing.charge")
            '0190a5d6-2a4b-7c1e-9f00-5a1b2c3d4e5f:billing.charge'
        """
        name = handler if isinstance(handler, str) else getattr(handler, "name", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"idempotency_key() takes a handler name or a registered Handler, got {handler!r}")
        key = f"{self.id}:{name}"
        if len(key) > 255:
            key = f"{self.id}:sha256:{hashlib.sha256(name.encode()).hexdigest()[:32]}"
        return key

    def has_changed(self, path: str) -> bool:
        """True if ``path`` (or anything below it) is in :attr:`changes`."""
        prefix = path + "."
        return any(p == path or p.startswith(prefix) for p in self.changes)
