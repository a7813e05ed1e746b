"""Sensitive fields: the fact of a change is kept, the values become ``"[REDACTED]"`` (pure).

Mark a field with ``Annotated[str, Sensitive()]`` or list it in the model config::

    class User(EventModel):
        model_config = EventModelConfig(sensitive_fields=("password_hash",))
        api_key: Annotated[str, Sensitive()]

Nested models are searched too (``address.secret``). Redaction applies to event ``data`` and
``changes``, to ``repr()`` of model instances and to everything ormevents logs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from .schema import nested_model_type

REDACTED = "[REDACTED]"


@dataclass(frozen=True)
class Sensitive:
    """Marker for ``Annotated[T, Sensitive()]``: the field's values never leave redacted."""


def sensitive_paths(model: type[BaseModel], prefix: str = "", depth: int = 0) -> frozenset[str]:
    """Dotted paths of every sensitive field of ``model``, nested models included."""
    configured: tuple[str, ...] = tuple(dict(model.model_config).get("sensitive_fields", ()))  # type: ignore[arg-type]  # our own config key, typed in EventModelConfig
    paths: set[str] = {prefix + name for name in configured}
    for name, info in model.model_fields.items():
        if any(isinstance(meta, Sensitive) for meta in info.metadata):
            paths.add(prefix + name)
        nested = nested_model_type(info.annotation)
        if nested is not None and depth < 8:
            paths |= sensitive_paths(nested, f"{prefix}{name}.", depth + 1)
    return frozenset(paths)


def is_sensitive(path: str, sensitive: frozenset[str]) -> bool:
    """True if ``path`` is a sensitive path or lies below one."""
    return any(path == s or path.startswith(s + ".") for s in sensitive)


def redact_document(document: Mapping[str, Any], sensitive: frozenset[str], prefix: str = "") -> dict[str, Any]:
    """A copy of ``document`` with the values at sensitive paths replaced by ``REDACTED``."""
    if not sensitive:
        return dict(document)
    result: dict[str, Any] = {}
    for key, value in document.items():
        path = prefix + key
        if is_sensitive(path, sensitive):
            result[key] = REDACTED
        elif isinstance(value, Mapping) and any(s.startswith(path + ".") for s in sensitive):
            result[key] = redact_document(value, sensitive, path + ".")
        else:
            result[key] = value
    return result


def redact_value(path: str, value: Any, sensitive: frozenset[str]) -> Any:
    """``value`` as an event may show it at ``path`` (redacted whole or in part)."""
    if is_sensitive(path, sensitive):
        return REDACTED
    if isinstance(value, Mapping):
        return redact_document(value, sensitive, path + ".")
    return value


def redact_changes(model: type[BaseModel], changes: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{path: (old, new)}`` of ``changes`` as events show them for ``model`` (sensitive values redacted).

    Use it to log or print a model's ``changes`` / ``saved_changes`` safely.
    """
    sensitive = sensitive_paths(model)
    return {
        path: (redact_value(path, old, sensitive), redact_value(path, new, sensitive))
        for path, (old, new) in changes.items()
    }
