"""The handlers the benchmark's ormevents worker imports (``ORMEVENTS_IMPORTS``).

Each does what the raw Celery baseline's task does (:mod:`benchmarks.tasks_common`):

* ``bench.fan1`` / ``bench.fan4`` / ``bench.fan16`` events go to 1, 4 and 16 counting handlers;
* ``bench.stamp`` events and ``latency_doc.updated`` record when the handler started;
* ``bench_doc.created`` / ``bench_doc.updated`` (model writes) are counted by ``data["run"]``;
  an update whose diff is not ``{"n": [old, -1]}`` (scenario 3's update) is also counted under
  :data:`BAD_DIFFS`.
* ``bench_replay.*`` events (only ever replayed, scenario 14) are tallied: the target's no-op
  handler, counted in memory and reported by a thread (:func:`benchmarks.tasks_common.tally`).
"""

from __future__ import annotations

from benchmarks import tasks_common
from ormevents import Event, event_handler

FANOUTS = (1, 4, 16)
BAD_DIFFS = "bench:bad_diffs"


def count(event: Event) -> None:
    """Count one handler run for ``event.data["run"]``."""
    tasks_common.count(event.data["run"])


def count_doc(event: Event) -> None:
    """Count one ``bench_doc.*`` event, and check an update's diff (scenario 3 sets ``n`` to -1)."""
    if event.action == "updated":
        (path, (old, new)), *rest = event.changes.items()
        if rest or path != "n" or new != -1 or old == -1 or event.data["n"] != -1:
            tasks_common.client().incr(BAD_DIFFS)
    count(event)


def tally(event: Event) -> None:
    """Tally one handler run for ``event.data["run"]`` (no round trip: see module doc)."""
    tasks_common.tally(event.data["run"])


def stamp(event: Event) -> None:
    """Record the start of this handler run under ``event.data["key"]``."""
    tasks_common.stamp(event.data["key"])


for fanout in FANOUTS:
    for k in range(fanout):
        event_handler(f"bench.fan{fanout}", name=f"bench.fan{fanout}.h{k}")(count)
event_handler("bench.stamp", name="bench.stamp")(stamp)
event_handler("latency_doc.updated", name="bench.latency_doc")(stamp)
event_handler("bench_doc.*", name="bench.bench_doc")(count_doc)
event_handler("bench_replay.*", name="bench.replay")(tally)  # scenario 14: runs only by a replay
