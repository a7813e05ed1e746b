"""The handlers the benchmark's ormevents worker imports (``ORMEVENTS_IMPORTS``).

Each does what the raw Celery baseline's task does (:mod:`benchmarks.tasks_common`):

* ``bench.fan1`` / ``bench.fan4`` / ``bench.fan16`` events go to 1, 4 and 16 counting handlers;
* ``bench.stamp`` events and ``latency_doc.updated`` record when the handler started;
* ``bench_doc.created`` / ``bench_doc.updated`` (model writes) are counted by ``data["run"]``;
* ``bench_replay.*`` events (only ever replayed, scenario 14) likewise.
"""

from __future__ import annotations

from benchmarks import tasks_common
from ormevents import Event, event_handler

FANOUTS = (1, 4, 16)


def count(event: Event) -> None:
    """Count one handler run for ``event.data["run"]``."""
    tasks_common.count(event.data["run"])


def stamp(event: Event) -> None:
    """Record the start of this handler run under ``event.data["key"]``."""
    tasks_common.stamp(event.data["key"])


for fanout in FANOUTS:
    for k in range(fanout):
        event_handler(f"bench.fan{fanout}", name=f"bench.fan{fanout}.h{k}")(count)
event_handler("bench.stamp", name="bench.stamp")(stamp)
event_handler("latency_doc.updated", name="bench.latency_doc")(stamp)
event_handler("bench_doc.*", name="bench.bench_doc")(count)
event_handler("bench_replay.*", name="bench.replay")(count)  # scenario 14: runs only by a replay
