"""The failed-job store in Redis: atomic writes, indexes, retention, paging (sync redis-py).

Layout under the queue name (see :mod:`ormevents.jobs.keys`):

* ``failed:jobs`` — HASH job id -> :class:`~ormevents.jobs.records.FailedJob` JSON;
* ``failed:index`` — ZSET job id -> last failure time (epoch seconds);
* ``failed:<kind>:<value>`` — the same, per handler, event name, model and exception type;
* ``failed:handlers`` — SET of handler names with failed jobs (for ``stats``), and
  ``failed:values:<kind>`` — SETs of the event names, models and exception types that have some.

Every write and removal is one Lua script, so a record and its index entries never disagree.
Retention runs inside the write: jobs older than ``max_age_days`` and, past ``max_count``,
the oldest ones are evicted (at most 500 per write) and counted as ``failed_evicted`` in
``<queue>:stats``. Listing walks the most selective index by score (newest first) and never
scans the hash; an index entry whose record is gone is skipped and cleaned (rq#1963).

The scripts build the index key names of evicted jobs from the queue prefix, so the store
needs a single (non-cluster) Redis, as the schedule does.

Example::

    store = FailedJobStore(redis.Redis.from_url(url), "shop:events")
    page = store.page(FailedJobFilter(handler="billing.activate"), limit=20)
    more = store.page(FailedJobFilter(handler="billing.activate"), limit=20, cursor=page.next_cursor)
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import redis

from .keys import Keys
from .records import (
    FailedJob,
    FailedJobFilter,
    FailedJobRetention,
    Page,
    decode_cursor,
    encode_cursor,
)

from .redis_scripts import (
    CLAIM,
    CLAIM_TTL,
    EVICT_BATCH,
    RECORD,
    RELEASE,
    REMOVE,
    RETRIED,
    RETRIED_TTL,
)
from .replies import reply_text

logger = logging.getLogger("ormevents.jobs.redis_store")


class FailedJobStore:
    """Failed jobs of one queue in Redis (see module doc). Thread-safe; sync client.

    ``retention`` applies to :meth:`record`; readers can leave the default.
    """

    def __init__(self, client: redis.Redis, queue_name: str,
                 retention: FailedJobRetention | None = None) -> None:
        self.client = client
        self.queue_name = queue_name
        self.keys = Keys(queue_name)
        self.retention = retention or FailedJobRetention()
        self._record = client.register_script(RECORD)
        self._remove = client.register_script(REMOVE)
        self._claim = client.register_script(CLAIM)
        self._retried = client.register_script(RETRIED)
        self._release = client.register_script(RELEASE)

    # ----- writing --------------------------------------------------------------------

    def record(self, job: FailedJob, *, retention: FailedJobRetention | None = None, pipe: Any = None,
               now: float | None = None) -> Any:
        """Store ``job`` (replacing one with the same id) and apply retention, atomically.

        With ``pipe`` the script is queued on that pipeline (the caller executes it); without,
        it runs now and returns how many old jobs were evicted.
        """
        import time

        keep = retention or self.retention
        oldest = (now if now is not None else time.time()) - keep.max_age_days * 86400
        keys = [self.keys.failed_jobs, self.keys.failed_index, self.keys.failed_handlers, self.keys.stats]
        keys += [self.keys.failed_facet(kind, value) for kind, value in job.facets()]
        args: list[str | int | float] = [self.queue_name, job.id, job.model_dump_json(), repr(job.failed_at.timestamp()), job.handler,
                keep.max_count, repr(oldest), EVICT_BATCH]
        return self._record(keys=keys, args=args, client=pipe)

    def remove(self, job_id: str, *, expected: str | bytes | None = None) -> int:
        """Remove ``job_id``: 1 removed, 0 absent, -1 kept because it no longer equals ``expected``
        (the raw JSON read earlier; a job that failed again in between is not lost)."""
        keys = [self.keys.failed_jobs, self.keys.failed_index, self.keys.failed_handlers]
        return int(self._remove(keys=keys, args=[self.queue_name, job_id, expected or ""]))

    def claim(self, job_id: str, token: str, ttl: float = CLAIM_TTL) -> tuple[str, bytes | None]:
        """Take ``job_id`` for one retry, atomically: ``("ok", its JSON)``; ``("claimed", token of
        the holder)`` while another retry holds it; ``("retried", token)`` if it was retried
        within :data:`RETRIED_TTL`; ``("retried", None)`` if there is no such job. A claim holds
        the record (it stays stored) until :meth:`retried` or :meth:`release`, at most ``ttl`` s."""
        keys = [self.keys.failed_jobs, self.keys.failed_claim(job_id), self.keys.failed_retried(job_id)]
        state, value = self._claim(keys=keys, args=[job_id, token, int(ttl * 1000)])
        return reply_text(state), value if isinstance(value, bytes) else (value.encode() if value else None)

    def retried(self, job_id: str, raw: bytes, token: str) -> int:
        """After the retry's message was accepted: remove the record if it still is ``raw`` (1;
        0 absent; -1 it failed again meanwhile and is kept), end the claim, remember the retry."""
        keys = [self.keys.failed_jobs, self.keys.failed_index, self.keys.failed_handlers,
                self.keys.failed_claim(job_id), self.keys.failed_retried(job_id)]
        return int(self._retried(keys=keys, args=[self.queue_name, job_id, raw, token, RETRIED_TTL]))

    def release(self, job_id: str, token: str) -> None:
        """Give back a claim (the retry's message could not be sent: the job stays failed)."""
        self._release(keys=[self.keys.failed_claim(job_id)], args=[token])

    # ----- reading --------------------------------------------------------------------

    def get_raw(self, job_id: str) -> tuple[FailedJob, bytes] | None:
        """The job and its stored JSON, or ``None``."""
        raw = self.client.hget(self.keys.failed_jobs, job_id)
        if raw is None:
            return None
        data = raw if isinstance(raw, bytes) else str(raw).encode()
        return FailedJob.model_validate_json(data), data

    def get(self, job_id: str) -> FailedJob | None:
        """The job ``job_id``, or ``None``."""
        found = self.get_raw(job_id)
        return None if found is None else found[0]

    def count(self, filters: FailedJobFilter | None = None) -> int:
        """How many stored jobs match ``filters`` (index cardinalities, no scan)."""
        filters = filters or FailedJobFilter()
        floor = filters.min_score()
        low = "-inf" if floor is None else repr(floor)
        keys = [self.keys.failed_facet(kind, value) for kind, value in filters.facets()]
        if len(keys) <= 1:
            return int(self.client.zcount(keys[0] if keys else self.keys.failed_index, low, "+inf"))
        scratch = f"{self.queue_name}:failed:tmp:{uuid.uuid4().hex}"
        pipe = self.client.pipeline(transaction=True)
        pipe.zinterstore(scratch, keys, aggregate="MIN")
        pipe.zcount(scratch, low, "+inf")
        pipe.delete(scratch)
        return int(pipe.execute()[1])

    def page(self, filters: FailedJobFilter | None = None, *, limit: int = 50,
             cursor: str | None = None) -> Page[FailedJob]:
        """Up to ``limit`` matching jobs, newest first, after ``cursor``."""
        filters = filters or FailedJobFilter()
        if limit < 1:
            from ..errors import InvalidFilterError

            raise InvalidFilterError(f"limit must be at least 1, got {limit}")
        source = self._smallest_index(filters)
        floor = filters.min_score()
        after = decode_cursor(cursor) if cursor else None
        found: list[tuple[float, FailedJob]] = []
        offset, batch = 0, min(max(limit + 1, 20), 1000)
        while len(found) <= limit:
            rows: list[tuple[Any, float]] = self.client.zrevrangebyscore(  # type: ignore[assignment]  # withscores pairs
                source, repr(after[0]) if after else "+inf", "-inf" if floor is None else repr(floor),
                start=offset, num=batch, withscores=True)
            if not rows:
                break
            offset += len(rows)
            ids = [reply_text(member) for member, _ in rows]
            raws = self.client.hmget(self.keys.failed_jobs, ids)
            for (member, score), job_id, raw in zip(rows, ids, raws):
                if after and float(score) == after[0] and job_id >= after[1]:
                    continue  # at or before the cursor among equal scores
                if raw is None:
                    self._clean(source, job_id)
                    continue
                job = FailedJob.model_validate_json(raw)
                if filters.matches(job):
                    found.append((float(score), job))
            if len(rows) < batch:
                break
        items = found[:limit]
        more = len(found) > limit
        return Page([job for _, job in items], encode_cursor(items[-1][0], items[-1][1].id) if more else None)

    def handlers(self) -> dict[str, int]:
        """Handler name -> number of failed jobs (for ``ormevents stats``)."""
        names = sorted(reply_text(n) for n in self.client.smembers(self.keys.failed_handlers))
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.zcard(self.keys.failed_by_handler(name))
        return {name: int(n) for name, n in zip(names, pipe.execute()) if n}

    def values(self, kind: str) -> dict[str, int]:
        """Value -> number of failed jobs, for ``kind`` ``handler``, ``event``, ``model`` or
        ``exception`` (for the dashboard's overview and filters; jobs stored by versions before
        these sets existed are counted once a job of the same value is stored again)."""
        if kind == "handler":
            return self.handlers()
        names = sorted(reply_text(n) for n in self.client.smembers(self.keys.failed_values(kind)))
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.zcard(self.keys.failed_facet(kind, name))
        return {name: int(n) for name, n in zip(names, pipe.execute()) if n}

    def _smallest_index(self, filters: FailedJobFilter) -> str:
        keys = [self.keys.failed_facet(kind, value) for kind, value in filters.facets()]
        if len(keys) <= 1:
            return keys[0] if keys else self.keys.failed_index
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.zcard(key)
        sizes = pipe.execute()
        return min(zip(sizes, keys))[1]

    def _clean(self, index: str, job_id: str) -> None:
        logger.warning("failed job %s is indexed but its record is gone; removing the index entry", job_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.zrem(index, job_id)
        pipe.zrem(self.keys.failed_index, job_id)
        pipe.execute()
