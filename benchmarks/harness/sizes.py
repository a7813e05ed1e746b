"""How much each scenario does: the full sizes of issue 14 (``make bench``) and tiny ones for CI.

Full sizes are chosen so ``make bench`` stays under ~10 minutes on 2 cores; where a size is
below the issue's, the scenario says so in a note.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    """Operation counts per scenario."""

    write_ops: int          # 1: operations per variant
    rounds: int             # rounds of every interleaved latency comparison
    events: int             # 2: events per side (one handler)
    events_fan4: int        # 2: events per side with 4 handlers / 4 tasks per event
    bulk_docs: int          # 3: documents per bulk write
    latency_events: int     # 4: sequential events per variant
    delayed: int            # 5: delayed events (ormevents)
    delayed_raw: int        # 5: countdown tasks (raw Celery; its memory grows linearly, compared per 1,000)
    ingest_wait: float      # 5: longest wait for the raw worker to take its countdown tasks (s)
    diff_ops: int           # 6: diffs per variant
    failed_jobs: int        # 7: failed jobs in the store
    pages: int              # 7: pages read per query
    beanie_ops: int         # 8: saves per variant
    beanie_docs: int        # 8: documents created one by one, delivered
    concurrent_ops: int     # 9: saves per variant across 16 coroutines
    size_ops: int           # 10: operations per variant and document size
    fanout_runs: int        # 11: handler runs (tasks) per fan-out and side
    throughput_rounds: int  # rounds of every throughput comparison
    relay_backlog: int = 20_000  # 13: pending events the relay drains, per kind and round
    history_events: int = 1000   # 14: events of the document whose history is read
    replay_events: int = 10_000  # 14: stored events replayed to one handler (2,000 took ~1 s: noisy)

    @classmethod
    def full(cls) -> Sizes:
        """The sizes of ``make bench``."""
        return cls(write_ops=2000, rounds=4, events=10_000, events_fan4=1000, bulk_docs=10_000, latency_events=200,
                   delayed=100_000, delayed_raw=30_000, ingest_wait=60.0, diff_ops=4000, failed_jobs=100_000, pages=200, beanie_ops=600,
                   beanie_docs=1000, concurrent_ops=2000, size_ops=400, fanout_runs=1200, throughput_rounds=2)

    @classmethod
    def quick(cls) -> Sizes:
        """The sizes of ``make bench-quick`` (the CI smoke run): every code path, no meaningful figure."""
        return cls(write_ops=40, rounds=2, events=60, events_fan4=20, bulk_docs=200, latency_events=10,
                   delayed=300, delayed_raw=300, ingest_wait=10.0, diff_ops=100, failed_jobs=2000, pages=5, beanie_ops=20,
                   beanie_docs=20, concurrent_ops=64, size_ops=20, fanout_runs=32, throughput_rounds=2,
                   relay_backlog=200, history_events=50, replay_events=100)
