"""The compact form of a message waiting in the Redis schedule (a delayed event, a retry).

A pending entry costs Redis memory for as long as it waits (100,000 events delayed by an hour
are 100,000 entries), so the payload keeps only what cannot be derived:

* ``"t"`` the task name and ``"a"`` / ``"k"`` its arguments and keywords;
* ``"i"`` the task id, only when it is not the one ormevents derives from the arguments
  (``<event id>:dispatch``, ``<event id>:<handler>:<attempt>``);
* the event (first argument) without the fields its schema fills in by itself: ``model`` and
  ``action`` (derived from the name) and empty ``object_id``, ``data``, ``changes``, ``metadata``.

:func:`unpack` returns the full message of :mod:`ormevents.delivery.celery.sending` again, and
also reads the full form (entries written by earlier versions). The task names live here
(the worker, the dashboard and the status reader all read the schedule).

Example::

    raw = pack({"task": DISPATCH_TASK, "args": [wire, None], "kwargs": {}, "id": f"{wire['id']}:dispatch"})
    unpack(raw)["id"] == f"{wire['id']}:dispatch"        # True
"""

from __future__ import annotations

import json
from typing import Any

DISPATCH_TASK = "ormevents.dispatch"
RUN_HANDLER_TASK = "ormevents.run_handler"
DISPATCH_BATCH_TASK = "ormevents.dispatch_batch"  # never scheduled: delayed events wait one by one
RUN_BATCH_TASK = "ormevents.run_handler_batch"  # never scheduled: retries wait one by one

_EMPTY: tuple[Any, ...] = (None, {}, [])
_OPTIONAL = ("object_id", "data", "changes", "metadata")


def event_member(event_id: Any) -> str:
    """The schedule member of a delayed event (what a cancel removes, what a status read looks up)."""
    return f"event:{event_id}"


def _derived_id(task: str, args: list[Any]) -> str | None:
    """The task id ormevents gives a message with these arguments (``None``: no rule)."""
    event = args[0] if args and isinstance(args[0], dict) else {}
    if task == DISPATCH_TASK:
        return f"{event.get('id')}:dispatch"
    if task == RUN_HANDLER_TASK and len(args) >= 3:
        return f"{event.get('id')}:{args[1]}:{args[2]}"
    return None


def _lean(event: Any) -> Any:
    """``event`` (a wire dict) without the fields the schema restores by itself."""
    if not isinstance(event, dict) or not isinstance(event.get("name"), str):
        return event
    model, _, action = event["name"].partition(".")
    lean = {k: v for k, v in event.items() if not (k in _OPTIONAL and v in _EMPTY)}
    if lean.get("model") == model and lean.get("action") == action:
        del lean["model"], lean["action"]
    return lean


def _full(event: Any) -> Any:
    """The wire dict again, with every field (the inverse of :func:`_lean`)."""
    if not isinstance(event, dict) or not isinstance(event.get("name"), str):
        return event
    model, _, action = event["name"].partition(".")
    full = {"id": event.get("id"), "name": event["name"], "model": model, "action": action, "object_id": None,
            "data": {}, "changes": {}, "metadata": {}}
    full.update(event)
    return full


def pack(message: dict[str, Any]) -> str:
    """The JSON text the schedule stores for ``message`` (see module doc); a dict that is not a
    task message is stored as it is."""
    if message.get("task") not in (DISPATCH_TASK, RUN_HANDLER_TASK) or not isinstance(message.get("args"), list):
        return json.dumps(message, separators=(",", ":"))
    task, args = message["task"], list(message["args"])
    compact: dict[str, Any] = {"t": task, "a": [_lean(args[0]), *args[1:]] if args else args,
                               "k": message.get("kwargs") or {}}
    if message.get("id") != _derived_id(task, args):
        compact["i"] = message.get("id")
    return json.dumps(compact, separators=(",", ":"))


def unpack(raw: str | bytes) -> dict[str, Any]:
    """The message stored as ``raw`` (compact or full form)."""
    stored = json.loads(raw)
    if not isinstance(stored, dict) or "t" not in stored:  # the full form (or not a task message)
        return stored  # type: ignore[no-any-return]  # whatever was stored: the caller checks it
    args = list(stored.get("a") or [])
    if args:
        args[0] = _full(args[0])
    task = stored["t"]
    return {"task": task, "args": args, "kwargs": stored.get("k") or {},
            "id": stored["i"] if "i" in stored else _derived_id(task, args)}
