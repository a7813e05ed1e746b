"""kombu's window of loss (celery/celery#7950): a worker pops a message with ``BRPOP`` and only then
records it as unacknowledged, so a worker killed in between loses the message. ormevents records
each of its messages as unacknowledged when it pushes it (the outbox's Lua push and the
transport's ``_put``): a message popped and never acknowledged comes back after the visibility
timeout, put back by kombu or by the worker's own restorer. Each test pops messages with a raw
``RPOP`` (the worker that "died" in the window)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import kombu
import pytest
import redis

from ormevents import Event
from ormevents.delivery.celery.restorer import Restorer
from ormevents.delivery.celery.transport import UNACKED_KEYS, Transport
from tests.faults.worker_support import Scenario

pytestmark = pytest.mark.integration


async def test_dispatch_messages_popped_by_a_dead_worker_are_delivered_once(redis_uri: str, mongo_uri: str) -> None:
    scenario = Scenario(redis_uri, mongo_uri, ORMEVENTS_VISIBILITY_TIMEOUT="1")
    unacked, index = UNACKED_KEYS
    try:
        events = [Event(name="fault.flow", data={"i": i}) for i in range(3)]
        await scenario.publish(events)
        popped = [json.loads(scenario.rdb.rpop(scenario.queue) or "{}") for _ in events]
        tags = [message["properties"]["delivery_tag"] for message in popped]
        assert scenario.rdb.llen(scenario.queue) == 0
        assert all(scenario.rdb.hexists(unacked, tag) and scenario.rdb.zscore(index, tag) for tag in tags)

        await scenario.start()
        await scenario.until(lambda: len(scenario.runs()) == len(events), timeout=30)
        await scenario.until(scenario.idle, timeout=10)
        # a run counts when its handler starts; its message is acknowledged once the task returns
        await scenario.until(lambda: not any(scenario.rdb.hexists(unacked, tag) for tag in tags), timeout=10)
        assert sorted(scenario.runs()) == sorted(str(event.id) for event in events)
        assert set(scenario.runs().values()) == {1}   # once each, the acknowledgement included
    finally:
        await scenario.close()


def test_the_transport_records_ormevents_messages_as_unacknowledged_when_it_pushes_them(redis_uri: str) -> None:
    queue = f"pw{uuid.uuid4().hex[:8]}"
    redis_uri = redis_uri.rsplit("/", 1)[0] + "/9"   # a database of its own: a restore with no visibility
    rdb = redis.Redis.from_url(redis_uri, decode_responses=True)   # timeout would restore every test's messages
    unacked, _ = UNACKED_KEYS
    connection = kombu.Connection(redis_uri, transport=Transport, transport_options={"visibility_timeout": 0})
    try:
        with connection.channel() as channel:
            producer = kombu.Producer(channel)
            declare = [kombu.Queue(queue, routing_key=queue)]
            producer.publish({"x": 1}, routing_key=queue, headers={"task": "ormevents.run_handler"}, declare=declare)
            producer.publish({"x": 2}, routing_key=queue, headers={"task": "someone.elses"}, declare=declare)
            ours, theirs = (json.loads(rdb.rpop(queue) or "{}") for _ in range(2))
            assert rdb.hexists(unacked, ours["properties"]["delivery_tag"])
            assert not rdb.hexists(unacked, theirs["properties"]["delivery_tag"])   # other tasks: kombu's own rules

            channel.qos.restore_visible(num=100, interval=1)   # what a live worker does every few seconds
            restored: Any = json.loads(rdb.rpop(queue) or "{}")
            assert restored["body"] == ours["body"] and restored["headers"]["redelivered"] is True
            assert rdb.llen(queue) == 0 and not rdb.hexists(unacked, ours["properties"]["delivery_tag"])
    finally:
        connection.release()
        rdb.delete(queue)
        rdb.close()


def test_the_restorer_puts_back_only_its_queues_messages_unacknowledged_for_too_long(redis_uri: str) -> None:
    ours, theirs = f"pw{uuid.uuid4().hex[:8]}", f"pw{uuid.uuid4().hex[:8]}"
    redis_uri = redis_uri.rsplit("/", 1)[0] + "/9"
    rdb = redis.Redis.from_url(redis_uri, decode_responses=True)
    connection = kombu.Connection(redis_uri, transport=Transport)
    try:
        with connection.channel() as channel:
            producer = kombu.Producer(channel)
            for queue in (ours, theirs):
                producer.publish({"q": queue}, routing_key=queue, headers={"task": "ormevents.dispatch"},
                                 declare=[kombu.Queue(queue, exchange=kombu.Exchange(""), routing_key=queue)])
                rdb.rpop(queue)                          # taken by a worker that then died
        restorer = Restorer(rdb, [ours], visibility_timeout=0.5)
        restorer.tick()
        assert rdb.llen(ours) == 0                       # not yet: unacknowledged for less than the timeout
        time.sleep(0.6)
        restorer.tick()
        restored = json.loads(rdb.rpop(ours) or "{}")
        assert json.loads(base64.b64decode(restored["body"])) == {"q": ours}
        assert restored["headers"]["redelivered"] is True and restored["properties"]["delivery_info"]["redelivered"]
        assert rdb.llen(theirs) == 0 and rdb.hlen(UNACKED_KEYS[0]) >= 1   # another queue's: left to kombu
        restorer.tick()
        assert rdb.llen(ours) == 0                       # put back once
    finally:
        connection.release()
        rdb.delete(ours, theirs)
        rdb.close()
