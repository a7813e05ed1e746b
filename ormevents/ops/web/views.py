"""The dashboard's pages (GET only; nothing here changes state).

* ``/`` — the overview (:func:`~ormevents.ops.web.reads.overview`);
* ``/failed`` — failed jobs, filtered by handler, event, model, error type and time, paged by
  the store's cursors (each page costs the same, first or last of 100,000);
* ``/failed/job/<id>`` — one failed job: its event, the diff old → new, the traceback, its attempts;
* ``/events/<id>`` — an event, each handler's status, runs and results;
* ``/delayed`` — the schedule: delayed events (cancellable) and retries, by due time.

Each page polls itself every ``refresh`` seconds with htmx (``hx-select="#live"``): the part
that changes is swapped in place, the rest (filters being typed, the scroll position) stays.

Imported by :mod:`ormevents.ops.web.app`.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ...errors import InvalidFilterError
from ...events.event import Event
from ...jobs.records import FailedJobFilter, parse_since
from . import reads
from .render import chart

FILTERS = ("handler", "event", "model", "exception", "since")
PAGE_SIZES = (20, 50, 100, 200)


def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
    """Render template ``name`` with the context every page needs."""
    app = request.app
    dashboard = app.state.dashboard
    base = request.scope.get("root_path", "").rstrip("/")
    context = {"base": base, "title": dashboard.title, "queue": dashboard.settings.queue_name,
               "refresh": dashboard.refresh, "csrf": getattr(request.state, "csrf", ""), **context}
    response: Response = app.state.templates.TemplateResponse(request, name, context, status_code=status_code)
    return response


def job_filter(params: Any) -> FailedJobFilter:
    """The failed-job filter of a query string or form (``event`` is the event name);
    :class:`InvalidFilterError` for a bad ``since``."""
    def value(name: str) -> str | None:
        found = params.get(name)
        return found.strip() if isinstance(found, str) and found.strip() else None

    return FailedJobFilter(value("handler"), value("event"), value("model"), value("exception"),
                           parse_since(value("since")))


def filter_query(params: Any) -> dict[str, str]:
    """The non-empty filter fields of ``params`` (to carry them into links and forms)."""
    return {name: params[name].strip() for name in FILTERS if isinstance(params.get(name), str) and params[name].strip()}


def event_id_of(request: Request) -> str:
    """The ``event_id`` path parameter as a canonical UUID; HTTP 400 for anything else."""
    raw = request.path_params["event_id"]
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise HTTPException(400, f"{raw!r} is not an event id (a UUID)") from None


async def overview_page(request: Request) -> Response:
    """The overview (see module doc)."""
    dashboard = request.app.state.dashboard
    data = await dashboard.call(reads.overview, dashboard.redis, dashboard.store)
    return render(request, "overview.html", {"data": data, "chart": chart(data.minutes), "page": "overview"})


async def failed_page(request: Request) -> Response:
    """One page of failed jobs matching the filters, newest first."""
    dashboard = request.app.state.dashboard
    params = request.query_params
    filters = job_filter(params)
    limit = _int(params.get("limit"), 50, "limit")
    if limit not in PAGE_SIZES:
        raise InvalidFilterError(f"limit must be one of {', '.join(map(str, PAGE_SIZES))}, got {limit}")
    cursor = params.get("cursor") or None
    page = await dashboard.call(lambda: dashboard.store.page(filters, limit=limit, cursor=cursor))
    total = await dashboard.call(dashboard.store.count, filters)
    handlers = await dashboard.call(dashboard.store.values, "handler")
    exceptions = await dashboard.call(dashboard.store.values, "exception")
    models = await dashboard.call(dashboard.store.values, "model")
    return render(request, "failed.html", {
        "page": "failed", "jobs": page.items, "next_cursor": page.next_cursor, "total": total, "limit": limit,
        "cursor": cursor, "query": filter_query(params), "handlers": handlers, "exceptions": exceptions,
        "models": models, "sizes": PAGE_SIZES, "done": params.get("done"), "count": params.get("count"),
    })


async def job_page(request: Request) -> Response:
    """One failed job (404 for an unknown id)."""
    dashboard = request.app.state.dashboard
    job_id = request.path_params["job_id"]
    job = await dashboard.call(dashboard.store.get, job_id)
    if job is None:
        from ...errors import JobNotFoundError

        raise JobNotFoundError(f"no failed job {job_id!r} in queue {dashboard.settings.queue_name!r} "
                               "(retried, removed, evicted, or never there)")
    return render(request, "job.html", {"page": "failed", "job": job})


async def event_page(request: Request) -> Response:
    """An event's status, runs and results (400 for a malformed id, 404 for an unknown one)."""
    dashboard = request.app.state.dashboard
    event_id = event_id_of(request)
    detail = await dashboard.call(reads.event_detail, dashboard.redis, dashboard.store, event_id)
    if detail.status is None and not detail.results and not detail.failed:
        raise HTTPException(404, f"no status for event {event_id} in queue {dashboard.settings.queue_name!r}: "
                                 "unknown, not dispatched yet, or expired (status_ttl)")
    wire = detail.status.event.to_dict() if detail.status and isinstance(detail.status.event, Event) else None
    return render(request, "event.html", {"page": "events", "event_id": event_id, "detail": detail, "wire": wire,
                                          "done": request.query_params.get("done")})


async def delayed_page(request: Request) -> Response:
    """The schedule by due time, 50 entries a page."""
    dashboard = request.app.state.dashboard
    start = _int(request.query_params.get("start"), 0, "start")
    if start < 0:
        raise InvalidFilterError(f"start must be 0 or more, got {start}")
    entries, total = await dashboard.call(reads.schedule_page, dashboard.redis, dashboard.settings.keys, start, 50)
    return render(request, "delayed.html", {"page": "delayed", "entries": entries, "total": total, "start": start,
                                            "size": 50, "done": request.query_params.get("done")})


def _int(raw: str | None, default: int, name: str) -> int:
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidFilterError(f"{name} must be a whole number, got {raw!r}") from None
