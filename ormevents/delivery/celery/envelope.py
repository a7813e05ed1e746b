"""The kombu Redis message of ``ormevents.dispatch``, built by hand (Celery task protocol 2, JSON).

The outbox pushes these straight onto the broker's Redis list (one ``LPUSH`` per batch, in a Lua
script), instead of asking Celery to build and send each message on a thread: ~20 µs per message
instead of ~0.5 ms, and no thread hop. The bytes are those Celery 5.x writes for
``send_task("ormevents.dispatch", args=[event, None], kwargs={"options": ..., "due": ...},
task_id="<event id>:dispatch")`` — the same fields, order and encoding (checked against a
message Celery built, in ``tests/unit/test_envelope.py``); the stored event JSON is spliced into
the body without being decoded again.

Example::

    >>> builder = EnvelopeBuilder("shop:events", {"status_ttl": 60})
    >>> tag, message = builder.dispatch('{"id":"e1","name":"user.created"}', "e1", due=1.5)
    >>> import json, base64
    >>> json.loads(base64.b64decode(json.loads(message)["body"]))[0][0]["name"]
    'user.created'
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import socket
import uuid
from collections.abc import Sequence
from typing import Any, TypeVar

from .sending import (
    DISPATCH_BATCH_TASK,
    DISPATCH_TASK,
    RUN_BATCH_TASK,
    RUN_HANDLER_TASK,
    batch_id,
    dispatch_batch_message,
)

T = TypeVar("T")

EMBED = '{"callbacks":null,"errbacks":null,"chain":null,"chord":null}'
_dumps = json.JSONEncoder(separators=(",", ":")).encode
_HEAD = ('{"body":"%s","content-encoding":"utf-8","content-type":"application/json","headers":{"lang":"py",'
         '"task":"' + DISPATCH_TASK + '","id":"%s","shadow":null,"eta":null,"expires":null,"group":null,'
         '"group_index":null,"retries":0,"timelimit":[null,null],"root_id":"%s","parent_id":null,'
         '"argsrepr":"<' + DISPATCH_TASK + ' %s>","kwargsrepr":"{}","origin":%s,"ignore_result":null,'
         '"replaced_task_nesting":0,"stamped_headers":null,"stamps":{}},"properties":{"correlation_id":"%s",'
         '"reply_to":"","delivery_mode":2,"delivery_info":{"exchange":"","routing_key":%s},"priority":0,'
         '"body_encoding":"base64","delivery_tag":"%s"}}')
_HEADS = {task: _HEAD.replace(DISPATCH_TASK, task)
          for task in (DISPATCH_TASK, DISPATCH_BATCH_TASK, RUN_HANDLER_TASK, RUN_BATCH_TASK)}


class EnvelopeBuilder:
    """Builds dispatch messages for one queue with its message options (no retry policy: workers use their own).

    ``options`` (:meth:`DeliverySettings.message_options`) are encoded once; the retry-policy
    slot of the arguments stays ``null`` (a worker never takes its policy from a message); each message costs one base64
    of its body and one string format.
    """

    def __init__(self, queue: str, options: dict[str, Any] | None) -> None:
        self.queue = queue
        self._queue_json = _dumps(queue)
        self._origin = _dumps(f"gen{os.getpid()}@{socket.gethostname()}")
        self._policy = "null"
        self._options = _dumps(options) if options is not None else None
        # kombu keys its unacked messages by delivery tag: unique per message, here a random
        # prefix per builder and a counter (a uuid4 per message costs ~5 us, a third of the build)
        self._tags = itertools.count()
        self._tag_prefix = uuid.uuid4().hex[:20]

    def kwargs(self, due: float) -> str:
        """The keyword arguments' JSON (``options``, then ``due``), as ``dispatch_message`` makes them."""
        if self._options is None:
            return '{"due":%r}' % due
        return '{"options":%s,"due":%r}' % (self._options, due)

    def dispatch(self, wire: str, event_id: str, due: float) -> tuple[str, str]:
        """The delivery tag and the kombu envelope (JSON text) delivering event JSON ``wire``;
        ``due`` is the publish time."""
        return self._envelope(DISPATCH_TASK, f"{event_id}:dispatch",
                              f"[[{wire},{self._policy}],{self.kwargs(due)},{EMBED}]")

    def batch(self, wires: list[str], event_ids: list[str], due: float) -> tuple[str, str]:
        """The delivery tag and the kombu envelope of one ``ormevents.dispatch_batch`` delivering
        the events of JSON ``wires`` (ids ``event_ids``, at least one), as Celery would send
        :func:`~.sending.dispatch_batch_message`; one event is its :meth:`dispatch`."""
        if len(wires) == 1:
            return self.dispatch(wires[0], event_ids[0], due)
        return self._envelope(DISPATCH_BATCH_TASK, batch_id(event_ids[0], len(event_ids)),
                              f"[[[{','.join(wires)}],{self._policy}],{self.kwargs(due)},{EMBED}]")

    def batch_message(self, wires: list[str], event_ids: list[str], due: float) -> dict[str, Any]:
        """The same batch as a message dict, for brokers Celery's producer sends to."""
        return dispatch_batch_message([json.loads(w) for w in wires], json.loads(self._policy),
                                      **json.loads(self.kwargs(due)))

    def message(self, wire: str, event_id: str, due: float) -> dict[str, Any]:
        """The same message as a dict for the schedule (:func:`~.sending.dispatch_message`'s shape)."""
        return {"task": DISPATCH_TASK, "args": [json.loads(wire), json.loads(self._policy)],
                "kwargs": json.loads(self.kwargs(due)), "id": f"{event_id}:dispatch"}

    def run(self, wire: str, event_id: str, handler: str, kwargs: dict[str, Any]) -> tuple[str, str]:
        """The delivery tag and the kombu envelope of a first ``ormevents.run_handler`` of
        ``handler`` on event JSON ``wire`` (what :func:`~.sending.run_message` with attempt 0 and no
        policy sends), for a replay's batches."""
        return self._envelope(RUN_HANDLER_TASK, f"{event_id}:{handler}:0",
                              f"[[{wire},{_dumps(handler)},0,null],{_dumps(kwargs)},{EMBED}]")

    def run_batch(self, wires: list[str], event_ids: list[str], handler: str,
                  kwargs: dict[str, Any]) -> tuple[str, str]:
        """The delivery tag and the kombu envelope of one ``ormevents.run_handler_batch``: a first
        run of ``handler`` on each event of JSON ``wires`` (what
        :func:`~.sending.run_batch_message` with attempt 0 and no policy sends), for a replay's
        batches; one event is its :meth:`run`."""
        if len(wires) == 1:
            return self.run(wires[0], event_ids[0], handler, kwargs)
        return self._envelope(RUN_BATCH_TASK, batch_id(event_ids[0], len(event_ids), f"{handler}:0"),
                              f"[[[{','.join(wires)}],{_dumps(handler)},0,null],{_dumps(kwargs)},{EMBED}]")

    def _envelope(self, task: str, task_id: str, body: str) -> tuple[str, str]:
        """A fresh delivery tag and the envelope of ``task`` with JSON ``body``: the template
        filled in, or through ``json`` for an id that would need escaping there."""
        tag = f"{self._tag_prefix}{next(self._tags):012d}"
        encoded = base64.b64encode(body.encode()).decode("ascii")
        head = _HEADS[task]
        if _plain(task_id):
            return tag, head % (encoded, task_id, task_id, task_id, self._origin, task_id, self._queue_json, tag)
        envelope = json.loads(head % (encoded, "x", "x", "x", self._origin, "x", self._queue_json, tag))
        envelope["headers"].update(id=task_id, root_id=task_id, argsrepr=f"<{task} {task_id}>")
        envelope["properties"]["correlation_id"] = task_id
        return tag, _dumps(envelope)


SPREAD = 4
"""A hand-off of n events goes in at least ``min(n, SPREAD)`` messages, so that several pool
processes can share a small burst."""


def batches(records: Sequence[T], most: int, spread: bool = True) -> list[Sequence[T]]:
    """``records`` cut into messages of at most ``most`` events, as even as possible, and (with
    ``spread``) at least ``min(len(records), SPREAD)`` of them, in order."""
    count = len(records)
    if count == 0:
        return []
    messages = max(-(-count // max(most, 1)), min(count, SPREAD) if spread else 1)
    size, extra = divmod(count, messages)
    out: list[Sequence[T]] = []
    start = 0
    for index in range(messages):
        end = start + size + (1 if index < extra else 0)
        out.append(records[start:end])
        start = end
    return out


def _plain(text: str) -> bool:
    """True when ``text`` needs no JSON escaping (event ids are UUIDs: always)."""
    return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text
