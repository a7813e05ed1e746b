"""The dashboard's state changes: retry or remove one failed job, all jobs matching a filter, or
cancel a delayed event. Each is a pair of requests on the same URL:

* ``GET`` shows what would happen (the job, or how many jobs match right now) and a form;
  it changes nothing;
* ``POST`` of that form, with its CSRF token (:func:`~ormevents.ops.web.security.check_csrf`),
  does it and redirects (303) to a page that says what was done.

Retries go through :class:`~ormevents.delivery.celery.requeue.Requeue`, as the API and the
command line do: a job is retried once however many operators press the button (the others
get a 409 page naming who retried it), and a bulk retry skips what others retried meanwhile.

Imported by :mod:`ormevents.ops.web.app`.
"""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ...errors import JobNotFoundError
from .security import check_csrf
from .views import event_id_of, filter_query, job_filter, render

ACTIONS = ("retry", "remove")


def _action(request: Request) -> str:
    action = request.path_params["action"]
    if action not in ACTIONS:
        raise HTTPException(404, f"no such action {action!r}: use retry or remove")
    return action


async def one_job(request: Request) -> Response:
    """``/failed/<retry|remove>/<job id>``: confirm (GET), then do it (POST)."""
    dashboard = request.app.state.dashboard
    action = _action(request)
    job_id = request.path_params["job_id"]
    if request.method == "POST":
        await check_csrf(request)
        if action == "retry":
            job = await dashboard.call(dashboard.requeue.retry, job_id)
            return _redirect(request, f"/events/{job.event_id}", done="retried")
        await dashboard.call(dashboard.requeue.remove, job_id)
        return _redirect(request, "/failed", done="removed", count="1")
    job = await dashboard.call(dashboard.store.get, job_id)
    if job is None:
        raise JobNotFoundError(f"no failed job {job_id!r} in queue {dashboard.settings.queue_name!r}")
    return render(request, "confirm.html", {
        "page": "failed", "action": action, "question": f"{action.capitalize()} the failed job of {job.handler} "
        f"on {job.event_name} {job.event_id}?", "target": f"/failed/{action}/{job_id}", "fields": {},
        "job": job, "back": f"/failed/job/{job_id}"})


async def bulk(request: Request) -> Response:
    """``/failed/<retry|remove>-all?<filters>``: say how many match (GET), then change them (POST)."""
    dashboard = request.app.state.dashboard
    action = _action(request)
    if request.method == "POST":
        form = await check_csrf(request)
        filters = job_filter(form)
        requeue = dashboard.requeue
        count = await dashboard.call(lambda: sum(requeue.each_page(action, filters)))
        return _redirect(request, "/failed", done="retried" if action == "retry" else "removed", count=str(count),
                         **filter_query(form))
    filters = job_filter(request.query_params)
    query = filter_query(request.query_params)
    count = await dashboard.call(dashboard.store.count, filters)
    scope = ", ".join(f"{k}={v}" for k, v in query.items()) or "no filter: every failed job of the queue"
    return render(request, "confirm.html", {
        "page": "failed", "action": action, "count": count, "fields": query,
        "question": f"{action.capitalize()} {count} failed job(s) matching {scope}?",
        "target": f"/failed/{action}-all", "back": "/failed" + (f"?{urlencode(query)}" if query else "")})


async def cancel(request: Request) -> Response:
    """``/delayed/cancel/<event id>``: confirm (GET), then cancel the delayed event (POST)."""
    dashboard = request.app.state.dashboard
    event_id = event_id_of(request)
    if request.method == "POST":
        await check_csrf(request)
        sender = dashboard.requeue.sender
        cancelled = await dashboard.call(sender.cancel, event_id)
        return _redirect(request, "/delayed", done="cancelled" if cancelled else "not-cancelled")
    due = await dashboard.call(dashboard.redis.zscore, dashboard.settings.keys.schedule, f"event:{event_id}")
    if due is None:
        raise HTTPException(404, f"event {event_id} is not waiting in the schedule (already sent, cancelled, "
                                 "or never delayed)")
    return render(request, "confirm.html", {
        "page": "delayed", "action": "cancel", "question": f"Cancel the delayed event {event_id}? It will not be "
        "delivered.", "target": f"/delayed/cancel/{event_id}", "fields": {}, "back": "/delayed"})


def _redirect(request: Request, path: str, **query: str) -> Response:
    base = request.scope.get("root_path", "").rstrip("/")
    return RedirectResponse(f"{base}{path}?{urlencode(query)}", status_code=303)
